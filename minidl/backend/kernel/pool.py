"""Pooling on the kernel backends (cuda and emu): kernels/pool.cu.

Semantics are the CPU backend's (PyTorch's); argmax is int32, the flat h*W+w index
in the input plane.  Backward passes gather per input pixel (no atomics).
"""
from __future__ import annotations

from ..base import Backend

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward"]


def _c(be, first, *rest):
    """C-contiguous arrays, the rest cast to the first one's dtype."""
    first = be.c(first)
    return (first,) + tuple(be.c(be.cast_like(a, first)) for a in rest)


def _output_hw(x_shape, kernel, stride, padding, ceil_mode):
    return (Backend.pool_output_size(x_shape[2], kernel[0], stride[0], padding[0], ceil_mode),
            Backend.pool_output_size(x_shape[3], kernel[1], stride[1], padding[1], ceil_mode))


def _geom(x_shape, out_hw, kernel, stride, padding):
    n, c, h, w = x_shape
    return (n * c, h, w, out_hw[0], out_hw[1], kernel[0], kernel[1], stride[0], stride[1],
            padding[0], padding[1])


def max_pool2d_forward(be, x, kernel, stride, padding, ceil_mode):
    xp = be.xp
    (x,) = _c(be, x)
    n, c = x.shape[:2]
    oh, ow = _output_hw(x.shape, kernel, stride, padding, ceil_mode)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = xp.empty((n, c, oh, ow), dtype=xp.int32)
    be.kernel("pool_max_forward", x.dtype)(
        be.ptr(x), be.ptr(y), be.ptr(argmax), *_geom(x.shape, (oh, ow), kernel, stride, padding),
        be.stream())
    return y, argmax


def max_pool2d_backward(be, gy, argmax, x_shape, kernel, stride, padding):
    xp = be.xp
    (gy,) = _c(be, gy)
    x_shape = tuple(x_shape)
    dx = xp.empty(x_shape, dtype=gy.dtype)
    idx = xp.ascontiguousarray(argmax, dtype=xp.int32)
    be.kernel("pool_max_backward", gy.dtype)(
        be.ptr(gy), be.ptr(idx), be.ptr(dx),
        *_geom(x_shape, gy.shape[2:], kernel, stride, padding), be.stream())
    return dx


def avg_pool2d_forward(be, x, kernel, stride, padding, ceil_mode, count_include_pad):
    xp = be.xp
    (x,) = _c(be, x)
    n, c = x.shape[:2]
    oh, ow = _output_hw(x.shape, kernel, stride, padding, ceil_mode)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    be.kernel("pool_avg_forward", x.dtype)(
        be.ptr(x), be.ptr(y), *_geom(x.shape, (oh, ow), kernel, stride, padding),
        bool(count_include_pad), be.stream())
    return y


def avg_pool2d_backward(be, gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    xp = be.xp
    (gy,) = _c(be, gy)
    x_shape = tuple(x_shape)
    dx = xp.empty(x_shape, dtype=gy.dtype)
    be.kernel("pool_avg_backward", gy.dtype)(
        be.ptr(gy), be.ptr(dx), *_geom(x_shape, gy.shape[2:], kernel, stride, padding),
        bool(count_include_pad), be.stream())
    return dx


def adaptive_avg_pool2d_forward(be, x, output_size):
    xp = be.xp
    (x,) = _c(be, x)
    n, c, h, w = x.shape
    oh, ow = output_size
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    if (oh, ow) == (1, 1):   # global average pooling: one warp per plane
        be.kernel("pool_global_avg_forward", x.dtype)(
            be.ptr(x), be.ptr(y), n * c, h * w, be.stream())
    else:
        be.kernel("pool_adaptive_avg_forward", x.dtype)(
            be.ptr(x), be.ptr(y), n * c, h, w, oh, ow, be.stream())
    return y


def adaptive_avg_pool2d_backward(be, gy, x_shape):
    xp = be.xp
    (gy,) = _c(be, gy)
    n, c, h, w = x_shape
    dx = xp.empty(tuple(x_shape), dtype=gy.dtype)
    be.kernel("pool_adaptive_avg_backward", gy.dtype)(
        be.ptr(gy), be.ptr(dx), n * c, h, w, gy.shape[2], gy.shape[3], be.stream())
    return dx
