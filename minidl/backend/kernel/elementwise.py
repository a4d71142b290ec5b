"""Elementwise family (kernels/elementwise.{h,cu,cuh}) for KernelBackend: activations,
the fused add+ReLU, bias-add and dropout, under the contract's names (generic versions and semantics in
minidl/backend/base.py).  Inputs are made C-contiguous and cast to the first input's
dtype; outputs are fresh arrays."""
from __future__ import annotations

from ...dtypes import compute_dtype
from ..base import Backend
from .operand import Operand, contiguous as _c, ncs as _ncs


def _activation(be, op, x):
    (x,) = _c(be, x)
    y = be.empty(x.shape, x.dtype)
    be.launch(op, x.dtype, Operand("x", x, x.shape, x.dtype), Operand("y", y, x.shape, x.dtype), x.size)
    return y


def _activation_backward(be, op, saved, gy):
    saved, gy = _c(be, saved, gy)
    gx = be.empty(saved.shape, saved.dtype)
    shape, dtype = saved.shape, saved.dtype
    be.launch(op, dtype, Operand("saved", saved, shape, dtype), Operand("gy", gy, shape, dtype),
              Operand("gx", gx, shape, dtype), saved.size)
    return gx


def relu(be, x):
    return _activation(be, "relu", x)


def relu_backward(be, x, gy):
    return _activation_backward(be, "relu_backward", x, gy)


def relu6(be, x):
    return _activation(be, "relu6", x)


def relu6_backward(be, x, gy):
    return _activation_backward(be, "relu6_backward", x, gy)


def sigmoid(be, x):
    return _activation(be, "sigmoid", x)


def sigmoid_backward(be, y, gy):
    return _activation_backward(be, "sigmoid_backward", y, gy)


def silu(be, x):
    return _activation(be, "silu", x)


def silu_backward(be, x, gy):
    return _activation_backward(be, "silu_backward", x, gy)


def bias_add(be, x, b):
    (x,) = _c(be, x)
    n, c, s = _ncs(x, "bias_add")
    y = be.empty(x.shape, x.dtype)
    vec = compute_dtype(x.dtype)  # (kernels/elementwise.h)
    b = be.c(be.astype(b, vec))
    be.launch("bias_add", x.dtype, Operand("x", x, x.shape, x.dtype), Operand("b", b, (c,), vec),
              Operand("y", y, x.shape, x.dtype), n, c, s)
    return y


def bias_add_backward(be, gy):
    (gy,) = _c(be, gy)
    n, c, s = _ncs(gy, "bias_add_backward")
    if n * s == 0:
        return be.zeros((c,), gy.dtype)
    db = be.empty((c,), gy.dtype)
    size = int(be.kernels.channel_partials(n, c, s)) * c
    vec = compute_dtype(gy.dtype)
    be.launch("bias_add_backward", gy.dtype, Operand("gy", gy, gy.shape, gy.dtype),
              Operand("db", db, (c,), gy.dtype), Operand("work", be.empty((size,), vec), (size,), vec), n, c, s)
    return db


def add_relu(be, a, b):
    if a.shape != b.shape:  # a broadcast sum takes the generic version
        return Backend.add_relu(be, a, b)
    a, b = _c(be, a, b)
    y = be.empty(a.shape, a.dtype)
    be.launch("add_relu", a.dtype, Operand("a", a, a.shape, a.dtype), Operand("b", b, a.shape, a.dtype),
              Operand("y", y, a.shape, a.dtype), a.size)
    return y


def dropout_apply(be, x, u, p):
    x, u = _c(be, x, u)
    y = be.empty(x.shape, x.dtype)
    mask = be.empty(x.shape, x.dtype)
    shape, dtype = x.shape, x.dtype
    be.launch("dropout_apply", dtype, Operand("x", x, shape, dtype), Operand("u", u, shape, dtype),
              Operand("y", y, shape, dtype), Operand("mask", mask, shape, dtype), x.size, float(p))
    return y, mask


def dropout_backward(be, gy, mask):
    mask, gy = _c(be, mask, gy)
    gx = be.empty(mask.shape, mask.dtype)
    shape, dtype = mask.shape, mask.dtype
    be.launch("dropout_backward", dtype, Operand("gy", gy, shape, dtype), Operand("mask", mask, shape, dtype),
              Operand("gx", gx, shape, dtype), mask.size)
    return gx
