"""Engine-level behaviour: accumulation, no_grad, detach, retain_graph, anomaly mode."""
import numpy as np
import pytest

import minidl
from helpers import gradcheck


def test_gradient_accumulates_over_backward_calls():
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1, 2, 3]) + 3)


def test_shared_subexpression_sums_both_paths():
    x = minidl.tensor([0.5, -1.5], dtype="float64", requires_grad=True)
    y = x.exp()
    (y * y + y).sum().backward()
    e = np.exp([0.5, -1.5])
    np.testing.assert_allclose(x.grad.numpy(), 2 * e * e + e)


@pytest.mark.parametrize("uses", [2, 3, 5])
def test_many_uses_sum_in_place_without_touching_aliased_gradients(uses):
    """A tensor used many times sums its gradients in place once the engine made the
    sum itself; the first contribution may alias the user's gradient (Add passes gy
    through to both inputs), which must stay untouched."""
    x = minidl.tensor([0.5, -1.5, 2.0], dtype="float64", requires_grad=True)
    b = x * 2
    total = b
    for _ in range(uses - 1):
        total = total + b
    seed = np.array([1.0, 10.0, 100.0])
    kept = seed.copy()
    total.backward(minidl.tensor(seed, dtype="float64"))
    np.testing.assert_array_equal(seed, kept)
    np.testing.assert_allclose(x.grad.numpy(), 2 * uses * kept)
    y = minidl.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    parts = [y * k for k in (1.0, 2.0, 3.0, 4.0)]
    z = y.exp()
    (parts[0] + parts[1] + parts[2] + parts[3] + z + z + z).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 10 + 3 * np.exp([1.0, 2.0]))


def test_leaf_gradients_are_copied_unless_their_function_made_them(monkeypatch):
    """Conv2d and Linear make their weight gradients (fresh_grads): the leaves take them
    without a copy.  A pass-through gradient (Add hands gy to both inputs) is copied, so
    the two leaves and the user's array stay apart."""
    import minidl.functional as F
    from minidl.backend import get_backend
    cpu = get_backend("cpu")
    copies = []
    real_copy = type(cpu).copy
    monkeypatch.setattr(type(cpu), "copy", lambda self, a: copies.append(a.shape) or real_copy(self, a))
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 6)), dtype="float64")
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), dtype="float64", requires_grad=True)
    fc = minidl.tensor(rng.standard_normal((5, 4)), dtype="float64", requires_grad=True)
    loss = F.linear(F.conv2d(x, w, padding=1).mean(axis=(2, 3)), fc).sum()
    copies.clear()  # (creating the tensors copied their data)
    loss.backward()
    assert (4, 3, 3, 3) not in copies and (5, 4) not in copies
    assert w.grad is not None and fc.grad is not None
    a = minidl.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    b = minidl.tensor([3.0, 4.0], dtype="float64", requires_grad=True)
    seed = np.array([1.0, 1.0])
    copies.clear()
    (a + b).backward(minidl.tensor(seed, dtype="float64"))
    assert copies.count((2,)) >= 2
    a.grad.data[0] = 7.0
    assert b.grad.numpy()[0] == 1.0 and seed[0] == 1.0


def test_no_grad_and_detach_stop_the_graph():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with minidl.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = (x * 2).detach()
    assert not z.requires_grad
    assert minidl.is_grad_enabled()


def test_second_backward_without_retain_graph_is_a_clear_error():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_of_non_scalar_needs_a_gradient():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = minidl.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0


def test_isfinite_and_anomaly_mode_name_the_op():
    x = minidl.tensor([1.0, 0.0], requires_grad=True)
    assert minidl.isfinite(x)
    assert not minidl.isfinite(x.log())
    with minidl.detect_anomaly():
        with pytest.raises(FloatingPointError, match="Log.forward"):
            x.log()


def test_float32_default_and_float64_kept():
    assert minidl.tensor([1.0]).dtype == np.float32
    assert minidl.tensor(np.zeros(2)).dtype == np.float64
    assert minidl.randn(2, 3).dtype == np.float32


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="device: expected one of"):
        minidl.zeros(2, device="tpu")
