"""Batch normalization on the CPU: fused parallel Numba loops, one channel per task, or
on small maps a panel of channels per task.

The input is viewed as (N, C, M) with M = H*W (M = 1 for 2-D input), so a channel
is N contiguous runs of M values.  Up to FLAT_MAX_PIXELS those runs are too short to
vectorize, and the loops run over each image's (panel of) channels instead.
Statistics accumulate in float64; the mean and variance come from one pass over data
shifted by the channel's first value (this keeps E[d^2] - E[d]^2 free of
cancellation for data far from zero).  The
elementwise passes are affine maps ``a*x + b`` with per-channel coefficients in the
input's dtype, so they vectorize in float32.
"""
from __future__ import annotations

import numpy as np
import numba
from numba import njit, prange

from ...dtypes import is_half
from ..checks import check_array
from .gemm import panels
from .parallel import parallel_kernel

# Reassociation lets LLVM vectorize the reductions; NaN/inf semantics are kept.
_FAST = {"reassoc", "contract", "nsz", "arcp"}
# Maps of at most this many pixels run the channels-inner loops (_train_forward_flat ...),
# in panels of at most about FLAT_PANEL_POSITIONS values per image.  Channel-major /
# channels-inner, forward and backward (ReLU fused), ms, one thread and two:
# (64, 512, 2, 2) 0.33 / 0.07 and 0.31 / 0.12, 0.25 / 0.09 and 0.25 / 0.13;
# (64, 256, 4, 4) 0.26 / 0.15 and 0.36 / 0.22, 0.21 / 0.13 and 0.25 / 0.21;
# (256, 4096) 9.3 / 0.50 and 14.1 / 0.87 (each channel a strided column);
# (16, 2048, 4, 4) backward on two threads 0.36 / 0.41; at 6x6 even, from 7x7 slower
# ((16, 1280, 7, 7) backward 0.80 / 0.89, (64, 64, 16, 16) 0.54 / 0.89): the per-position
# sums are more memory traffic than the channel-major loops' registers.
FLAT_MAX_PIXELS = 16
FLAT_PANEL_POSITIONS = 1 << 14


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


@njit(inline="always")
def _statistics(c, s, ss, count, shift, gamma, beta, eps, momentum, running_mean, running_var, mean, var):
    """Channel c's batch mean and variance from its sums of d = x - shift and d^2 (float64),
    stored in mean / var and the running stats (IN PLACE, as the kernels' finalize step
    does) -> the coefficients (a, b) of y = a x + b, in float64."""
    mu = s / count
    v = max(ss / count - mu * mu, 0.0)
    mean_c = shift + mu
    scale = gamma[c] / np.sqrt(v + eps)
    mean[c] = mean_c
    var[c] = v
    if running_mean.shape[0]:
        unbias = count / (count - 1) if count > 1 else 1.0
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean_c
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * v * unbias
    return scale, beta[c] - mean_c * scale


@njit(inline="always")
def _affine(c, gamma, beta, mean, var, eps):
    """The coefficients (a, b) of y = a x + b from given statistics, in float64 (the
    backward's ReLU mask: where a x + b > 0)."""
    scale = gamma[c] / np.sqrt(np.float64(var[c]) + eps)
    return scale, beta[c] - mean[c] * scale


@njit(inline="always")
def _gradient_map(c, sum_g, sum_gx, count, gamma, invstd, mu):
    """dx = a gy + b x + d for channel c, from the sums of g and g (x - mu) (float64):
    k (gy - sum_g / count - xhat dgamma / count) with k = gamma invstd, written so that
    the pass is one fused multiply-add chain."""
    k = gamma[c] * invstd
    b = -k * sum_gx * invstd * invstd / count
    return k, b, -b * mu - k * sum_g / count


@parallel_kernel(fastmath=_FAST)
def _train_forward(x, gamma, beta, eps, relu, momentum, running_mean, running_var, y, mean, var):
    n_batch, channels, m = x.shape
    for c in prange(channels):
        shift = np.float64(x[0, c, 0])
        s = 0.0
        ss = 0.0
        for n in range(n_batch):
            for i in range(m):
                d = np.float64(x[n, c, i]) - shift
                s += d
                ss += d * d
        a64, b64 = _statistics(c, s, ss, n_batch * m, shift, gamma, beta, eps, momentum, running_mean,
                               running_var, mean, var)
        a, b = x.dtype.type(a64), x.dtype.type(b64)
        for n in range(n_batch):
            for i in range(m):
                y[n, c, i] = x[n, c, i] * a + b
                if relu and y[n, c, i] < 0:  # NaN passes, as relu does
                    y[n, c, i] = 0


@parallel_kernel(fastmath=_FAST)
def _affine_forward(x, gamma, beta, mean, var, eps, relu, y):
    n_batch, channels, m = x.shape
    for c in prange(channels):
        a64, b64 = _affine(c, gamma, beta, mean, var, eps)
        a, b = x.dtype.type(a64), x.dtype.type(b64)
        for n in range(n_batch):
            for i in range(m):
                y[n, c, i] = x[n, c, i] * a + b
                if relu and y[n, c, i] < 0:
                    y[n, c, i] = 0


@parallel_kernel(fastmath=_FAST)
def _train_backward(x, gy, gamma, beta, mean, var, eps, relu, dx, dgamma, dbeta):
    """With ``relu`` the forward was max(bn(x), 0): gy counts where bn(x) > 0 (g')."""
    n_batch, channels, m = x.shape
    for c in prange(channels):
        mu = np.float64(mean[c])
        invstd = 1.0 / np.sqrt(np.float64(var[c]) + eps)
        mask_a64, mask_b64 = _affine(c, gamma, beta, mean, var, eps)  # the forward's map, for the mask
        mask_a, mask_b = x.dtype.type(mask_a64), x.dtype.type(mask_b64)
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
        a64, b64, d64 = _gradient_map(c, sum_g, sum_gx, n_batch * m, gamma, invstd, mu)
        a, b, d = x.dtype.type(a64), x.dtype.type(b64), x.dtype.type(d64)
        for n in range(n_batch):
            for i in range(m):
                g = gy[n, c, i]
                if relu and not x[n, c, i] * mask_a + mask_b > 0:
                    g = 0
                dx[n, c, i] = g * a + x[n, c, i] * b + d


# ---- small maps: channels inner
#
# With a few pixels per map the loops above run N short runs per channel, which LLVM
# leaves scalar.  These loops run over a panel of whole channels per image instead,
# (C/parts) * M contiguous values, keeping one sum per position (the per-channel values
# spread to per-position arrays); a channel's sums are added at the end.
# ``channel_panels`` (tasks, 2): each task's channels [c0, c1), from gemm.panels.


@njit(inline="always")
def _spread(values, m, dtype):
    """Per-channel values -> per-position (each repeated m times)."""
    out = np.empty(values.shape[0] * m, dtype=dtype)
    for q in range(values.shape[0]):
        for i in range(m):
            out[q * m + i] = values[q]
    return out


@njit(inline="always", fastmath=_FAST)
def _apply(x2, y2, k0, a, b, relu):
    """y = a x + b (then max(., 0) where ``relu``) on a panel's positions of every image."""
    for n in range(x2.shape[0]):
        xr = x2[n, k0:k0 + a.shape[0]]
        yr = y2[n, k0:k0 + a.shape[0]]
        for k in range(a.shape[0]):
            v = xr[k] * a[k] + b[k]
            if relu and v < 0:  # NaN passes
                v = 0
            yr[k] = v


@parallel_kernel(fastmath=_FAST)
def _train_forward_flat(x, gamma, beta, eps, relu, momentum, running_mean, running_var, y, mean, var,
                        channel_panels):
    n_batch, channels, m = x.shape
    x2, y2 = x.reshape(n_batch, channels * m), y.reshape(n_batch, channels * m)
    for p in prange(channel_panels.shape[0]):
        c0, c1 = channel_panels[p, 0], channel_panels[p, 1]
        k0 = c0 * m
        shifts = np.empty(c1 - c0)
        for c in range(c0, c1):
            shifts[c - c0] = x[0, c, 0]
        shift = _spread(shifts, m, np.float64)
        s = np.zeros(shift.shape[0])
        ss = np.zeros(shift.shape[0])
        for n in range(n_batch):
            xr = x2[n, k0:k0 + shift.shape[0]]
            for k in range(shift.shape[0]):
                d = np.float64(xr[k]) - shift[k]
                s[k] += d
                ss[k] += d * d
        a = np.empty(c1 - c0)
        b = np.empty(c1 - c0)
        for c in range(c0, c1):
            q = (c - c0) * m
            a[c - c0], b[c - c0] = _statistics(c, s[q:q + m].sum(), ss[q:q + m].sum(), n_batch * m, shifts[c - c0],
                                               gamma, beta, eps, momentum, running_mean, running_var, mean, var)
        _apply(x2, y2, k0, _spread(a, m, x.dtype), _spread(b, m, x.dtype), relu)


@parallel_kernel(fastmath=_FAST)
def _affine_forward_flat(x, gamma, beta, mean, var, eps, relu, y, channel_panels):
    n_batch, channels, m = x.shape
    for p in prange(channel_panels.shape[0]):
        c0, c1 = channel_panels[p, 0], channel_panels[p, 1]
        k0 = c0 * m
        a = np.empty(c1 - c0)
        b = np.empty(c1 - c0)
        for c in range(c0, c1):
            a[c - c0], b[c - c0] = _affine(c, gamma, beta, mean, var, eps)
        _apply(x.reshape(n_batch, channels * m), y.reshape(n_batch, channels * m), k0,
               _spread(a, m, x.dtype), _spread(b, m, x.dtype), relu)


@parallel_kernel(fastmath=_FAST)
def _train_backward_flat(x, gy, gamma, beta, mean, var, eps, relu, dx, dgamma, dbeta, channel_panels):
    n_batch, channels, m = x.shape
    x2 = x.reshape(n_batch, channels * m)
    gy2 = gy.reshape(n_batch, channels * m)
    dx2 = dx.reshape(n_batch, channels * m)
    for p in prange(channel_panels.shape[0]):
        c0, c1 = channel_panels[p, 0], channel_panels[p, 1]
        k0 = c0 * m
        mus = np.empty(c1 - c0)
        invstds = np.empty(c1 - c0)
        mask_as = np.empty(c1 - c0)
        mask_bs = np.empty(c1 - c0)
        for c in range(c0, c1):
            mus[c - c0] = mean[c]
            invstds[c - c0] = 1.0 / np.sqrt(np.float64(var[c]) + eps)
            mask_as[c - c0], mask_bs[c - c0] = _affine(c, gamma, beta, mean, var, eps)
        mu, mask_a, mask_b = _spread(mus, m, np.float64), _spread(mask_as, m, x.dtype), _spread(mask_bs, m, x.dtype)
        sum_g = np.zeros(mu.shape[0])
        sum_gx = np.zeros(mu.shape[0])
        for n in range(n_batch):
            xr, gr = x2[n, k0:k0 + mu.shape[0]], gy2[n, k0:k0 + mu.shape[0]]
            for k in range(mu.shape[0]):
                g = np.float64(gr[k])
                if relu and not xr[k] * mask_a[k] + mask_b[k] > 0:
                    g = 0.0
                sum_g[k] += g
                sum_gx[k] += g * (np.float64(xr[k]) - mu[k])
        a = np.empty(c1 - c0)
        b = np.empty(c1 - c0)
        d = np.empty(c1 - c0)
        for c in range(c0, c1):
            q = (c - c0) * m
            g_total, gx_total = sum_g[q:q + m].sum(), sum_gx[q:q + m].sum()
            dbeta[c] = g_total
            dgamma[c] = gx_total * invstds[c - c0]
            a[c - c0], b[c - c0], d[c - c0] = _gradient_map(c, g_total, gx_total, n_batch * m, gamma,
                                                            invstds[c - c0], mus[c - c0])
        a, b, d = _spread(a, m, x.dtype), _spread(b, m, x.dtype), _spread(d, m, x.dtype)
        for n in range(n_batch):
            xr, gr, dr = x2[n, k0:k0 + mu.shape[0]], gy2[n, k0:k0 + mu.shape[0]], dx2[n, k0:k0 + mu.shape[0]]
            for k in range(mu.shape[0]):
                g = gr[k]
                if relu and not xr[k] * mask_a[k] + mask_b[k] > 0:
                    g = 0
                dr[k] = g * a[k] + xr[k] * b[k] + d[k]


def _kernel(channel_major, flat, x3):
    """-> (kernel, extra arguments): the flat loops up to FLAT_MAX_PIXELS pixels per map,
    in panels of channels (one per thread, more where a panel's positions would exceed
    FLAT_PANEL_POSITIONS), else the channel-major loops."""
    n_batch, channels, m = x3.shape
    if m > FLAT_MAX_PIXELS:
        return channel_major.sized(x3.size), ()
    kernel = flat.sized(x3.size)
    threads = numba.get_num_threads() if kernel is flat.parallel else 1
    parts = min(channels, threads * -(-channels * m // (threads * FLAT_PANEL_POSITIONS)))
    return kernel, (np.array(panels(channels, parts), dtype=np.int64),)


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
        kernel, panel_args = _kernel(_train_forward, _train_forward_flat, x3)
        kernel(x3, *_per_channel(x3, {"weight": gamma, "bias": beta}, "batch_norm_train_forward"), float(eps),
               bool(relu), float(momentum), *running, y, mean, var, *panel_args)
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
        kernel, panel_args = _kernel(_affine_forward, _affine_forward_flat, x3)
        kernel(x3, *_per_channel(x3, vectors, "batch_norm_eval_forward"), float(eps), bool(relu), y, *panel_args)
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
        kernel, panel_args = _kernel(_train_backward, _train_backward_flat, x3)
        kernel(x3, gy3, *_per_channel(x3, vectors, "batch_norm_backward"), float(eps), bool(relu), dx, dgamma,
               dbeta, *panel_args)
    return dx.reshape(x.shape), dgamma, dbeta
