"""Numbers that must not lie: top-k accuracy with NaN/inf scores, and (log-)softmax and
cross-entropy with -inf logits or logits near the float32 limits, against a float64
reference, on every device."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.metrics import topk_accuracy, topk_correct

NEG_INF = -np.inf


def reference_log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x, axis=1, keepdims=True)
    return (x - top) - np.log(np.sum(np.exp(x - top), axis=1, keepdims=True))


def reference_cross_entropy(x, labels, smoothing):
    """Per-row loss in float64; the uniform part only when smoothing > 0 (its
    -inf * 0 is not part of the loss at smoothing 0)."""
    lp = reference_log_softmax(x)
    loss = -(1 - smoothing) * lp[np.arange(len(labels)), labels]
    if smoothing:
        loss = loss - smoothing / x.shape[1] * lp.sum(axis=1)
    return loss


# ---------------------------------------------------------------- top-k
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_never_correct(device, bad):
    scores = np.full((3, 4), bad, dtype=np.float32)
    labels = np.array([0, 1, 3])
    t = minidl.tensor(scores, device=device)
    assert topk_accuracy(t, minidl.tensor(labels, device=device), ks=(1, 4)) == {1: 0.0, 4: 0.0}


def test_one_non_finite_score_makes_only_its_row_wrong(device):
    scores = np.array([[5.0, 1.0, 0.0],
                       [5.0, np.nan, 0.0],      # label's score finite and top, but the row has a NaN
                       [np.inf, 1.0, 0.0],      # label's score +inf
                       [0.0, 9.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1])
    t = minidl.tensor(scores, device=device)
    assert topk_correct(t, minidl.tensor(labels, device=device), ks=(1, 3)) == {1: 2, 3: 2}
    assert topk_accuracy(scores, labels, ks=1) == 0.5


# ---------------------------------------------------------------- cross-entropy
LOGITS_WITH_NEG_INF = np.array([[0.0, NEG_INF, 1.0, 2.0],
                                [NEG_INF, NEG_INF, 3.0, -1.0],
                                [1.0, 1.0, NEG_INF, 1.0]], dtype=np.float32)

NEAR_LIMITS = np.array([[3.0e38, -3.0e38, 0.0],
                        [-3.4e38, -3.4e38, -3.4e38],
                        [3.4e38, 3.4e38, 1.0],
                        [-3.4e38, 3.4e38, -3.0e38]], dtype=np.float32)


@pytest.mark.parametrize("logits, labels", [
    (LOGITS_WITH_NEG_INF, [2, 3, 0]),
    (LOGITS_WITH_NEG_INF, [1, 3, 2]),   # label on a -inf logit: loss +inf
    (NEAR_LIMITS, [0, 1, 2, 1]),
    (NEAR_LIMITS, [1, 2, 0, 0]),
])
def test_cross_entropy_equals_minus_log_softmax_at_smoothing_0(device, logits, labels):
    labels = np.array(labels)
    with np.errstate(over="ignore"):  # a float64 loss past the float32 range is +inf in float32
        expected = reference_cross_entropy(logits, labels, 0.0).astype(np.float32)
    loss = F.cross_entropy(minidl.tensor(logits, device=device), labels, reduction="none")
    assert not np.isnan(loss.numpy()).any()
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("logits", [LOGITS_WITH_NEG_INF, NEAR_LIMITS], ids=["neg_inf", "near_limits"])
def test_log_softmax_with_extreme_logits(device, logits):
    with np.errstate(over="ignore"):
        expected = reference_log_softmax(logits).astype(np.float32)
    got = F.log_softmax(minidl.tensor(logits, device=device), axis=1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    probs = F.softmax(minidl.tensor(logits, device=device), axis=1).numpy()
    np.testing.assert_allclose(probs, np.exp(reference_log_softmax(logits)), rtol=1e-5, atol=1e-6)


def test_cross_entropy_with_smoothing_and_a_neg_inf_logit_is_inf_not_nan(device):
    # the uniform part of the target puts mass on the -inf logit: +inf, as in PyTorch
    logits = minidl.tensor(LOGITS_WITH_NEG_INF, device=device)
    loss = F.cross_entropy(logits, np.array([2, 3, 0]), reduction="none", label_smoothing=0.1)
    np.testing.assert_array_equal(loss.numpy(), [np.inf, np.inf, np.inf])
    finite = np.where(np.isinf(LOGITS_WITH_NEG_INF), -30.0, LOGITS_WITH_NEG_INF).astype(np.float32)
    loss = F.cross_entropy(minidl.tensor(finite, device=device), np.array([2, 3, 0]), reduction="none",
                           label_smoothing=0.1)
    np.testing.assert_allclose(loss.numpy(), reference_cross_entropy(finite, np.array([2, 3, 0]), 0.1),
                               rtol=1e-5)


def test_cross_entropy_gradient_with_neg_inf_logits_is_finite(device):
    labels = np.array([2, 3, 0])
    logits = minidl.tensor(LOGITS_WITH_NEG_INF, device=device, requires_grad=True)
    F.cross_entropy(logits, labels, reduction="sum").backward()
    expected = np.exp(reference_log_softmax(LOGITS_WITH_NEG_INF))
    expected[np.arange(3), labels] -= 1
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-5, atol=1e-6)
