"""Pooling on the CPU: max, average and adaptive average, as fused Numba loops.

Every kernel runs one (n, c) plane per parallel iteration.  Backward passes
scatter into their own plane serially, so overlapping windows (3x3/2) never
race.  Semantics follow PyTorch exactly: output sizes (the op's PoolGeometry),
padded cells are ignored by max pooling, ties pick the first maximum in
row-major window order, and the average divisor counts padding only inside the
padded input (never the ceil_mode overhang).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..checks import check_pool_arrays
from .parallel import parallel_kernel


def _planes(x):
    n, c, h, w = x.shape
    return np.ascontiguousarray(x).reshape(n * c, h, w)


# ---------------------------------------------------------------- max pool
@parallel_kernel()
def _max_pool2d_forward(x, y, argmax, kh, kw, sh, sw, ph, pw):
    """Separable: a max over each row's windows, then over kh of those row maxima.

    Both passes run branch-free select loops over contiguous memory, which the
    compiler vectorizes; a per-window branchy scan is ~2.5x slower on real data
    (mispredicted compares).  Row-major tie order is kept: within a row the first
    column wins, across rows the first row (strict '>'); NaN wins as in PyTorch."""
    planes, height, width = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    n_starts = (out_w - 1) * sw + 1  # every window start column in the padded row
    padded_w = max(n_starts - 1 + kw, width + pw)
    for p in prange(planes):
        row = np.full(padded_w, -np.inf, dtype=x.dtype)  # -inf padding never wins
        run_max = np.empty(n_starts, dtype=x.dtype)
        run_col = np.empty(n_starts, dtype=np.int32)
        row_max = np.empty((height, out_w), dtype=x.dtype)
        row_col = np.empty((height, out_w), dtype=np.int32)
        for i in range(height):
            for c in range(width):
                row[pw + c] = x[p, i, c]
            for c in range(n_starts):
                run_max[c] = -np.inf
                run_col[c] = max(c - pw, 0)  # first valid column, as PyTorch's initial index
            for j in range(kw):
                for c in range(n_starts):
                    v = row[c + j]
                    best = run_max[c]
                    take = (v > best) | (v != v)
                    run_max[c] = v if take else best
                    run_col[c] = c + j - pw if take else run_col[c]
            for ow in range(out_w):
                row_max[i, ow] = run_max[ow * sw]
                row_col[i, ow] = run_col[ow * sw]
        for oh in range(out_h):
            h0 = oh * sh - ph
            h1 = min(h0 + kh, height)
            h0 = max(h0, 0)
            for ow in range(out_w):
                y[p, oh, ow] = row_max[h0, ow]
                argmax[p, oh, ow] = h0 * width + row_col[h0, ow]
            for i in range(h0 + 1, h1):
                for ow in range(out_w):
                    v = row_max[i, ow]
                    best = y[p, oh, ow]
                    take = (v > best) | (v != v)
                    y[p, oh, ow] = v if take else best
                    argmax[p, oh, ow] = i * width + row_col[i, ow] if take else argmax[p, oh, ow]


@parallel_kernel()
def _max_pool2d_backward(gy, argmax, dx):
    planes = dx.shape[0]
    plane_size = dx.shape[1]
    outs = gy.shape[1]
    for p in prange(planes):
        for i in range(plane_size):
            dx[p, i] = 0
        for o in range(outs):
            dx[p, argmax[p, o]] += gy[p, o]


def max_pool2d_forward(x, g):
    check_pool_arrays("max_pool2d_forward", g, x=x)
    y = np.empty((g.N * g.C, g.OH, g.OW), dtype=x.dtype)
    index_dtype = np.int32 if g.H * g.W < 2 ** 31 else np.int64
    argmax = np.empty((g.N * g.C, g.OH, g.OW), dtype=index_dtype)
    _max_pool2d_forward.sized(x.size)(_planes(x), y, argmax, g.KH, g.KW, g.sh, g.sw, g.ph, g.pw)
    return y.reshape(g.y_shape), argmax.reshape(g.y_shape)


def max_pool2d_backward(gy, argmax, g):
    # each plane scatters serially by argmax (checked to index the plane), so the
    # window geometry is not needed here
    check_pool_arrays("max_pool2d_backward", g, gy=gy, argmax=argmax)
    planes = g.N * g.C
    dx = np.empty((planes, g.H * g.W), dtype=gy.dtype)
    _max_pool2d_backward.sized(dx.size)(
        np.ascontiguousarray(gy).reshape(planes, -1), np.ascontiguousarray(argmax).reshape(planes, -1), dx)
    return dx.reshape(g.x_shape)


# ---------------------------------------------------------------- average pool
@njit(cache=True, inline="always")
def _avg_window(o, stride, pad, kernel, size, count_include_pad):
    """-> (start, end, divisor length) of one output cell along one axis."""
    start = o * stride - pad
    end = min(start + kernel, size + pad)
    padded_len = end - start
    start = max(start, 0)
    end = min(end, size)
    return start, end, padded_len if count_include_pad else end - start


@parallel_kernel()
def _avg_pool2d_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
    planes, height, width = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    for p in prange(planes):
        for oh in range(out_h):
            h0, h1, dh = _avg_window(oh, sh, ph, kh, height, count_include_pad)
            for ow in range(out_w):
                w0, w1, dw = _avg_window(ow, sw, pw, kw, width, count_include_pad)
                if h0 >= h1 or w0 >= w1:
                    y[p, oh, ow] = 0
                    continue
                total = 0.0
                for i in range(h0, h1):
                    for j in range(w0, w1):
                        total += x[p, i, j]
                y[p, oh, ow] = total / (dh * dw)


@parallel_kernel()
def _avg_pool2d_backward(gy, dx, kh, kw, sh, sw, ph, pw, count_include_pad):
    planes, height, width = dx.shape
    out_h, out_w = gy.shape[1], gy.shape[2]
    for p in prange(planes):
        for i in range(height):
            for j in range(width):
                dx[p, i, j] = 0
        for oh in range(out_h):
            h0, h1, dh = _avg_window(oh, sh, ph, kh, height, count_include_pad)
            for ow in range(out_w):
                w0, w1, dw = _avg_window(ow, sw, pw, kw, width, count_include_pad)
                if h0 >= h1 or w0 >= w1:
                    continue
                g = gy[p, oh, ow] / (dh * dw)
                for i in range(h0, h1):
                    for j in range(w0, w1):
                        dx[p, i, j] += g


def avg_pool2d_forward(x, g, count_include_pad):
    check_pool_arrays("avg_pool2d_forward", g, x=x)
    y = np.empty((g.N * g.C, g.OH, g.OW), dtype=x.dtype)
    _avg_pool2d_forward.sized(x.size)(_planes(x), y, g.KH, g.KW, g.sh, g.sw, g.ph, g.pw,
                                      bool(count_include_pad))
    return y.reshape(g.y_shape)


def avg_pool2d_backward(gy, g, count_include_pad):
    check_pool_arrays("avg_pool2d_backward", g, gy=gy)
    dx = np.empty((g.N * g.C, g.H, g.W), dtype=gy.dtype)
    _avg_pool2d_backward.sized(dx.size)(_planes(gy), dx, g.KH, g.KW, g.sh, g.sw, g.ph, g.pw,
                                        bool(count_include_pad))
    return dx.reshape(g.x_shape)


# ---------------------------------------------------------------- adaptive average pool
@parallel_kernel()
def _adaptive_avg_pool2d_forward(x, y):
    planes, height, width = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    for p in prange(planes):
        for oh in range(out_h):
            h0 = (oh * height) // out_h
            h1 = -((-(oh + 1) * height) // out_h)  # ceil division
            for ow in range(out_w):
                w0 = (ow * width) // out_w
                w1 = -((-(ow + 1) * width) // out_w)
                total = 0.0
                for i in range(h0, h1):
                    for j in range(w0, w1):
                        total += x[p, i, j]
                y[p, oh, ow] = total / ((h1 - h0) * (w1 - w0))


@parallel_kernel()
def _adaptive_avg_pool2d_backward(gy, dx):
    planes, height, width = dx.shape
    out_h, out_w = gy.shape[1], gy.shape[2]
    for p in prange(planes):
        for i in range(height):
            for j in range(width):
                dx[p, i, j] = 0
        for oh in range(out_h):
            h0 = (oh * height) // out_h
            h1 = -((-(oh + 1) * height) // out_h)
            for ow in range(out_w):
                w0 = (ow * width) // out_w
                w1 = -((-(ow + 1) * width) // out_w)
                g = gy[p, oh, ow] / ((h1 - h0) * (w1 - w0))
                for i in range(h0, h1):
                    for j in range(w0, w1):
                        dx[p, i, j] += g


def adaptive_avg_pool2d_forward(x, g):
    check_pool_arrays("adaptive_avg_pool2d_forward", g, x=x)
    y = np.empty((g.N * g.C, g.OH, g.OW), dtype=x.dtype)
    _adaptive_avg_pool2d_forward.sized(x.size)(_planes(x), y)
    return y.reshape(g.y_shape)


def adaptive_avg_pool2d_backward(gy, g):
    check_pool_arrays("adaptive_avg_pool2d_backward", g, gy=gy)
    dx = np.empty((g.N * g.C, g.H, g.W), dtype=gy.dtype)
    _adaptive_avg_pool2d_backward.sized(dx.size)(_planes(gy), dx)
    return dx.reshape(g.x_shape)
