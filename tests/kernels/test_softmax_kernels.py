"""Every kernel of the softmax family (kernels/softmax.cu: softmax, log-softmax,
cross-entropy), forward and backward, through the kernel backends
against the CPU backend (or a float64 NumPy reference where noted).

Devices: 'emu' always (our CUDA kernels run by the host emulation); 'cuda' too when
a GPU is usable (skipped with the reason otherwise).  MINIDL_KERNEL_DEVICES=cuda (or
emu, or emu,cuda) restricts the list; benchmarks/gpu_check.sh uses it.
Shapes are tiny: emulation runs every CUDA thread as a fiber.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import KERNEL_DEVICES as DEVICES  # emu, cuda (skipped with the reason); see conftest
from kernel_testing import CPU, DTYPES, cpu_or, host, rng, to_dev, tol
from minidl.backend import get_backend


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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_gives_nan_rows_for_out_of_range_device_labels(device):
    """Device labels are not read on the host (a sync); the kernels turn an out-of-range
    label into a NaN loss and NaN gradient row, never a read outside the row."""
    from minidl.backend.kernel.operand import Operand
    be = get_backend(device)
    n, k = 4, 3
    x = rng(0).standard_normal((n, k)).astype(np.float32)
    labels = np.array([0, 3, -1, 2], np.int64)  # rows 1 and 2 are out of range
    d_labels = to_dev(be, labels) if device == "cuda" else labels.copy()
    loss, logp = be.empty((n,), np.float32), be.empty((n, k), np.float32)
    be.launch("cross_entropy_forward", np.float32, Operand("logits", to_dev(be, x), (n, k), np.float32),
              Operand("labels", d_labels, (n,), np.int64), Operand("loss", loss, (n,), np.float32),
              Operand("logp", logp, (n, k), np.float32), n, k, 0.1)
    dx = be.empty((n, k), np.float32)
    be.launch("cross_entropy_backward", np.float32, Operand("log_probs", logp, (n, k), np.float32),
              Operand("labels", d_labels, (n,), np.int64),
              Operand("grad_per_row", to_dev(be, np.ones(n, np.float32)), (n,), np.float32),
              Operand("dx", dx, (n, k), np.float32), n, k, 0.1)
    loss, dx = host(be, loss), host(be, dx)
    assert np.isnan(loss[1:3]).all() and np.isnan(dx[1:3]).all()
    good = np.array([0, 3])
    ref = CPU.cross_entropy_forward(x[good], labels[good], 0.1)[0]
    np.testing.assert_allclose(loss[good], ref, rtol=1e-5)
    assert np.isfinite(dx[good]).all()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(5, 7), (33, 100), (3, 1030)])  # warp and block variants
def test_16_bit_softmax_and_cross_entropy(device, half, shape):
    """The 16-bit instances (float arithmetic): (log-)softmax forward and backward rounded
    once from the float64 result of the same 16-bit inputs; cross-entropy's forward on
    16-bit logits returns float32 loss and log-probabilities (float32 accuracy)."""
    from minidl import dtypes
    dtype = dtypes.dtype(half)
    eps = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[half]
    be = get_backend(device)
    x = (rng(20).standard_normal(shape) * 3).astype(dtype)
    gy = rng(21).standard_normal(shape).astype(dtype)
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    logp = _np_log_softmax(x64)
    for log, want_y in ((False, np.exp(logp)), (True, logp)):
        y = be.softmax_forward(to_dev(be, x), log)
        assert y.dtype == dtype
        got = host(be, y).astype(np.float64)
        assert np.all(np.abs(got - want_y) <= eps * np.abs(want_y) + 1e-7), (log, np.abs(got - want_y).max())
        y64 = got  # the backward of the 16-bit output it was given
        gx = host(be, be.softmax_backward(y, to_dev(be, gy), log)).astype(np.float64)
        want = gy64 - np.exp(y64) * gy64.sum(1, keepdims=True) if log else \
            y64 * (gy64 - (gy64 * y64).sum(1, keepdims=True))
        scale = np.abs(want).max()
        assert np.all(np.abs(gx - want) <= eps * np.abs(want) + 4 * eps * scale), (log, np.abs(gx - want).max())
    labels = rng(22).integers(0, shape[1], shape[0])
    loss, lp = be.cross_entropy_forward(to_dev(be, x), to_dev(be, labels), 0.1)
    assert loss.dtype == np.float32 and lp.dtype == np.float32
    want_loss = -(0.9 * logp[np.arange(shape[0]), labels] + 0.1 / shape[1] * logp.sum(1))
    np.testing.assert_allclose(host(be, lp), logp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(host(be, loss), want_loss, rtol=1e-5, atol=1e-5)
