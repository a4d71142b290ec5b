"""The fused multi-tensor optimizer updates (kernels/optim.cu: SGD, Adam/AdamW, RMSprop)
through the kernel backends and the CPU backend, against float64 NumPy references of
the optimizers' formulas, over lists of tensors that exercise the launch packing:
many tensors (more than one launch's list), tensors of several chunks, and a tensor
whose chunks run past one launch's blocks.

Devices: 'cpu' and 'emu' always (our CUDA kernels run by the host emulation); 'cuda'
too when a GPU is usable (skipped with the reason otherwise).  MINIDL_KERNEL_DEVICES
restricts the kernel devices; benchmarks/gpu_check.sh uses it.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import KERNEL_DEVICES as DEVICES  # emu, cuda (skipped with the reason); see conftest
from kernel_testing import DTYPES, host, rng, to_dev, tol
from minidl.backend import get_backend

# 45 tensors (past the 40 of one list), one of 3 chunks (16384 values each), an empty one
SIZES = [7, 1000, 40000, 0, 3] + [17 + k for k in range(40)]


def _tensors(dtype, seed, sizes=SIZES):
    return [rng(seed + k).standard_normal(n).astype(dtype) for k, n in enumerate(sizes)]


def _check(be, device, dtype, got, want, loose=10):
    for g, w in zip(got, want):
        np.testing.assert_allclose(host(be, g), w, **tol(dtype, device, loose))


def _sgd_ref(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    p, g = p.astype(np.float64), g.astype(np.float64)
    d = g + wd * p
    if momentum:
        buf = d.copy() if first else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return p - lr * d, buf


@pytest.mark.timeout(120)
@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [
    (0.0, 0.0, 0.0, False), (0.9, 0.0, 1e-4, False), (0.9, 0.0, 5e-4, True), (0.5, 0.1, 0.0, False)])
def test_sgd_update(device, dtype, momentum, dampening, wd, nesterov):
    be = get_backend(device)
    params = _tensors(dtype, 8)
    refs = [(p.astype(np.float64), None) for p in params]
    dev = [to_dev(be, p) for p in params]
    bufs = [be.zeros(p.shape, dtype) for p in params] if momentum else None
    for step in range(3):
        grads = _tensors(dtype, 100 * (step + 1))
        be.sgd_update(dev, [to_dev(be, g) for g in grads], bufs, 0.1, momentum, dampening, wd, nesterov,
                      first_step=(step == 0))
        refs = [_sgd_ref(p, g, b, 0.1, momentum, dampening, wd, nesterov, step == 0)
                for (p, b), g in zip(refs, grads)]
    _check(be, device, dtype, dev, [p for p, _ in refs])
    if momentum:
        _check(be, device, dtype, bufs, [b for _, b in refs])


def _adam_ref(p, g, m, v, vmax, t, lr, b1, b2, eps, wd, decoupled):
    g = g.astype(np.float64)
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    vhat = v if vmax is None else np.maximum(vmax, v)
    p = p - lr / (1 - b1 ** t) * m / (np.sqrt(vhat) / np.sqrt(1 - b2 ** t) + eps)
    return p, m, v, (None if vmax is None else vhat)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wd,decoupled,amsgrad", [(0.0, False, False), (1e-2, False, True), (1e-2, True, False)],
                         ids=["adam", "adam_l2_amsgrad", "adamw"])
def test_adam_update(device, dtype, wd, decoupled, amsgrad):
    be = get_backend(device)
    params = _tensors(dtype, 8)
    dev = [to_dev(be, p) for p in params]
    zeros = lambda: [be.zeros(p.shape, dtype) for p in params]  # noqa: E731
    m, v, vmax = zeros(), zeros(), (zeros() if amsgrad else None)
    refs = [(p.astype(np.float64), 0.0, 0.0, 0.0 if amsgrad else None) for p in params]
    hyper = (1e-2, 0.9, 0.999, 1e-8, wd, decoupled)
    for t in (1, 2, 3):
        grads = _tensors(dtype, 100 * t)
        be.adam_update(dev, [to_dev(be, g) for g in grads], m, v, vmax, t, *hyper)
        refs = [_adam_ref(p, g, mr, vr, xr, t, *hyper) for (p, mr, vr, xr), g in zip(refs, grads)]
    _check(be, device, dtype, dev, [r[0] for r in refs], 100)
    _check(be, device, dtype, m, [r[1] for r in refs], 100)
    _check(be, device, dtype, v, [r[2] for r in refs], 100)
    if amsgrad:
        _check(be, device, dtype, vmax, [r[3] for r in refs], 100)


def _rmsprop_ref(p, g, ms, mg, buf, lr, alpha, eps, momentum, wd, inside):
    g = g.astype(np.float64) + wd * p
    ms = alpha * ms + (1 - alpha) * g * g
    den = ms
    if mg is not None:
        mg = alpha * mg + (1 - alpha) * g
        den = ms - mg * mg
    step = lr * g / (np.sqrt(den + eps) if inside else np.sqrt(den) + eps)
    if buf is not None:
        buf = momentum * buf + step
        step = buf
    return p - step, ms, mg, buf


@pytest.mark.timeout(120)
@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,wd,centered,inside", [(0.9, 1e-5, False, True), (0.0, 0.0, True, False)],
                         ids=["tf_momentum", "centered_eps_outside"])
def test_rmsprop_update(device, dtype, momentum, wd, centered, inside):
    be = get_backend(device)
    params = _tensors(dtype, 8)
    dev = [to_dev(be, p) for p in params]
    ms = [be.full(p.shape, 1.0, dtype) for p in params]
    mg = [be.zeros(p.shape, dtype) for p in params] if centered else None
    bufs = [be.zeros(p.shape, dtype) for p in params] if momentum else None
    refs = [(p.astype(np.float64), 1.0, 0.0 if centered else None, 0.0 if momentum else None) for p in params]
    hyper = (1e-2, 0.9, 1e-3, momentum, wd, inside)
    for step in range(3):
        grads = _tensors(dtype, 100 * (step + 1))
        be.rmsprop_update(dev, [to_dev(be, g) for g in grads], ms, mg, bufs, *hyper)
        refs = [_rmsprop_ref(p, g, a, b, c, *hyper) for (p, a, b, c), g in zip(refs, grads)]
    _check(be, device, dtype, dev, [r[0] for r in refs], 100)
    _check(be, device, dtype, ms, [r[1] for r in refs], 100)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("device", DEVICES)
def test_sgd_update_tensor_spanning_two_launches(device):
    """Three tensors of 128 chunks each: the third runs past the 320 blocks of one launch
    and goes on in the next."""
    be = get_backend(device)
    sizes = [128 * 16384] * 3
    params, grads = _tensors(np.float32, 1, sizes), _tensors(np.float32, 50, sizes)
    want = [p.astype(np.float64) - 0.5 * g for p, g in zip(params, grads)]
    dev = [to_dev(be, p) for p in params]
    be.sgd_update(dev, [to_dev(be, g) for g in grads], None, 0.5)
    _check(be, device, np.float32, dev, want)


@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
def test_non_contiguous_param_takes_the_generic_form_in_place(device):
    be = get_backend(device)
    p = rng(3).standard_normal((6, 5)).astype(np.float32)
    g = rng(4).standard_normal((5, 6)).astype(np.float32)
    dev = be.asarray(p.copy()).T  # a transposed view: not C-contiguous
    be.sgd_update([dev], [be.asarray(g)], None, 0.1)
    np.testing.assert_allclose(host(be, dev), p.T - 0.1 * g, rtol=1e-6)
