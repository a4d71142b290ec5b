"""The engine's gradient checks, post-accumulate-grad hooks and the one dtype policy
(minidl/autograd/function.py), on every device."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.autograd.function import Function


class WrongGradient(Function):
    """Identity whose backward returns ``self.make(gy)`` instead of gy."""

    def forward(self, x):
        return self.backend.copy(x)

    def backward(self, gy):
        return self.make(self.backend, gy)


def _relu_then(device, make):
    x = minidl.randn(4, 5, device=device, requires_grad=True)
    return WrongGradient.apply(F.relu(x), make=make).sum()


@pytest.mark.parametrize("make, error, words", [
    (lambda be, g: be.reshape(g, (2, 10)), ValueError, ["shape (2, 10)", "shape (4, 5)"]),
    (lambda be, g: be.zeros((3, 5), g.dtype), ValueError, ["shape (3, 5)", "shape (4, 5)"]),
    (lambda be, g: be.astype(g, "float64"), TypeError, ["float64", "dtype float32"]),
    (lambda be, g: g.tolist(), TypeError, ["list", "numpy array"]),
    (lambda be, g: 1.0, TypeError, ["float", "numpy array"]),
])
def test_wrong_gradient_into_a_non_leaf_names_the_function_and_input(device, make, error, words):
    # A kernel backward (relu) downstream of the bad gradient must never see it.
    loss = _relu_then(device, make)
    with pytest.raises(error, match="WrongGradient.backward") as info:
        loss.backward()
    message = str(info.value)
    assert "input 0" in message
    for word in words:
        assert word.replace("numpy", "cupy" if device == "cuda" else "numpy") in message


def test_wrong_gradient_into_a_leaf_is_checked_too(device):
    x = minidl.randn(3, device=device, requires_grad=True)
    loss = WrongGradient.apply(x, make=lambda be, g: be.zeros((1,), g.dtype)).sum()
    with pytest.raises(ValueError, match=r"WrongGradient.backward returned a gradient of shape \(1,\) "
                                         r"for input 0, expected the input's shape \(3,\)"):
        loss.backward()
    assert x.grad is None


def test_reduction_to_a_zero_dim_input_keeps_its_shape(device):
    v = minidl.randn(3, dtype="float64", device=device, requires_grad=True)
    s = (v @ v).sum()  # matmul of two vectors is 0-d; its Sum backward must stay 0-d
    s.backward()
    np.testing.assert_allclose(v.grad.numpy(), 2 * v.numpy())


# ---------------------------------------------------------------- the root gradient
def test_float64_gradient_into_a_float32_graph_gives_a_float32_grad(device):
    x = minidl.randn(2, 3, device=device, requires_grad=True)
    y = F.relu(x) * 2.0
    given = np.arange(6, dtype=np.float64).reshape(2, 3)
    y.backward(minidl.tensor(given, dtype="float64", device=device))
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), np.where(x.numpy() > 0, 2 * given, 0), rtol=1e-6)
    x.grad = None
    y2 = F.relu(x) * 2.0
    y2.backward(given)  # a NumPy array takes the root's dtype as well
    assert x.grad.dtype == np.float32


def test_root_gradient_on_another_device_is_an_error():
    pytest.importorskip("minidl._emu", reason="needs the emu device as a second device")
    x = minidl.randn(2, device="cpu", requires_grad=True)
    y = x * 3.0
    with pytest.raises(ValueError, match="grad is on 'emu' but the tensor is on 'cpu'"):
        y.backward(minidl.ones(2, device="emu"))


def test_root_gradient_of_the_wrong_shape_is_an_error():
    x = minidl.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"expected grad of shape \(2,\), got \(3,\)"):
        (x * 2.0).backward(np.ones(3))


# ---------------------------------------------------------------- hooks
def test_post_accumulate_hook_fires_once_after_all_contributions(device):
    events = []
    w = minidl.randn(3, dtype="float64", device=device, requires_grad=True)
    a = minidl.randn(3, dtype="float64", device=device)
    b = minidl.randn(3, dtype="float64", device=device)
    w.register_post_accumulate_grad_hook(lambda t: events.append(t.grad.numpy().copy()))
    loss = (w * a).sum() + (F.relu(w) * b).sum() + (w * w).sum()
    loss.backward()
    expected = a.numpy() + (w.numpy() > 0) * b.numpy() + 2 * w.numpy()
    assert len(events) == 1
    np.testing.assert_allclose(events[0], expected)


class Recorder(Function):
    """Identity that records when its backward runs."""

    def forward(self, x):
        return self.backend.copy(x)

    def backward(self, gy):
        self.events.append(self.name)
        return gy


def test_hook_fires_as_soon_as_the_leaf_is_ready_not_at_the_end(device):
    # x -> Recorder("early layer") -> * w2 -> sum: w2's gradient is final before the
    # backward of the early layer runs, so its hook must fire first.
    events = []
    x = minidl.randn(4, dtype="float64", device=device, requires_grad=True)
    w2 = minidl.randn(4, dtype="float64", device=device, requires_grad=True)
    w2.register_post_accumulate_grad_hook(lambda t: events.append("w2 ready"))
    x.register_post_accumulate_grad_hook(lambda t: events.append("x ready"))
    hidden = Recorder.apply(x, events=events, name="early layer backward")
    (hidden * w2).sum().backward()
    assert events == ["w2 ready", "early layer backward", "x ready"]


def test_hook_fires_once_per_backward_and_remove_stops_it(device):
    calls = []
    w = minidl.randn(2, dtype="float64", device=device, requires_grad=True)
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.numpy().copy()))
    loss = (w * 3.0).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], [6.0, 6.0])  # accumulated over both passes
    handle.remove()
    (w * 3.0).sum().backward()
    assert len(calls) == 2


def test_hook_on_a_root_leaf_and_not_without_gradient(device):
    calls = []
    w = minidl.randn(1, dtype="float64", device=device, requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda t: calls.append("w"))
    w.backward(np.ones(1))
    assert calls == ["w"]
    unused = minidl.randn(2, dtype="float64", device=device, requires_grad=True)
    unused.register_post_accumulate_grad_hook(lambda t: calls.append("unused"))
    x = minidl.randn(2, dtype="float64", device=device, requires_grad=True)
    (x + unused * 0.0).sum()  # builds a graph through unused, but backward goes elsewhere
    (x * 2.0).sum().backward()
    assert calls == ["w"]


def test_hooks_only_on_leaves_that_require_grad():
    x = minidl.randn(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="not a leaf"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.randn(2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="expected a callable"):
        x.register_post_accumulate_grad_hook(3)


# ---------------------------------------------------------------- dtype policy
def _nchw(device, dtype):
    return minidl.tensor(np.ones((1, 2, 4, 4)), dtype=dtype, device=device)


FLOAT_OPS = {
    "conv2d": lambda x: F.conv2d(x, minidl.tensor(np.ones((2, 2, 3, 3)), dtype=x.dtype, device=x.device)),
    "max_pool2d": lambda x: F.max_pool2d(x, 2),
    "avg_pool2d": lambda x: F.avg_pool2d(x, 2),
    "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 1),
    "local_response_norm": lambda x: F.local_response_norm(x, 3),
    "batch_norm": lambda x: F.batch_norm(x, None, None, training=True),
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "softmax": lambda x: F.softmax(x, axis=1),
    "log_softmax": lambda x: F.log_softmax(x, axis=1),
    "cross_entropy": lambda x: F.cross_entropy(x.reshape(2, 16), np.array([0, 1])),
    "linear": lambda x: F.linear(x.reshape(2, 16), minidl.tensor(np.ones((3, 16)), dtype=x.dtype,
                                                                 device=x.device)),
}


@pytest.mark.parametrize("dtype", ["int64", "bool"])
@pytest.mark.parametrize("op", sorted(FLOAT_OPS))
def test_float_ops_reject_other_dtypes_alike_on_every_device(device, op, dtype):
    with pytest.raises(TypeError, match=op) as info:
        FLOAT_OPS[op](_nchw(device, dtype))
    assert dtype in str(info.value)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("op", sorted(FLOAT_OPS))
def test_float_ops_accept_every_floating_dtype(device, op, dtype):
    assert FLOAT_OPS[op](_nchw(device, dtype)).dtype == dtype


def test_generic_ops_follow_numpy_rules_on_every_device(device):
    a = minidl.tensor(np.arange(6).reshape(2, 3), device=device)
    h = minidl.tensor(np.ones(3, dtype=np.float16), device=device)
    assert (a + a).dtype == np.int64 and (a + a).numpy().tolist() == [[0, 2, 4], [6, 8, 10]]
    assert (h * h).dtype == np.float16
    assert a.reshape(3, 2).sum().item() == 15
