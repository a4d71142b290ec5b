"""Pooling on the kernel backends (cuda and emu): kernels/pool.cu.

Semantics are the CPU backend's (PyTorch's); argmax is int32, the flat h*W+w index
in the input plane.  The max-pool backward of the contract receives only
(gy, argmax, x_shape), but the race-free gather kernel needs the window geometry:
the forward remembers it per argmax array (weakly, so it dies with the array).  An
argmax this backend did not produce (say, computed on the CPU) falls back to the
per-plane scatter kernel.
"""
from __future__ import annotations

import weakref

from ..base import Backend

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward"]


def _c(be, first, *rest):
    """C-contiguous arrays, the rest cast to the first one's dtype."""
    first = be.c(first)
    return (first,) + tuple(be.c(be.cast_like(a, first)) for a in rest)


_max_geometry = {}   # id(argmax array) -> (x_shape, kernel, stride, padding)


def _output_hw(x_shape, kernel, stride, padding, ceil_mode):
    return (Backend.pool_output_size(x_shape[2], kernel[0], stride[0], padding[0], ceil_mode),
            Backend.pool_output_size(x_shape[3], kernel[1], stride[1], padding[1], ceil_mode))


def _geom(x_shape, out_hw, kernel, stride, padding):
    n, c, h, w = x_shape
    return (n * c, h, w, out_hw[0], out_hw[1], kernel[0], kernel[1], stride[0], stride[1],
            padding[0], padding[1])


def _remember(argmax, key):
    ident = id(argmax)
    _max_geometry[ident] = key
    weakref.finalize(argmax, _max_geometry.pop, ident, None)


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
    _remember(argmax, (tuple(x.shape), tuple(kernel), tuple(stride), tuple(padding)))
    return y, argmax


def max_pool2d_backward(be, gy, argmax, x_shape):
    xp = be.xp
    (gy,) = _c(be, gy)
    x_shape = tuple(x_shape)
    n, c, h, w = x_shape
    dx = xp.empty(x_shape, dtype=gy.dtype)
    known = _max_geometry.get(id(argmax))
    if known is not None and known[0] == x_shape:
        _, kernel, stride, padding = known
        be.kernel("pool_max_backward", gy.dtype)(
            be.ptr(gy), be.ptr(argmax), be.ptr(dx),
            *_geom(x_shape, gy.shape[2:], kernel, stride, padding), be.stream())
    else:
        idx = xp.ascontiguousarray(argmax, dtype=xp.int32)
        be.kernel("pool_max_backward_plane", gy.dtype)(
            be.ptr(gy), be.ptr(idx), be.ptr(dx), n * c, h * w, gy.shape[2] * gy.shape[3], be.stream())
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
