"""Every kernel of the batch-norm family (kernels/batchnorm.cu), forward, backward
and the running-statistics update, through the kernel backends
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
