"""Activations and dropout against float64 loop references, with gradient checks, on every
device (the ``device`` fixture: cpu, emu, and cuda where there is a GPU).  Dropout masks
come from ``minidl.random.generator(device)``, so ``manual_seed`` reproduces them."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import gradcheck


def sigmoid_ref(v):
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


REFERENCES = {
    "relu": lambda v: max(v, 0.0),
    "relu6": lambda v: min(max(v, 0.0), 6.0),
    "sigmoid": sigmoid_ref,
    "silu": lambda v: v * sigmoid_ref(v),
    "tanh": math.tanh,
}


def elementwise(fn, x):
    return np.array([fn(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_forward_matches_reference(name, device):
    x = np.concatenate([np.random.default_rng(0).standard_normal(40) * 4,
                        [-800.0, -30.0, 0.0, 5.999, 6.5, 30.0, 800.0]])
    got = getattr(F, name)(minidl.tensor(x, dtype="float64", device=device)).numpy()
    np.testing.assert_allclose(got, elementwise(REFERENCES[name], x), rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_float32_forward(name, device):
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32) * 4
    got = getattr(F, name)(minidl.tensor(x, device=device))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.numpy(), elementwise(REFERENCES[name], x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_gradients(name, device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)) * 4
    # keep relu/relu6 inputs away from their kinks, where finite differences are undefined
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    x = np.where(np.abs(x - 6) < 0.05, 6.3, x)
    gradcheck(getattr(F, name), x, device=device)


def test_swish_is_silu():
    assert F.swish is F.silu


def test_dropout_eval_and_zero_p_are_identity(device):
    x = minidl.randn(4, 5, device=device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x


def test_dropout_train_mask_and_scale(device):
    minidl.manual_seed(0)
    p = 0.3
    x = minidl.tensor(np.random.default_rng(3).uniform(1, 2, (200, 500)), dtype="float64", device=device)
    y = F.dropout(x, p, training=True).numpy()
    dropped = y == 0
    assert abs(dropped.mean() - p) < 0.01
    np.testing.assert_allclose(y[~dropped], x.numpy()[~dropped] / (1 - p), rtol=1e-12)


def test_dropout_same_seed_same_mask(device):
    x = minidl.ones(50, 50, device=device)
    minidl.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()
    minidl.manual_seed(7)
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


def test_dropout_gradient_is_mask_times_scale(device):
    minidl.manual_seed(1)
    x = minidl.tensor(np.random.default_rng(4).uniform(1, 2, (6, 7)), dtype="float64", device=device,
                      requires_grad=True)
    y = F.dropout(x, 0.4)
    gy = np.random.default_rng(5).standard_normal((6, 7))
    y.backward(minidl.tensor(gy, dtype="float64", device=device))
    mask = (y.numpy() != 0) / 0.6
    np.testing.assert_allclose(x.grad.numpy(), gy * mask, rtol=1e-12)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5"])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"dropout: expected a probability p in \[0, 1\)"):
        F.dropout(minidl.ones(2), p)


def test_activation_type_errors():
    with pytest.raises(TypeError, match="relu: expected a Tensor, got ndarray"):
        F.relu(np.ones(3))
    with pytest.raises(TypeError, match="sigmoid: expected a floating-point tensor, got dtype int64"):
        F.sigmoid(minidl.tensor(np.arange(3)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["relu", "relu6", "sigmoid", "silu"])
def test_cpu_fused_activations_keep_the_generic_semantics(op, dtype):
    """The CPU backend's one-pass Numba activations (backend/cpu/elementwise.py) against
    the generic NumPy forms of backend/base.py, on the edge values: NaN, +-inf, +-0, the
    relu6 bounds, and a non-contiguous input."""
    from minidl.backend import get_backend
    from minidl.backend.base import Backend
    cpu = get_backend("cpu")
    edge = [np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, 5.999, 6.001, 1e-30, -1e-30, 80.0, -80.0, 700.0, -700.0]
    rng = np.random.default_rng(0)
    x = np.concatenate([edge, rng.standard_normal(50) * 4]).astype(dtype)
    x = np.stack([x, x[::-1]], axis=1).T  # (2, n) from a transpose: not C-contiguous
    gy = rng.standard_normal(x.shape).astype(dtype)
    gy[0, :3] = [np.nan, np.inf, 2.0]
    saved = Backend.sigmoid(cpu, x) if op == "sigmoid" else x  # sigmoid's backward takes the output
    rtol = 1e-6 if dtype == "float32" else 1e-15  # (sigmoid rounds in another order)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(getattr(cpu, op)(x), getattr(Backend, op)(cpu, x), rtol=rtol, atol=0)
        got = getattr(cpu, f"{op}_backward")(saved, gy)
        want = getattr(Backend, f"{op}_backward")(cpu, saved, gy)
    assert got.dtype == want.dtype == np.dtype(dtype) and got.shape == x.shape
    # float32: the two round in a different order (both are checked against float64 above)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-14, atol=1e-30, equal_nan=True)
    with pytest.raises(ValueError, match=f"{op}_backward: gy has shape"):
        getattr(cpu, f"{op}_backward")(saved, gy[:, :3])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_add_relu_matches_reference_and_gradients(dtype, device):
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    t = lambda v: minidl.tensor(v, dtype=dtype, device=device)
    y = F.add_relu(t(a), t(b))
    ref = elementwise(REFERENCES["relu"], a.astype(dtype).astype(np.float64) + b.astype(dtype))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-6, atol=1e-6)
    assert y.dtype == np.dtype(dtype)
    if dtype == "float64":
        gradcheck(F.add_relu, a, b, device=device)


def test_add_relu_broadcasts_like_the_two_ops(device):
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 1))
    t = lambda v: minidl.tensor(v, dtype="float64", device=device)
    np.testing.assert_allclose(F.add_relu(t(a), t(b)).numpy(), np.maximum(a + b, 0), rtol=1e-12)
    gradcheck(F.add_relu, a, b, device=device)


def test_relu_and_its_fused_forms_pass_nan_through(device):
    """As PyTorch: relu(NaN) is NaN (the CPU loops and the kernels alike), so a
    diverging run shows NaN instead of silent zeros."""
    x = minidl.tensor(np.array([[[[np.nan, -1.0], [2.0, np.nan]]]]), dtype="float32", device=device)
    zero = minidl.tensor(np.zeros((1, 1, 2, 2)), dtype="float32", device=device)
    mean, var = (minidl.tensor(np.array([v]), dtype="float32", device=device) for v in (0.0, 1.0 - 1e-5))
    for y in (F.relu(x), F.add_relu(x, zero), F.batch_norm(x, mean, var, training=False, relu=True)):
        out = y.numpy().reshape(-1)
        assert np.isnan(out[0]) and np.isnan(out[3]) and out[1] == 0 and out[2] == 2.0, out


def test_cpu_float32_sigmoid_exp_accuracy():
    """The CPU's float32 sigmoid and silu backward use their own vectorizable exp
    (cpu/fastexp.py ``exp_nonpositive``, in float32): within 2e-7 relative of
    float64 over the normal range, denormal results within one denormal step, NaN
    passed through.  The silu gradient s (1 + x (1 - s)) has a root at x = -1.28, where
    the float32 exp's rounding (<= 1 ulp) leaves up to 6.5e-9 absolute: hence atol 1e-8
    (elsewhere it is within 6.3e-8 absolute; PyTorch's float32 silu backward is within
    9.8e-7 on these points)."""
    from minidl.backend import get_backend
    cpu = get_backend("cpu")
    x = np.concatenate([np.linspace(-110, 110, 200001), [np.nan, np.inf, -np.inf, 0.0, -0.0]]).astype(np.float32)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    got = cpu.sigmoid(x)
    normal = np.isfinite(x) & (exact >= np.finfo(np.float32).tiny)
    assert np.max(np.abs(got[normal] - exact[normal]) / exact[normal]) <= 2e-7
    assert np.max(np.abs(got[~normal & np.isfinite(x)] - exact[~normal & np.isfinite(x)])) <= 2.0 ** -149
    assert np.isnan(got[-5]) and got[-4] == 1.0 and got[-3] == 0.0 and got[-2] == got[-1] == 0.5
    gy = np.ones_like(x)
    with np.errstate(invalid="ignore"):
        grad = cpu.silu_backward(x, gy)
        s = exact
        want = s * (1 + x.astype(np.float64) * (1 - s))
    finite = np.isfinite(x)
    np.testing.assert_allclose(grad[finite], want[finite], rtol=2e-6, atol=1e-8)
    assert np.isnan(grad[-5])
