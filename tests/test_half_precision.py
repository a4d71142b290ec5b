"""float16 and bfloat16: every op against a naive float64 NumPy reference.

A half-precision op computes in float32 and rounds its result once (the dtype policy
in minidl/autograd/function.py), so on the half-rounded inputs its error is the
output rounding: at most half an ulp, i.e. ``eps / 2`` relative, plus float32's own
error.  The tolerance per format is ``eps`` relative to each value and a small
absolute floor relative to the largest value (float16's subnormals round to an
absolute 2**-25).  Gradients are checked the same way against the float64 op's
gradient (minidl's float64 ops are checked against finite differences elsewhere).
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import minidl
import minidl.functional as F

EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}
HALF = sorted(EPS)


def _close(got, ref, dtype, what):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    eps = EPS[dtype]
    tol = eps * np.abs(ref) + 1e-4 * max(1.0, float(np.abs(ref).max(initial=0.0)))
    bad = np.abs(got - ref) > tol
    assert not bad.any(), (f"{what} in {dtype}: {int(bad.sum())} of {bad.size} values off, worst "
                           f"{float(np.abs(got - ref).max())} (tolerance eps={eps})")


def _rounded(rng, shape, dtype, low=-2.0, high=2.0):
    """Random values exactly representable in ``dtype``, as float64."""
    return rng.uniform(low, high, shape).astype(minidl.dtypes.dtype(dtype)).astype(np.float64)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _conv(x, w, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))  # N C OH OW KH KW
    return np.einsum("ncijkl,ockl->noij", win, w)


def _pool(x, k, reduce):
    return reduce(sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::k, ::k], axis=(-2, -1))


def _batch_norm(x):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)


def _lrn(x, size=3, alpha=0.5, beta=0.75, k=1.0):
    sq, c = x * x, x.shape[1]
    window = np.stack([sq[:, max(i - size // 2, 0):min(i + (size - 1) // 2, c - 1) + 1].sum(axis=1)
                       for i in range(c)], axis=1)
    return x * (k + alpha / size * window) ** -beta


LABELS = np.array([0, 2, 1, 3])

# name: (input shapes, minidl op, float64 reference, value range of the inputs)
OPS = {
    "add": ([(3, 4), (4,)], lambda a, b: a + b, lambda a, b: a + b, (-2, 2)),
    "mul": ([(3, 4), (3, 4)], lambda a, b: a * b, lambda a, b: a * b, (-2, 2)),
    "div": ([(3, 4), (3, 4)], lambda a, b: a / b, lambda a, b: a / b, (0.5, 2)),
    "exp": ([(3, 4)], lambda a: a.exp(), np.exp, (-2, 2)),
    "log": ([(3, 4)], lambda a: a.log(), np.log, (0.1, 3)),
    "tanh": ([(3, 4)], lambda a: a.tanh(), np.tanh, (-2, 2)),
    "sqrt": ([(3, 4)], lambda a: a.sqrt(), np.sqrt, (0.1, 3)),
    "sum": ([(5, 7)], lambda a: a.sum(axis=1), lambda a: a.sum(axis=1), (-2, 2)),
    "mean": ([(5, 7)], lambda a: a.mean(), lambda a: a.mean(), (-2, 2)),
    "matmul": ([(4, 9), (9, 3)], lambda a, b: a @ b, lambda a, b: a @ b, (-2, 2)),
    "relu": ([(3, 4)], F.relu, lambda a: np.maximum(a, 0), (-2, 2)),
    "sigmoid": ([(3, 4)], F.sigmoid, lambda a: 1 / (1 + np.exp(-a)), (-3, 3)),
    "silu": ([(3, 4)], F.silu, lambda a: a / (1 + np.exp(-a)), (-3, 3)),
    "softmax": ([(4, 6)], lambda a: F.softmax(a, axis=1), _softmax, (-3, 3)),
    "log_softmax": ([(4, 6)], lambda a: F.log_softmax(a, axis=1), lambda a: np.log(_softmax(a)), (-3, 3)),
    "cross_entropy": ([(4, 5)], lambda a: F.cross_entropy(a, LABELS),
                      lambda a: -np.log(_softmax(a))[np.arange(4), LABELS].mean(), (-3, 3)),
    "linear": ([(4, 6), (3, 6), (3,)], F.linear, lambda x, w, b: x @ w.T + b, (-1, 1)),
    "conv2d": ([(2, 3, 6, 6), (4, 3, 3, 3)], lambda x, w: F.conv2d(x, w, padding=1),
               lambda x, w: _conv(x, w, 1), (-1, 1)),
    "conv2d_bias": ([(2, 3, 6, 6), (4, 3, 3, 3), (4,)], lambda x, w, b: F.conv2d(x, w, b, padding=1),
                    lambda x, w, b: _conv(x, w, 1) + b[:, None, None], (-1, 1)),
    "max_pool2d": ([(2, 3, 6, 6)], lambda x: F.max_pool2d(x, 2), lambda x: _pool(x, 2, np.max), (-2, 2)),
    "avg_pool2d": ([(2, 3, 6, 6)], lambda x: F.avg_pool2d(x, 2), lambda x: _pool(x, 2, np.mean), (-2, 2)),
    "adaptive_avg_pool2d": ([(2, 3, 7, 5)], lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
                            lambda x: np.stack([np.stack([x[:, :, (i * 7) // 3:-(-(i + 1) * 7 // 3),
                                                           (j * 5) // 2:-(-(j + 1) * 5 // 2)].mean(axis=(2, 3))
                                                          for j in range(2)], -1) for i in range(3)], -2),
                            (-2, 2)),
    "global_avg_pool2d": ([(2, 3, 7, 5)], lambda x: F.adaptive_avg_pool2d(x, 1),
                          lambda x: x.mean(axis=(2, 3), keepdims=True), (-2, 2)),
    "local_response_norm": ([(2, 5, 3, 4)], lambda x: F.local_response_norm(x, 3, alpha=0.5), _lrn, (-2, 2)),
    "batch_norm": ([(4, 3, 3, 3)], lambda x: F.batch_norm(x, None, None, training=True), _batch_norm, (-2, 2)),
}


def _inputs(name, dtype, seed=0):
    rng = np.random.default_rng(seed)
    shapes, _, _, (low, high) = OPS[name]
    return [_rounded(rng, s, dtype, low, high) for s in shapes]


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_forward_matches_float64_reference(device, name, dtype):
    _, op, reference, _ = OPS[name]
    arrays = _inputs(name, dtype)
    out = op(*[minidl.tensor(a, dtype=dtype, device=device) for a in arrays])
    assert out.dtype == dtype
    _close(out.numpy(), reference(*arrays), dtype, name)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_gradients_match_float64(device, name, dtype):
    _, op, _, _ = OPS[name]
    arrays = _inputs(name, dtype)
    grads = {}
    for dt in (dtype, "float64"):
        ts = [minidl.tensor(a, dtype=dt, device=device, requires_grad=True) for a in arrays]
        out = op(*ts)
        upstream = _rounded(np.random.default_rng(1), out.shape, dtype)
        out.backward(minidl.tensor(upstream, dtype=dt, device=device))
        grads[dt] = [t.grad for t in ts]
    for i, (g, ref) in enumerate(zip(grads[dtype], grads["float64"])):
        assert g.dtype == dtype
        _close(g.numpy(), ref.numpy(), dtype, f"{name} gradient of input {i}")


@pytest.mark.parametrize("dtype", HALF)
def test_results_are_rounded_once_from_float32(dtype):
    """The CPU result is exactly the float32 result rounded to the half dtype: the
    definition other backends' kernels must match."""
    a, b = _inputs("matmul", dtype)
    half = (minidl.tensor(a, dtype=dtype) @ minidl.tensor(b, dtype=dtype)).numpy()
    single = (minidl.tensor(a, dtype="float32") @ minidl.tensor(b, dtype="float32")).numpy()
    assert np.array_equal(half.view(np.uint16), single.astype(minidl.dtypes.dtype(dtype)).view(np.uint16))


def test_mixed_half_and_float32_promote_to_float32():
    h = minidl.ones(3, dtype=minidl.float16)
    b = minidl.ones(3, dtype=minidl.bfloat16)
    f = minidl.ones(3)
    assert (h + f).dtype == np.float32 and (b * f).dtype == np.float32 and (h + b).dtype == np.float32


def test_half_and_bfloat16_conversions_and_creation():
    x = minidl.tensor([1.0, 1.0 + 2 ** -9, 3.0], requires_grad=True)
    h, b = x.half(), x.bfloat16()
    assert h.dtype == minidl.float16 and b.dtype == minidl.bfloat16
    assert b.to(dtype=minidl.float32).tolist() == [1.0, 1.0, 3.0]  # 1 + 2**-9 rounds away in bfloat16
    assert h.float().tolist() == [1.0, 1.0 + 2 ** -9, 3.0]
    (h.float().sum() + b.float().sum()).backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [2.0, 2.0, 2.0]
    for make in (minidl.zeros, minidl.ones, minidl.randn, minidl.rand):
        assert make(2, 3, dtype="bfloat16").dtype == minidl.bfloat16
        assert make(2, 3, dtype=minidl.float16).dtype == minidl.float16
    assert minidl.full((2,), 0.5, dtype=minidl.bfloat16).tolist() == [0.5, 0.5]
    assert minidl.zeros(2, dtype=minidl.bfloat16, requires_grad=True).requires_grad
    # a dtype as to()'s first argument is the dtype, as in PyTorch; a device name is a device
    for spec in (minidl.float16, "float16", np.float16):
        assert x.to(spec).dtype == minidl.float16 and x.to(spec).device == "cpu"
    model = minidl.nn.Linear(2, 2).to(minidl.bfloat16)
    assert model.weight.dtype == minidl.bfloat16
    with pytest.raises(ValueError, match="device: expected one of"):
        x.to("tpu")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_module_state_dict_and_safetensors_keep_the_dtype(tmp_path, dtype):
    model = minidl.nn.Sequential(minidl.nn.Conv2d(3, 4, 3), minidl.nn.BatchNorm2d(4)).to(dtype=dtype)
    state = model.state_dict()
    floating = {k for k, v in state.items() if minidl.dtypes.is_floating(v.dtype)}
    assert floating == set(state) - {"1.num_batches_tracked"}
    assert all(np.dtype(state[k].dtype) == dtype for k in floating)
    path = minidl.io.save(model, tmp_path / "half.safetensors")
    loaded = minidl.io.load(path)
    for name, value in state.items():
        v = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        assert loaded[name].dtype == v.dtype
        assert loaded[name].tobytes() == v.tobytes(), name
    other = minidl.nn.Sequential(minidl.nn.Conv2d(3, 4, 3), minidl.nn.BatchNorm2d(4)).to(dtype=dtype)
    other.load_state_dict(loaded)
    x = minidl.randn(2, 3, 5, 5).to(dtype=dtype)
    model.eval(), other.eval()
    assert np.array_equal(model(x).numpy().view(np.uint16), other(x).numpy().view(np.uint16))


def test_a_backward_returning_the_wrong_dtype_for_a_half_input_is_still_an_error():
    from minidl.autograd.function import Function

    class WrongGradient(Function):
        def forward(self, x):
            return self.backend.mul(x, 2.0)

        def backward(self, gy):
            return self.backend.astype(gy, np.float64)

    x = minidl.ones(3, dtype=minidl.float16, requires_grad=True)
    with pytest.raises(TypeError, match="returned a float64 gradient for input 0, expected the input's dtype float16"):
        WrongGradient.apply(x).sum().backward()


def test_widened_ops_keep_data_movement_in_the_half_dtype():
    x = minidl.randn(2, 3, requires_grad=True).bfloat16()
    for out in (x.reshape(3, 2), x.T, x[0], F.concat([x, x], axis=0), x.clone(), x.to(dtype="float16")):
        assert out.grad_fn is not None and not out.grad_fn.widened
    assert (x * 2).grad_fn.widened
    assert x.reshape(3, 2).numpy().tobytes() == x.numpy().reshape(3, 2).tobytes()


NATIVE_OPS = ["relu", "conv2d", "conv2d_bias", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "global_avg_pool2d",
              "local_response_norm", "batch_norm", "cross_entropy"]


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", NATIVE_OPS)
def test_kernel_backends_launch_16_bit_kernels_without_widening(name, dtype):
    """On the kernel backends these ops' forward and backward launch their 16-bit kernels
    on the 16-bit arrays (no float32 copies; Backend.half_native), with the results the
    widening path gives (test_op_forward_matches_float64_reference, test_op_gradients).
    (Cross-entropy's backward is the float32 one, reading the float32 log-probabilities
    of its 16-bit forward.)"""
    be = minidl.backend.get_backend("emu")
    _, op, _, _ = OPS[name]
    ts = [minidl.tensor(a, dtype=dtype, device="emu", requires_grad=True) for a in _inputs(name, dtype)]
    launched, launch = [], be.launch
    be.launch = lambda o, dt, *a: (launched.append((o, np.dtype(dt).name)), launch(o, dt, *a))[1]
    try:
        out = op(*ts)
        out.backward(minidl.ones(out.shape, dtype=dtype, device="emu"))
    finally:
        del be.launch
    assert out.dtype == dtype and out.grad_fn is not None and not out.grad_fn.widened, name
    assert [o for o, dt in launched if dt == dtype], launched
    assert all(t.grad.dtype == t.dtype for t in ts)
