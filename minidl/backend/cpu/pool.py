"""Pooling on the CPU: max, average and adaptive average, as fused Numba loops.

Every kernel runs one (n, c) plane per parallel iteration.  Backward passes
scatter into their own plane serially, so overlapping windows (3x3/2) never
race.  Semantics follow PyTorch exactly: output sizes (Backend.pool_output_size),
padded cells are ignored by max pooling, ties pick the first maximum in
row-major window order, and the average divisor counts padding only inside the
padded input (never the ceil_mode overhang).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..base import Backend
from .parallel import parallel_kernel

def _planes(x):
    n, c, h, w = x.shape
    return np.ascontiguousarray(x).reshape(n * c, h, w)


def _output_hw(x_shape, kernel, stride, padding, ceil_mode):
    h, w = x_shape[2], x_shape[3]
    return (Backend.pool_output_size(h, kernel[0], stride[0], padding[0], ceil_mode),
            Backend.pool_output_size(w, kernel[1], stride[1], padding[1], ceil_mode))


# ---------------------------------------------------------------- max pool
@parallel_kernel()
def _max_pool_fwd(x, y, argmax, kh, kw, sh, sw, ph, pw):
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
def _max_pool_bwd(gy, argmax, dx):
    planes = dx.shape[0]
    plane_size = dx.shape[1]
    outs = gy.shape[1]
    for p in prange(planes):
        for i in range(plane_size):
            dx[p, i] = 0
        for o in range(outs):
            dx[p, argmax[p, o]] += gy[p, o]




def max_pool2d_forward(x, kernel, stride, padding, ceil_mode):
    n, c, h, w = x.shape
    out_h, out_w = _output_hw(x.shape, kernel, stride, padding, ceil_mode)
    y = np.empty((n * c, out_h, out_w), dtype=x.dtype)
    index_dtype = np.int32 if h * w < 2 ** 31 else np.int64
    argmax = np.empty((n * c, out_h, out_w), dtype=index_dtype)
    _max_pool_fwd.sized(x.size)(
        _planes(x), y, argmax, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1])
    return y.reshape(n, c, out_h, out_w), argmax.reshape(n, c, out_h, out_w)


def max_pool2d_backward(gy, argmax, x_shape, kernel=None, stride=None, padding=None):
    # each plane scatters serially by argmax, so the window geometry is not needed here
    n, c, h, w = x_shape
    dx = np.empty((n * c, h * w), dtype=gy.dtype)
    _max_pool_bwd.sized(dx.size)(
        np.ascontiguousarray(gy).reshape(n * c, -1), np.ascontiguousarray(argmax).reshape(n * c, -1), dx)
    return dx.reshape(x_shape)


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
def _avg_pool_fwd(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
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
def _avg_pool_bwd(gy, dx, kh, kw, sh, sw, ph, pw, count_include_pad):
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




def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    n, c, h, w = x.shape
    out_h, out_w = _output_hw(x.shape, kernel, stride, padding, ceil_mode)
    y = np.empty((n * c, out_h, out_w), dtype=x.dtype)
    _avg_pool_fwd.sized(x.size)(
        _planes(x), y, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
        bool(count_include_pad))
    return y.reshape(n, c, out_h, out_w)


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    n, c, h, w = x_shape
    dx = np.empty((n * c, h, w), dtype=gy.dtype)
    _avg_pool_bwd.sized(dx.size)(
        _planes(gy), dx, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
        bool(count_include_pad))
    return dx.reshape(x_shape)


# ---------------------------------------------------------------- adaptive average pool
@parallel_kernel()
def _adaptive_avg_fwd(x, y):
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
def _adaptive_avg_bwd(gy, dx):
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




def adaptive_avg_pool2d_forward(x, output_size):
    n, c, h, w = x.shape
    out_h, out_w = output_size
    y = np.empty((n * c, out_h, out_w), dtype=x.dtype)
    _adaptive_avg_fwd.sized(x.size)(_planes(x), y)
    return y.reshape(n, c, out_h, out_w)


def adaptive_avg_pool2d_backward(gy, x_shape):
    n, c, h, w = x_shape
    dx = np.empty((n * c, h, w), dtype=gy.dtype)
    _adaptive_avg_bwd.sized(dx.size)(_planes(gy), dx)
    return dx.reshape(x_shape)
