"""The fused SGD update (kernels/optim.cu) through the kernel backends
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
from kernel_testing import DTYPES, host, rng, to_dev, tol
from minidl.backend import get_backend


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
