"""softmax, log_softmax, cross_entropy and top-k accuracy against float64 loop references;
the softmax and cross-entropy checks run on every device (the ``device`` fixture: cpu,
emu, and cuda where there is a GPU)."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import gradcheck
from minidl.metrics import topk_accuracy, topk_correct


def softmax_row_ref(row):
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    return [e / total for e in exps], [v - top - math.log(total) for v in row]


def softmax_ref(x, axis, log):
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    out = np.empty_like(moved)
    for idx in np.ndindex(moved.shape[:-1]):
        probs, logs = softmax_row_ref([float(v) for v in moved[idx]])
        out[idx] = logs if log else probs
    return np.moveaxis(out, -1, axis)


def cross_entropy_ref(logits, labels, smoothing):
    losses = []
    for row, label in zip(logits, labels):
        _, logs = softmax_row_ref([float(v) for v in row])
        k = len(logs)
        losses.append(-sum(((1 - smoothing) * (j == label) + smoothing / k) * lp
                           for j, lp in enumerate(logs)))
    return np.array(losses)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((3, 5), 0), ((2, 3, 4, 5), 1), ((2, 3, 4), 2), ((6,), 0)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_matches_reference(log, shape, axis, dtype, device):
    x = np.random.default_rng(0).standard_normal(shape) * 5
    fn = F.log_softmax if log else F.softmax
    got = fn(minidl.tensor(x, dtype=dtype, device=device), axis=axis)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got.numpy(), softmax_ref(x.astype(dtype), axis, log), rtol=tol, atol=tol)
    assert got.dtype == np.dtype(dtype) and got.shape == shape


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_large_logits_stay_finite(log, dtype, device):
    x = np.array([[1000.0, -1000.0, 999.0], [-1000.0, -1000.0, -1001.0]])
    fn = F.log_softmax if log else F.softmax
    got = fn(minidl.tensor(x, dtype=dtype, device=device)).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, softmax_ref(x, 1, log), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,axis", [((3, 5), -1), ((2, 3, 2, 2), 1), ((4, 3), 0)])
def test_softmax_gradients(log, shape, axis, device):
    x = np.random.default_rng(1).standard_normal(shape) * 2
    fn = F.log_softmax if log else F.softmax
    gradcheck(lambda t: fn(t, axis=axis), x, device=device)


def test_float32_softmax_wide_rows(device):
    # wider than the kernel's summation block, with a vectorized exp in float32
    x = np.random.default_rng(2).standard_normal((3, 1000)) * 10
    got = F.softmax(minidl.tensor(x, dtype="float32", device=device)).numpy()
    np.testing.assert_allclose(got, softmax_ref(x.astype(np.float32), 1, False), rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize("width", [1, 7, 8, 9, 16, 23, 1003])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_max_found_at_every_position(width, dtype, device):
    # one logit of 200 in a row of small ones, at each position (the kernel's row max
    # keeps eight lanes and a tail): had the max missed it, exp(200 - top) would overflow
    positions = range(width) if width < 30 else [0, 7, 8, 500, 995, 996, 1002]
    x = np.random.default_rng(3).standard_normal((len(positions), width))
    for row, p in enumerate(positions):
        x[row, p] = 200.0
    labels = np.array(list(positions)) % width
    for log in (False, True):
        got = (F.log_softmax if log else F.softmax)(minidl.tensor(x, dtype=dtype, device=device)).numpy()
        assert np.all(np.isfinite(got)), f"width {width}: a row's max was missed"
        np.testing.assert_allclose(got, softmax_ref(x.astype(dtype), 1, log), rtol=1e-5, atol=1e-6)
    loss = F.cross_entropy(minidl.tensor(x, dtype=dtype, device=device), labels, reduction="none").numpy()
    np.testing.assert_allclose(loss, cross_entropy_ref(x.astype(dtype), labels, 0.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_matches_reference(reduction, smoothing, dtype, device):
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((6, 9)) * 3, rng.integers(0, 9, 6)
    loss = F.cross_entropy(minidl.tensor(logits, dtype=dtype, device=device), labels,
                           reduction=reduction, label_smoothing=smoothing)
    per_row = cross_entropy_ref(logits.astype(dtype), labels, smoothing)
    expected = {"mean": per_row.mean(), "sum": per_row.sum(), "none": per_row}[reduction]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(loss.numpy(), expected, rtol=tol, atol=tol)
    assert loss.dtype == np.dtype(dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_gradients(reduction, smoothing, device):
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((5, 4)) * 2, minidl.tensor(rng.integers(0, 4, 5), device=device)
    gradcheck(lambda t: F.cross_entropy(t, labels, reduction=reduction, label_smoothing=smoothing), logits,
              device=device)


def test_cross_entropy_large_logits_and_nan(device):
    bad = F.cross_entropy(minidl.tensor([[0.0, float("nan")], [1.0, 2.0]], device=device), [0, 1])
    assert not minidl.isfinite(bad)
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], dtype=np.float32)
    loss = F.cross_entropy(minidl.tensor(logits, device=device), [0, 2], reduction="none").numpy()
    assert np.all(np.isfinite(loss))
    np.testing.assert_allclose(loss, [0.0, 1.0 + math.log1p(math.exp(-1.0))], rtol=1e-5, atol=1e-6)


def test_cross_entropy_errors():
    logits = minidl.zeros(3, 10)
    with pytest.raises(ValueError, match="cross_entropy: target contains label 12 but there are 10 classes"):
        F.cross_entropy(logits, [1, 12, 3])
    with pytest.raises(ValueError, match="target contains label -1"):
        F.cross_entropy(logits, [1, -1, 3])
    with pytest.raises(ValueError, match=r"expected target of shape \(3,\) .* got \(2,\)"):
        F.cross_entropy(logits, [1, 2])
    with pytest.raises(TypeError, match="expected integer class labels as target, got dtype float64"):
        F.cross_entropy(logits, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"expected logits of shape \(N, K\), got \(3, 10, 1\)"):
        F.cross_entropy(minidl.zeros(3, 10, 1), [1, 2, 3])
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        F.cross_entropy(logits, [1, 2, 3], label_smoothing=1.0)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        F.cross_entropy(logits, [1, 2, 3], reduction="avg")


def test_softmax_axis_error():
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range for a 2-D tensor"):
        F.softmax(minidl.zeros(2, 3), axis=2)


# ---------------------------------------------------------------- top-k accuracy
def test_topk_hand_computed():
    scores = np.array([[0.1, 0.5, 0.2, 0.9],    # ranking 3, 1, 2, 0
                       [0.8, 0.1, 0.05, 0.05],  # ranking 0, 1, 2, 3
                       [0.2, 0.3, 0.4, 0.1]])   # ranking 2, 1, 0, 3
    labels = np.array([1, 0, 3])               # ranks 1, 0, 3
    assert topk_correct(scores, labels, ks=(1, 2, 3, 4)) == {1: 1, 2: 2, 3: 2, 4: 3}
    acc = topk_accuracy(minidl.tensor(scores), minidl.tensor(labels), ks=(1, 2))
    assert acc == pytest.approx({1: 1 / 3, 2: 2 / 3})
    assert topk_accuracy(scores, labels, ks=4) == 1.0


def test_topk_ties_lower_index_wins():
    scores = np.array([[1.0, 1.0, 1.0, 0.0],
                       [1.0, 1.0, 1.0, 0.0],
                       [2.0, 2.0, 2.0, 2.0]])
    labels = np.array([0, 2, 3])  # ranks 0, 2, 3
    assert topk_correct(scores, labels, ks=(1, 2, 3, 4)) == {1: 1, 2: 1, 3: 2, 4: 3}


def test_topk_matches_stable_argsort_reference():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, (50, 7)).astype(np.float32)  # many ties
    labels = rng.integers(0, 7, 50)
    for k in (1, 3, 5):
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        expected = sum(int(labels[i] in order[i]) for i in range(50))
        assert topk_correct(scores, labels, ks=k) == expected


def test_topk_errors():
    with pytest.raises(ValueError, match=r"topk_accuracy: k=5 exceeds the number of classes \(4\)"):
        topk_accuracy(np.zeros((2, 4)), [0, 1])
    with pytest.raises(ValueError, match=r"expected target of shape \(2,\)"):
        topk_accuracy(np.zeros((2, 4)), [0, 1, 2], ks=1)
    with pytest.raises(TypeError, match="integer class labels"):
        topk_accuracy(np.zeros((2, 4)), [0.0, 1.0], ks=1)
