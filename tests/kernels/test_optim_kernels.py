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


def _updates(be, dtype, seed=5):
    """(name, run(skip), arrays updated in place): one call of each fused update on fresh
    tensors (several per list, one non-contiguous on the generic path)."""
    def fresh(k):
        return [to_dev(be, a) for a in _tensors(dtype, seed + k, [7, 40000, 3])]
    cases = []
    p, g, b = fresh(0), fresh(10), fresh(20)
    cases.append(("sgd", lambda skip: be.sgd_update(p, g, b, 0.1, 0.9, 0.0, 1e-4, True, skip=skip), p + b))
    q, h, m, v, vmax = fresh(30), fresh(40), fresh(50), [be.abs(a) for a in fresh(60)], \
        [be.abs(a) for a in fresh(70)]
    cases.append(("adam", lambda skip: be.adam_update(q, h, m, v, vmax, 3, 1e-2, 0.9, 0.999, 1e-8, 1e-2, True,
                                                      skip=skip), q + m + v + vmax))
    r, k, ms = fresh(80), fresh(90), [be.abs(a) for a in fresh(100)]
    wide = be.asarray(rng(3).standard_normal((6, 5)).astype(dtype)).T  # the generic path
    r.append(wide)
    k.append(to_dev(be, rng(4).standard_normal((5, 6)).astype(dtype)))
    ms.append(be.ones((5, 6), dtype))
    cases.append(("rmsprop", lambda skip: be.rmsprop_update(r, k, ms, None, None, 1e-2, 0.9, 1e-3, skip=skip),
                  r + ms))
    return cases


@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
def test_skip_flag_leaves_params_and_state_bit_identical(device):
    """skip (GradScaler's device flag): set, every update changes nothing, bit for bit;
    clear, the update equals one without the flag."""
    be = get_backend(device)
    flag = lambda v: be.max(be.full((2,), v, np.float32))  # noqa: E731  (a reduction's result, as GradScaler's)
    for (name, run, arrays), (_, plain, plain_arrays) in zip(_updates(be, np.float32), _updates(be, np.float32)):
        before = [host(be, a).tobytes() for a in arrays]
        run(flag(1.0))
        assert [host(be, a).tobytes() for a in arrays] == before, name
        run(flag(0.0))
        plain(None)
        after = [host(be, a).tobytes() for a in arrays]
        assert after != before and after == [host(be, a).tobytes() for a in plain_arrays], name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_16_bit_updates_round_the_float_result_once(device, half):
    """float16/bfloat16 params, grads and state (a half model): the kernels compute each
    update in float and round once, as the float64 reference of the same 16-bit inputs
    rounded to the format (within one rounding)."""
    from minidl import dtypes
    dtype = dtypes.dtype(half)
    be = get_backend(device)
    launched, launch = [], be.launch
    be.launch = lambda op, dt, *a: (launched.append((op, np.dtype(dt))), launch(op, dt, *a))[1]
    try:
        cases = _updates(be, dtype)
        inputs = {name: [host(be, a).astype(np.float64) for a in arrays] for name, _, arrays in cases}
        for name, run, _ in cases:
            run(None)
    finally:
        del be.launch
    assert {(f"{n}_update", dtype) for n in ("sgd", "adam", "rmsprop")} <= set(launched)
    eps = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[half]
    f64 = lambda a: host(be, a).astype(np.float64)  # noqa: E731
    # float64 references of the same rounded inputs (the grads are regenerated the same way)
    grads = {"sgd": _tensors(dtype, 15, [7, 40000, 3]), "adam": _tensors(dtype, 45, [7, 40000, 3]),
             "rmsprop": _tensors(dtype, 95, [7, 40000, 3])}
    p, b = inputs["sgd"][:3], inputs["sgd"][3:]
    want_sgd = []
    for pk, gk, bk in zip(p, grads["sgd"], b):
        pk2, bk2 = _sgd_ref(pk, gk.astype(np.float64), bk, 0.1, 0.9, 0.0, 1e-4, True, False)
        want_sgd.append((pk2, bk2))
    got = {name: [f64(a) for a in arrays] for name, _, arrays in cases}
    for (pw, bw), pg, bg in zip(want_sgd, got["sgd"][:3], got["sgd"][3:]):
        for w, g in ((pw, pg), (bw, bg)):
            assert np.all(np.abs(g - w) <= eps * np.abs(w) + 1e-6), ("sgd", float(np.abs(g - w).max()))
    q, m, v, vmax = (inputs["adam"][i * 3:(i + 1) * 3] for i in range(4))
    for k in range(3):
        pw, mw, vw, xw = _adam_ref(q[k], grads["adam"][k], m[k], v[k], vmax[k], 3, 1e-2, 0.9, 0.999, 1e-8, 1e-2, True)
        for w, g in ((pw, got["adam"][k]), (mw, got["adam"][3 + k]), (xw, got["adam"][9 + k])):
            assert np.all(np.abs(g - w) <= eps * np.abs(w) + 1e-6), ("adam", float(np.abs(g - w).max()))


@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
@pytest.mark.parametrize("inject", [None, "inf", "nan"])
def test_amp_unscale(device, inject):
    """Backend.amp_unscale (GradScaler.unscale_): every gradient times inv_scale in place
    (45 float32 tensors in lists, a float16 one, a non-contiguous one on the generic path),
    found_inf set to 1 exactly when a result is inf/NaN, and never cleared."""
    be = get_backend(device)
    arrays = _tensors(np.float32, 7) + [rng(8).standard_normal(300).astype(np.float16),
                                        rng(9).standard_normal((6, 5)).astype(np.float32)]
    if inject is not None:
        arrays[20][3] = np.inf if inject == "inf" else np.nan
    want = [(a.astype(np.float32) * 0.25).astype(a.dtype) for a in arrays[:-1] + [arrays[-1].T]]
    dev = [to_dev(be, a.copy()) for a in arrays[:-1]] + [be.asarray(arrays[-1].copy()).T]
    found = be.zeros((), np.float32)
    inv = be.max(be.full((2,), 0.25, np.float32))  # a reduction's result, as GradScaler's 1/scale
    be.amp_unscale(dev, inv, found)
    assert float(be.to_numpy(found)) == (0.0 if inject is None else 1.0)
    for got, w in zip(dev, want):
        np.testing.assert_array_equal(host(be, got), w)
    be.amp_unscale(dev[:2], inv, found)  # a clean list leaves the flag as it was
    assert float(be.to_numpy(found)) == (0.0 if inject is None else 1.0)
