"""Batch normalization on the CPU: fused parallel Numba loops, one channel per task.

The input is viewed as (N, C, M) with M = H*W (M = 1 for 2-D input), so a channel
is N contiguous runs of M values.  Statistics accumulate in float64; the mean and
variance come from one pass over data shifted by the channel's first value (this
keeps E[d^2] - E[d]^2 free of cancellation for data far from zero).  The
elementwise passes are affine maps ``a*x + b`` with per-channel coefficients in the
input's dtype, so they vectorize in float32.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ...dtypes import is_half
from ..checks import check_array
from .parallel import parallel_kernel

# Reassociation lets LLVM vectorize the reductions; NaN/inf semantics are kept.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


def _as_ncm(a):
    """(N, C, H, W) or (N, C) -> contiguous (N, C, H*W) view."""
    a = np.ascontiguousarray(a)
    if a.ndim == 2:
        return a.reshape(a.shape[0], a.shape[1], 1)
    if a.ndim == 4:
        return a.reshape(a.shape[0], a.shape[1], a.shape[2] * a.shape[3])
    raise ValueError(f"batch_norm: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape {a.shape}")


def _per_channel(x3, vectors, op):
    """The (C,) vectors (name -> array) of an (N, C, M) input, as float64, shape-checked."""
    return [np.ascontiguousarray(check_array(op, name, a, x3.shape[1:2]), dtype=np.float64)
            for name, a in vectors.items()]


@parallel_kernel(fastmath=_FAST)
def _train_forward(x, gamma, beta, eps, relu, momentum, running_mean, running_var, y, mean, var):
    n_batch, channels, m = x.shape
    count = n_batch * m
    unbias = count / (count - 1) if count > 1 else 1.0
    for c in prange(channels):
        shift = np.float64(x[0, c, 0])
        s = 0.0
        ss = 0.0
        for n in range(n_batch):
            for i in range(m):
                d = np.float64(x[n, c, i]) - shift
                s += d
                ss += d * d
        mu = s / count
        v = max(ss / count - mu * mu, 0.0)
        mean_c = shift + mu
        scale = gamma[c] / np.sqrt(v + eps)
        a = x.dtype.type(scale)
        b = x.dtype.type(beta[c] - mean_c * scale)
        for n in range(n_batch):
            for i in range(m):
                y[n, c, i] = x[n, c, i] * a + b
                if relu and y[n, c, i] < 0:  # NaN passes, as relu does
                    y[n, c, i] = 0
        mean[c] = mean_c
        var[c] = v
        if running_mean.shape[0]:  # IN PLACE, as the kernels' finalize step does
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean_c
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * v * unbias


@parallel_kernel(fastmath=_FAST)
def _affine_forward(x, gamma, beta, mean, var, eps, relu, y):
    n_batch, channels, m = x.shape
    for c in prange(channels):
        scale = gamma[c] / np.sqrt(np.float64(var[c]) + eps)
        a = x.dtype.type(scale)
        b = x.dtype.type(beta[c] - mean[c] * scale)
        for n in range(n_batch):
            for i in range(m):
                y[n, c, i] = x[n, c, i] * a + b
                if relu and y[n, c, i] < 0:
                    y[n, c, i] = 0


@parallel_kernel(fastmath=_FAST)
def _train_backward(x, gy, gamma, beta, mean, var, eps, relu, dx, dgamma, dbeta):
    """With ``relu`` the forward was max(bn(x), 0): gy counts where bn(x) > 0 (g')."""
    n_batch, channels, m = x.shape
    count = n_batch * m
    for c in prange(channels):
        mu = np.float64(mean[c])
        invstd = 1.0 / np.sqrt(np.float64(var[c]) + eps)
        mask_a = x.dtype.type(gamma[c] * invstd)  # the forward's affine map, for the mask
        mask_b = x.dtype.type(beta[c] - mu * gamma[c] * invstd)
        sum_g = 0.0
        sum_gx = 0.0
        for n in range(n_batch):
            for i in range(m):
                g = np.float64(gy[n, c, i])
                if relu and not x[n, c, i] * mask_a + mask_b > 0:
                    g = 0.0
                sum_g += g
                sum_gx += g * (np.float64(x[n, c, i]) - mu)
        dbeta[c] = sum_g
        dgamma[c] = sum_gx * invstd
        # dx = k*(gy - sum_g/count - xhat*dgamma/count), k = gamma*invstd, written as
        # a*gy + b*x + d so that the pass is one fused multiply-add chain.
        k = gamma[c] * invstd
        b64 = -k * sum_gx * invstd * invstd / count
        a = x.dtype.type(k)
        b = x.dtype.type(b64)
        d = x.dtype.type(-b64 * mu - k * sum_g / count)
        for n in range(n_batch):
            for i in range(m):
                g = gy[n, c, i]
                if relu and not x[n, c, i] * mask_a + mask_b > 0:
                    g = 0
                dx[n, c, i] = g * a + x[n, c, i] * b + d


def _running_stats(running_mean, running_var, channels):
    """The running stats the forward updates in place (empty arrays: none)."""
    if running_mean is None:
        return np.empty(0), np.empty(0)
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        check_array("batch_norm_train_forward", name, a, (channels,))
        if not a.flags.writeable:
            raise ValueError(f"batch_norm_train_forward: {name} must be writeable (it is updated in place)")
    return running_mean, running_var


def batch_norm_train_forward(x, gamma, beta, eps, relu=False, running_mean=None, running_var=None, momentum=0.1):
    x3 = _as_ncm(x)
    channels = x3.shape[1]
    y = np.empty_like(x3)
    mean = np.empty(channels, dtype=x3.dtype)
    var = np.empty(channels, dtype=x3.dtype)
    # half running stats (a half model's; Numba has no float16) are updated after the pass
    half_running = running_mean is not None and is_half(running_mean.dtype)
    running = _running_stats(*((None, None) if half_running else (running_mean, running_var)), channels)
    if x3.size:
        _train_forward.sized(x3.size)(x3, *_per_channel(x3, {"weight": gamma, "bias": beta},
                                                        "batch_norm_train_forward"), float(eps), bool(relu),
                                      float(momentum), *running, y, mean, var)
    if half_running:
        count = x3.shape[0] * x3.shape[2]
        unbias = count / (count - 1) if count > 1 else 1.0
        for stat, batch in ((running_mean, mean), (running_var, var * unbias)):
            stat[...] = (1 - momentum) * stat.astype(np.float32) + momentum * batch
    return y.reshape(x.shape), mean, var


def batch_norm_eval_forward(x, gamma, beta, mean, var, eps, relu=False):
    x3 = _as_ncm(x)
    y = np.empty_like(x3)
    if x3.size:
        vectors = {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var}
        _affine_forward.sized(x3.size)(x3, *_per_channel(x3, vectors, "batch_norm_eval_forward"), float(eps),
                                       bool(relu), y)
    return y.reshape(x.shape)


def batch_norm_backward(x, gy, gamma, beta, mean, var, eps, relu=False):
    x3 = _as_ncm(x)
    gy3 = _as_ncm(np.asarray(gy, dtype=x3.dtype))
    channels = x3.shape[1]
    dx = np.empty_like(x3)
    dgamma = np.empty(channels, dtype=x3.dtype)
    dbeta = np.empty(channels, dtype=x3.dtype)
    if x3.size:
        vectors = {"weight": gamma, "bias": beta, "mean": mean, "var": var}
        _train_backward.sized(x3.size)(x3, gy3, *_per_channel(x3, vectors, "batch_norm_backward"), float(eps),
                                       bool(relu), dx, dgamma, dbeta)
    return dx.reshape(x.shape), dgamma, dbeta
