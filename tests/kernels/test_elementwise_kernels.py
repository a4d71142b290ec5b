"""Every kernel of the elementwise, optim, softmax and batch-norm families, forward
and backward, through the kernel backends against the CPU backend (or a float64
NumPy reference where noted).

Devices: 'emu' always (our CUDA kernels run by the host emulation); 'cuda' too when
a GPU is usable (skipped with the reason otherwise).  MINIDL_KERNEL_DEVICES=cuda (or
emu, or emu,cuda) restricts the list; benchmarks/gpu_check.sh uses it.
Shapes are tiny: emulation runs every CUDA thread as a fiber.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import minidl
from conftest import CUDA_REASON as _cuda_reason
from conftest import KERNEL_DEVICES as DEVICES  # emu, cuda (skipped with the reason); see conftest
from minidl.backend import get_backend

DTYPES = [np.float32, np.float64]
CPU = get_backend("cpu")


def tol(dtype, device, loose=1.0):
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-9 * loose, atol=1e-11 * loose)
    # float32; on a GPU nvcc fuses multiply-adds and exp is approximate
    return dict(rtol=(3e-5 if device == "cuda" else 2e-5) * loose, atol=2e-6 * loose)


def to_dev(be, a):
    return be.asarray(np.ascontiguousarray(a))


def host(be, a):
    return be.to_numpy(a)


def cpu_or(ref_fn, cpu_fn):
    """The CPU backend's result, or the NumPy reference while the CPU op is a placeholder."""
    try:
        return cpu_fn()
    except NotImplementedError:
        return ref_fn()


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- elementwise
SIZES = [1, 37, 256, 256 * 3 + 5, 4099]
ACTS = ["relu", "relu6", "sigmoid", "silu"]


def _act_input(n, dtype, seed=0):
    x = rng(seed).standard_normal(n) * 4
    x[: min(n, 4)] = [0.0, 6.0, -30.0, 40.0][: min(n, 4)]  # edges: 0, 6, saturation
    return x.astype(dtype)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("act", ACTS)
def test_activation_forward_backward(device, dtype, n, act):
    be = get_backend(device)
    x = _act_input(n, dtype)
    gy = rng(1).standard_normal(n).astype(dtype)
    y = host(be, getattr(be, act)(to_dev(be, x)))
    y_ref = getattr(CPU, act)(x)
    np.testing.assert_allclose(y, y_ref, **tol(dtype, device))
    saved = y_ref if act == "sigmoid" else x
    gx = host(be, getattr(be, act + "_backward")(to_dev(be, saved), to_dev(be, gy)))
    gx_ref = getattr(CPU, act + "_backward")(saved, gy)
    np.testing.assert_allclose(gx, gx_ref, **tol(dtype, device))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 7, 3, 5), (4, 33, 1, 1), (2, 3, 17, 19)])
def test_bias_add_and_backward(device, dtype, shape):
    be = get_backend(device)
    x = rng(2).standard_normal(shape).astype(dtype)
    b = rng(3).standard_normal(shape[1]).astype(dtype)
    bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
    y = host(be, be.bias_add(to_dev(be, x), to_dev(be, b)))
    np.testing.assert_allclose(y, x + b.reshape(bshape), **tol(dtype, device))
    gy = rng(4).standard_normal(shape).astype(dtype)
    db = host(be, be.bias_add_backward(to_dev(be, gy)))
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(db, CPU.sum(gy.astype(np.float64), axis=axes), **tol(dtype, device, 10))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,p", [(1, 0.5), (300, 0.1), (1000, 0.5), (513, 0.0)])
def test_dropout_apply_backward(device, dtype, n, p):
    be = get_backend(device)
    x = rng(5).standard_normal(n).astype(dtype)
    u = rng(6).uniform(0, 1, n).astype(dtype)
    y, mask = be.dropout_apply(to_dev(be, x), to_dev(be, u), p)
    keep = (u >= p) / (1 - p)
    np.testing.assert_allclose(host(be, mask), keep, **tol(dtype, device))
    np.testing.assert_allclose(host(be, y), x * keep, **tol(dtype, device))
    gy = rng(7).standard_normal(n).astype(dtype)
    gx = host(be, be.dropout_backward(to_dev(be, gy), mask))
    np.testing.assert_allclose(gx, gy * keep, **tol(dtype, device))


def _sgd_ref(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    p, g = p.astype(np.float64), g.astype(np.float64)
    d = g + wd * p
    if momentum:
        buf = d.copy() if first else momentum * buf.astype(np.float64) + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return p - lr * d, buf


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [
    (0.0, 0.0, 0.0, False), (0.9, 0.0, 1e-4, False), (0.9, 0.0, 5e-4, True), (0.5, 0.1, 0.0, False)])
def test_sgd_update(device, dtype, momentum, dampening, wd, nesterov):
    be = get_backend(device)
    n = 1000
    p = rng(8).standard_normal(n).astype(dtype)
    buf = None
    p_ref, buf_ref = p.copy(), None
    pd = to_dev(be, p)
    bd = be.zeros((n,), dtype) if momentum else None
    for step in range(3):
        g = rng(10 + step).standard_normal(n).astype(dtype)
        be.sgd_update(pd, to_dev(be, g), bd, 0.1, momentum, dampening, wd, nesterov, first_step=(step == 0))
        p_ref, buf_ref = _sgd_ref(p_ref, g, buf_ref, 0.1, momentum, dampening, wd, nesterov, step == 0)
    np.testing.assert_allclose(host(be, pd), p_ref, **tol(dtype, device, 10))
    if momentum:
        np.testing.assert_allclose(host(be, bd), buf_ref, **tol(dtype, device, 10))


# ---------------------------------------------------------------- softmax family
# (K <= 1024: one warp per row; K > 1024: one block per row)
ROWS = [(1, 1), (1, 5), (5, 7), (9, 40), (33, 100), (3, 1030), (2, 2500)]


def _np_log_softmax(x):
    x = x.astype(np.float64)
    z = x - x.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROWS)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_forward_backward(device, dtype, shape, log):
    be = get_backend(device)
    x = (rng(20).standard_normal(shape) * 5).astype(dtype)
    gy = rng(21).standard_normal(shape).astype(dtype)
    y = host(be, be.softmax_forward(to_dev(be, x), log))
    ref_y = lambda: _np_log_softmax(x) if log else np.exp(_np_log_softmax(x))
    y_ref = cpu_or(ref_y, lambda: CPU.softmax_forward(x, log))
    np.testing.assert_allclose(y, y_ref, **tol(dtype, device, 5))
    yy = np.asarray(y_ref, dtype=dtype)

    def ref_g():
        y64, g64 = yy.astype(np.float64), gy.astype(np.float64)
        if log:
            return g64 - np.exp(y64) * g64.sum(1, keepdims=True)
        return y64 * (g64 - (g64 * y64).sum(1, keepdims=True))
    gx = host(be, be.softmax_backward(to_dev(be, yy), to_dev(be, gy), log))
    gx_ref = cpu_or(ref_g, lambda: CPU.softmax_backward(yy, gy, log))
    np.testing.assert_allclose(gx, gx_ref, **tol(dtype, device, 10))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROWS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_forward_backward(device, dtype, shape, smoothing):
    be = get_backend(device)
    n, k = shape
    x = (rng(30).standard_normal(shape) * 3).astype(dtype)
    labels = rng(31).integers(0, k, n).astype(np.int64)
    g = rng(32).uniform(0.5, 1.5, n).astype(dtype)

    def ref_f():
        lp = _np_log_softmax(x)
        return -(1 - smoothing) * lp[np.arange(n), labels] - smoothing / k * lp.sum(1), lp
    loss, logp = be.cross_entropy_forward(to_dev(be, x), to_dev(be, labels), smoothing)
    loss_ref, logp_ref = cpu_or(ref_f, lambda: CPU.cross_entropy_forward(x, labels, smoothing))
    np.testing.assert_allclose(host(be, logp), logp_ref, **tol(dtype, device, 5))
    np.testing.assert_allclose(host(be, loss), loss_ref, **tol(dtype, device, 10))
    lp = np.asarray(logp_ref, dtype=dtype)

    def ref_b():
        t = np.full((n, k), smoothing / k)
        t[np.arange(n), labels] += 1 - smoothing
        return (np.exp(lp.astype(np.float64)) - t) * g.astype(np.float64)[:, None]
    dx = be.cross_entropy_backward(to_dev(be, lp), to_dev(be, labels), smoothing, to_dev(be, g))
    dx_ref = cpu_or(ref_b, lambda: CPU.cross_entropy_backward(lp, labels, smoothing, g))
    np.testing.assert_allclose(host(be, dx), dx_ref, **tol(dtype, device, 10))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_rejects_bad_labels(device):
    be = get_backend(device)
    x = to_dev(be, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        be.cross_entropy_forward(x, np.array([0, 3]), 0.0)  # host labels: checked on every device


# ---------------------------------------------------------------- batch norm
BN_SHAPES = [(1, 1, 1, 1), (2, 3), (2, 3, 5, 5), (4, 5, 7, 9), (3, 40, 2, 3), (8, 2, 33, 35)]


def _np_bn(x, gamma, beta, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    sh = (1, -1) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axes), x64.var(axes)
    y = (x64 - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * gamma.reshape(sh) + beta.reshape(sh)
    return y, mean, var


def _np_bn_backward(x, gy, gamma, mean, var, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    sh = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    invstd = 1 / np.sqrt(var.astype(np.float64) + eps)
    xhat = (x64 - mean.reshape(sh)) * invstd.reshape(sh)
    dbeta = g64.sum(axes)
    dgamma = (g64 * xhat).sum(axes)
    dx = (gamma * invstd).reshape(sh) / m * (m * g64 - dbeta.reshape(sh) - xhat * dgamma.reshape(sh))
    return dx, dgamma, dbeta


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_train_forward_backward(device, dtype, shape):
    be = get_backend(device)
    eps = 1e-5
    c = shape[1]
    x = (rng(40).standard_normal(shape) * 2 + 1).astype(dtype)
    gamma = rng(41).uniform(0.5, 1.5, c).astype(dtype)
    beta = rng(42).standard_normal(c).astype(dtype)
    gy = rng(43).standard_normal(shape).astype(dtype)
    y, mean, var = be.batch_norm_train_forward(to_dev(be, x), to_dev(be, gamma), to_dev(be, beta), eps)
    y_ref, mean_ref, var_ref = cpu_or(lambda: _np_bn(x, gamma, beta, eps),
                                      lambda: CPU.batch_norm_train_forward(x, gamma, beta, eps))
    np.testing.assert_allclose(host(be, mean), mean_ref, **tol(dtype, device, 10))
    np.testing.assert_allclose(host(be, var), var_ref, **tol(dtype, device, 10))
    np.testing.assert_allclose(host(be, y), y_ref, **tol(dtype, device, 20))
    mean_h = np.asarray(mean_ref, dtype=dtype)
    var_h = np.asarray(var_ref, dtype=dtype)
    dx, dgamma, dbeta = be.batch_norm_backward(to_dev(be, x), to_dev(be, gy), to_dev(be, gamma),
                                               to_dev(be, mean_h), to_dev(be, var_h), eps)
    dx_ref, dgamma_ref, dbeta_ref = cpu_or(
        lambda: _np_bn_backward(x, gy, gamma, mean_h, var_h, eps),
        lambda: CPU.batch_norm_backward(x, gy, gamma, mean_h, var_h, eps))
    np.testing.assert_allclose(host(be, dbeta), dbeta_ref, **tol(dtype, device, 20))
    np.testing.assert_allclose(host(be, dgamma), dgamma_ref, **tol(dtype, device, 20))
    # dx subtracts nearly equal terms: compare at the scale of gamma * invstd * gy
    scale = np.abs(gy).max() * np.max(gamma / np.sqrt(var_h.astype(np.float64) + eps))
    np.testing.assert_allclose(host(be, dx) / scale, np.asarray(dx_ref) / scale, **tol(dtype, device, 50))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5, 5), (3, 40, 7, 3)])
def test_batch_norm_eval_and_running_update(device, dtype, shape):
    be = get_backend(device)
    eps, momentum = 1e-3, 0.1
    c = shape[1]
    x = rng(50).standard_normal(shape).astype(dtype)
    gamma, beta = rng(51).uniform(0.5, 1.5, c).astype(dtype), rng(52).standard_normal(c).astype(dtype)
    mean, var = rng(53).standard_normal(c).astype(dtype), rng(54).uniform(0.5, 2, c).astype(dtype)
    y = be.batch_norm_eval_forward(*[to_dev(be, a) for a in (x, gamma, beta, mean, var)], eps)
    sh = (1, -1) + (1,) * (len(shape) - 2)
    ref = lambda: ((x.astype(np.float64) - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps)
                   * gamma.reshape(sh) + beta.reshape(sh))
    y_ref = cpu_or(ref, lambda: CPU.batch_norm_eval_forward(x, gamma, beta, mean, var, eps))
    np.testing.assert_allclose(host(be, y), y_ref, **tol(dtype, device, 10))
    rm, rv = to_dev(be, np.zeros(c, dtype)), to_dev(be, np.ones(c, dtype))
    count = x.size // c
    be.batch_norm_update_running(rm, rv, to_dev(be, mean), to_dev(be, var), momentum, count)
    np.testing.assert_allclose(host(be, rm), momentum * mean.astype(np.float64), **tol(dtype, device))
    np.testing.assert_allclose(host(be, rv), (1 - momentum) + momentum * var.astype(np.float64) * count / (count - 1),
                               **tol(dtype, device))


# ---------------------------------------------------------------- plumbing
@pytest.mark.timeout(60)
def test_emu_module_and_errors():
    k = minidl._emu
    assert k.emulated is True
    assert hasattr(k, "softmax_forward_f32") and hasattr(k, "batchnorm_backward_f64")
    with pytest.raises(TypeError, match="float32 and float64"):
        get_backend("emu").relu(np.zeros(3, np.int32))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["fiber", "thread"])
@pytest.mark.parametrize("name", ["warp_ops", "block_sum", "dynamic_smem"])
def test_emu_selftests(monkeypatch, mode, name):
    monkeypatch.setenv("MINIDL_EMU_MODE", mode)
    assert minidl._emu.emu_selftest(name) == "ok"


@pytest.mark.timeout(60)
def test_emu_errors_name_the_kernel(monkeypatch):
    monkeypatch.setenv("MINIDL_EMU_MODE", "fiber")
    # a divergent __syncthreads is reported, not hung (fiber mode)
    with pytest.raises(RuntimeError, match="divergent_barrier_kernel: barrier deadlock"):
        minidl._emu.emu_selftest("divergent_barrier")
    with pytest.raises(RuntimeError, match="oversized_block_kernel: invalid launch configuration"):
        minidl._emu.emu_selftest("oversized_block")
    # the emulator still works after an error
    assert minidl._emu.emu_selftest("warp_ops") == "ok"


@pytest.mark.timeout(120)
def test_tensor_to_emu_round_trip():
    x = minidl.randn(3, 4, requires_grad=True)
    y = x.to("emu")
    assert y.device == "emu"
    z = y.relu() if hasattr(y, "relu") else minidl.functional.relu(y)
    out = z.to("cpu").sum()
    out.backward()
    np.testing.assert_allclose(z.numpy(), np.maximum(x.numpy(), 0))
    np.testing.assert_allclose(x.grad.numpy(), (x.numpy() > 0).astype(np.float32))


@pytest.mark.timeout(60)
def test_cuda_unavailable_is_clear():
    if _cuda_reason is None:
        assert minidl.cuda.is_available() and minidl.cuda.device_count() >= 1
        return
    assert minidl.cuda.is_available() is False
    assert minidl.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
        minidl.tensor([1.0]).to("cuda")


@pytest.mark.timeout(120)
def test_import_does_not_import_cupy():
    code = "import sys, minidl; print(minidl._emu.__name__, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         check=True).stdout.split()
    assert out == ["minidl._emu", "False"]
