"""LRN kernels (kernels/lrn.cu) against the CPU backend, forward and backward, through
the kernel backends (emu always, cuda where a GPU is usable; MINIDL_KERNEL_DEVICES
restricts them).
"""
from __future__ import annotations

import numpy as np
import pytest

from kernel_testing import RTOL, be, close as _close, cpu, rand as _rand  # noqa: F401 (fixtures)


# ---------------------------------------------------------------- LRN
@pytest.mark.timeout(120)
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 0.5, 0.75, 2.0), (4, 0.3, 0.6, 1.0),
                                               (1, 0.2, 0.75, 1.0), (9, 1e-2, 0.75, 1.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lrn(be, cpu, size, alpha, beta, k, dtype):
    x = _rand((2, 7, 3, 5), 15, dtype)
    y_ref, s_ref = cpu.lrn_forward(x, size, alpha, beta, k)
    gy = _rand(x.shape, 16, dtype)
    dx_ref = cpu.lrn_backward(x, y_ref, s_ref, gy, size, alpha, beta, k)
    y, s = be.lrn_forward(be.asarray(x), size, alpha, beta, k)
    dx = be.lrn_backward(be.asarray(x), y, s, be.asarray(gy), size, alpha, beta, k)
    tol = RTOL if dtype == np.float32 else 1e-12
    _close(be.to_numpy(y), y_ref, tol, tol, "forward")
    _close(be.to_numpy(s), s_ref, tol, tol, "scale")
    _close(be.to_numpy(dx), dx_ref, tol, tol, "input gradient")
