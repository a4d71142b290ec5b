"""Pooling on the kernel backends (cuda and emu): kernels/pool.{h,cu,cuh}.

Semantics are the CPU backend's (PyTorch's); argmax is int32, the flat h*W+w index
in the input plane.  Backward passes gather per input pixel (no atomics).  Every
size comes from the op's PoolGeometry.
"""
from __future__ import annotations

import numpy as np

from ...dtypes import compute_dtype, is_half
from ..checks import check_pool_arrays
from .operand import Operand, contiguous


def max_pool2d_forward(be, x, g):
    (x,) = contiguous(be, x)
    check_pool_arrays("max_pool2d_forward", g, x=x)
    y = be.empty(g.y_shape, x.dtype)
    argmax = be.empty(g.y_shape, np.int32)
    be.launch("max_pool2d_forward", x.dtype, Operand("x", x, g.x_shape, x.dtype), Operand("y", y, g.y_shape, x.dtype),
              Operand("argmax", argmax, g.y_shape, np.int32), g)
    return y, argmax


def max_pool2d_backward(be, gy, argmax, g):
    (gy,) = contiguous(be, gy)
    check_pool_arrays("max_pool2d_backward", g, gy=gy, argmax=argmax)
    argmax = be.c(be.astype(argmax, np.int32))
    dx = be.empty(g.x_shape, gy.dtype)
    be.launch("max_pool2d_backward", gy.dtype, Operand("gy", gy, g.y_shape, gy.dtype),
              Operand("argmax", argmax, g.y_shape, np.int32), Operand("dx", dx, g.x_shape, gy.dtype), g)
    return dx


def avg_pool2d_forward(be, x, g, count_include_pad):
    (x,) = contiguous(be, x)
    check_pool_arrays("avg_pool2d_forward", g, x=x)
    y = be.empty(g.y_shape, x.dtype)
    be.launch("avg_pool2d_forward", x.dtype, Operand("x", x, g.x_shape, x.dtype), Operand("y", y, g.y_shape, x.dtype),
              g, bool(count_include_pad))
    return y


def avg_pool2d_backward(be, gy, g, count_include_pad):
    (gy,) = contiguous(be, gy)
    check_pool_arrays("avg_pool2d_backward", g, gy=gy)
    dx = be.empty(g.x_shape, gy.dtype)
    be.launch("avg_pool2d_backward", gy.dtype, Operand("gy", gy, g.y_shape, gy.dtype),
              Operand("dx", dx, g.x_shape, gy.dtype), g, bool(count_include_pad))
    return dx


def adaptive_avg_pool2d_forward(be, x, g):
    (x,) = contiguous(be, x)
    check_pool_arrays("adaptive_avg_pool2d_forward", g, x=x)
    y = be.empty(g.y_shape, x.dtype)
    operands = [Operand("x", x, g.x_shape, x.dtype), Operand("y", y, g.y_shape, x.dtype)]
    if (g.OH, g.OW) == (1, 1):  # global average pooling: a per-channel reduction over the planes
        planes = g.N * g.C
        partials = int(be.kernels.channel_partials(1, planes, g.H * g.W)) if planes else 1
        work_dtype = compute_dtype(x.dtype)  # (kernels/pool.h)
        size = partials * planes if partials > 1 or is_half(x.dtype) else 1
        be.launch("adaptive_avg_pool2d_forward_1x1", x.dtype, *operands,
                  Operand("work", be.empty((size,), work_dtype), (size,), work_dtype), g)
    else:
        be.launch("adaptive_avg_pool2d_forward", x.dtype, *operands, g)
    return y


def adaptive_avg_pool2d_backward(be, gy, g):
    (gy,) = contiguous(be, gy)
    check_pool_arrays("adaptive_avg_pool2d_backward", g, gy=gy)
    dx = be.empty(g.x_shape, gy.dtype)
    launcher = "adaptive_avg_pool2d_backward_1x1" if (g.OH, g.OW) == (1, 1) else "adaptive_avg_pool2d_backward"
    be.launch(launcher, gy.dtype, Operand("gy", gy, g.y_shape, gy.dtype), Operand("dx", dx, g.x_shape, gy.dtype), g)
    return dx
