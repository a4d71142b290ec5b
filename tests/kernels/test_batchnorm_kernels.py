"""Every kernel of the batch-norm family (kernels/batchnorm.cu, channel.cuh), forward,
backward, each with and without the fused ReLU, and the running-statistics update,
through the kernel backends and the CPU backend against a float64 NumPy reference.

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


# ---------------------------------------------------------------- batch norm
# (1, 1, 1, 1): one value; (2, 3, 5, 5): planes under a warp (a thread per channel);
# (2, 300, 2, 2): two channel tiles; (2, 3, 40, 40): planes split over two spans;
# (8, 2, 33, 35): several image chunks
BN_SHAPES = [(1, 1, 1, 1), (2, 3), (2, 3, 5, 5), (4, 5, 7, 9), (3, 40, 2, 3), (2, 300, 2, 2), (2, 3, 40, 40),
             (8, 2, 33, 35)]


def _np_bn(x, gamma, beta, eps, relu):
    axes = (0,) + tuple(range(2, x.ndim))
    sh = (1, -1) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axes), x64.var(axes)
    y = (x64 - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * gamma.reshape(sh) + beta.reshape(sh)
    return (np.maximum(y, 0) if relu else y), mean, var


def _np_bn_backward(x, gy, gamma, beta, mean, var, eps, relu):
    axes = (0,) + tuple(range(2, x.ndim))
    sh = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    invstd = 1 / np.sqrt(var.astype(np.float64) + eps)
    xhat = (x64 - mean.reshape(sh)) * invstd.reshape(sh)
    if relu:  # the gradient passes where the fused forward's output is positive
        g64 = np.where(xhat * gamma.reshape(sh) + beta.reshape(sh) > 0, g64, 0.0)
    dbeta = g64.sum(axes)
    dgamma = (g64 * xhat).sum(axes)
    dx = (gamma * invstd).reshape(sh) / m * (m * g64 - dbeta.reshape(sh) - xhat * dgamma.reshape(sh))
    return dx, dgamma, dbeta


@pytest.mark.timeout(60)
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn_relu"])
@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_train_forward_backward(device, dtype, shape, relu):
    """Forward (with the running stats updated in place by the same call), backward, each
    with and without the fused ReLU, against float64 NumPy; data far from zero checks the
    statistics are free of cancellation."""
    be = get_backend(device)
    eps, momentum = 1e-5, 0.1
    c = shape[1]
    x = (rng(40).standard_normal(shape) * 2 + 10).astype(dtype)
    gamma = rng(41).uniform(0.5, 1.5, c).astype(dtype)
    beta = rng(42).standard_normal(c).astype(dtype)
    gy = rng(43).standard_normal(shape).astype(dtype)
    running_mean, running_var = to_dev(be, np.full(c, 0.5, dtype)), to_dev(be, np.full(c, 2.0, dtype))
    y, mean, var = be.batch_norm_train_forward(to_dev(be, x), to_dev(be, gamma), to_dev(be, beta), eps, relu,
                                               running_mean, running_var, momentum)
    y_ref, mean_ref, var_ref = _np_bn(x, gamma, beta, eps, relu)
    np.testing.assert_allclose(host(be, mean), mean_ref, **tol(dtype, device, 10))
    np.testing.assert_allclose(host(be, var), var_ref, **tol(dtype, device, 100))
    np.testing.assert_allclose(host(be, y), y_ref, **tol(dtype, device, 20))
    count = x.size // c
    unbiased = var_ref * count / (count - 1) if count > 1 else var_ref
    np.testing.assert_allclose(host(be, running_mean), 0.9 * 0.5 + momentum * mean_ref, **tol(dtype, device, 10))
    np.testing.assert_allclose(host(be, running_var), 0.9 * 2.0 + momentum * unbiased, **tol(dtype, device, 100))

    mean_h = np.asarray(mean_ref, dtype=dtype)
    var_h = np.asarray(var_ref, dtype=dtype)
    dx, dgamma, dbeta = be.batch_norm_backward(to_dev(be, x), to_dev(be, gy), to_dev(be, gamma), to_dev(be, beta),
                                               to_dev(be, mean_h), to_dev(be, var_h), eps, relu)
    dx_ref, dgamma_ref, dbeta_ref = _np_bn_backward(x, gy, gamma, beta, mean_h, var_h, eps, relu)
    np.testing.assert_allclose(host(be, dbeta), dbeta_ref, **tol(dtype, device, 20))
    np.testing.assert_allclose(host(be, dgamma), dgamma_ref, **tol(dtype, device, 20))
    # dx subtracts nearly equal terms: compare at the scale of gamma * invstd * gy
    scale = np.abs(gy).max() * np.max(gamma / np.sqrt(var_h.astype(np.float64) + eps))
    np.testing.assert_allclose(host(be, dx) / scale, np.asarray(dx_ref) / scale, **tol(dtype, device, 50))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn_relu"])
@pytest.mark.parametrize("device", ["cpu"] + DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5, 5), (3, 40, 7, 3), (1, 3, 40, 40)])
def test_batch_norm_eval_and_running_update(device, dtype, shape, relu):
    be = get_backend(device)
    eps, momentum = 1e-3, 0.1
    c = shape[1]
    x = rng(50).standard_normal(shape).astype(dtype)
    gamma, beta = rng(51).uniform(0.5, 1.5, c).astype(dtype), rng(52).standard_normal(c).astype(dtype)
    mean, var = rng(53).standard_normal(c).astype(dtype), rng(54).uniform(0.5, 2, c).astype(dtype)
    y = be.batch_norm_eval_forward(*[to_dev(be, a) for a in (x, gamma, beta, mean, var)], eps, relu)
    sh = (1, -1) + (1,) * (len(shape) - 2)
    y_ref = ((x.astype(np.float64) - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps)
             * gamma.reshape(sh) + beta.reshape(sh))
    np.testing.assert_allclose(host(be, y), np.maximum(y_ref, 0) if relu else y_ref, **tol(dtype, device, 10))
    rm, rv = to_dev(be, np.zeros(c, dtype)), to_dev(be, np.ones(c, dtype))
    count = x.size // c
    be.batch_norm_update_running(rm, rv, to_dev(be, mean), to_dev(be, var), momentum, count)
    np.testing.assert_allclose(host(be, rm), momentum * mean.astype(np.float64), **tol(dtype, device))
    np.testing.assert_allclose(host(be, rv), (1 - momentum) + momentum * var.astype(np.float64) * count / (count - 1),
                               **tol(dtype, device))
