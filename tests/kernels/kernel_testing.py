"""What the kernel tests of tests/kernels share: tolerances, device transfer, the CPU
backend they compare against, and the fixtures ``be`` (each kernel device: emu, cuda,
skipped with the reason where unusable) and ``cpu`` (the reference backend)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import KERNEL_DEVICES
from minidl.backend import get_backend

DTYPES = [np.float32, np.float64]
RTOL, ATOL = 1e-5, 1e-5  # float32 kernels against the CPU backend
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


def rand(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def close(got, expected, rtol=RTOL, atol=ATOL, what=""):
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=what)


@pytest.fixture(params=KERNEL_DEVICES)
def be(request):
    return get_backend(request.param)


@pytest.fixture(scope="module")
def cpu():
    return get_backend("cpu")
