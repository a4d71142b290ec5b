"""Elementwise family (kernels/elementwise.cu, kernels/optim.cu) for KernelBackend:
activations, bias-add, dropout mask-apply and the fused SGD update.

Contract methods (generic versions in minidl/backend/base.py): relu, relu_backward,
relu6, relu6_backward, sigmoid, sigmoid_backward (takes the forward output), silu,
silu_backward; bias_add, bias_add_backward (Conv2d's bias), dropout_apply,
dropout_backward (Dropout), sgd_update (optim.SGD, in place).
"""
from __future__ import annotations

from ..base import Backend

__all__ = ["relu", "relu_backward", "relu6", "relu6_backward", "sigmoid", "sigmoid_backward",
           "silu", "silu_backward", "bias_add", "bias_add_backward", "dropout_apply",
           "dropout_backward", "sgd_update"]


def _unary(be, op, x):
    x = be.c(x)
    y = be.empty(x.shape, x.dtype)
    be.kernel(f"elementwise_{op}_forward", x.dtype)(be.ptr(x), be.ptr(y), x.size, be.stream())
    return y


def _unary_backward(be, op, xy, gy):
    xy = be.c(xy)
    gy = be.c(be.cast_like(gy, xy))
    gx = be.empty(xy.shape, xy.dtype)
    be.kernel(f"elementwise_{op}_backward", xy.dtype)(be.ptr(xy), be.ptr(gy), be.ptr(gx), xy.size,
                                                     be.stream())
    return gx


def relu(be, x):
    return _unary(be, "relu", x)


def relu_backward(be, x, gy):
    return _unary_backward(be, "relu", x, gy)


def relu6(be, x):
    return _unary(be, "relu6", x)


def relu6_backward(be, x, gy):
    return _unary_backward(be, "relu6", x, gy)


def sigmoid(be, x):
    return _unary(be, "sigmoid", x)


def sigmoid_backward(be, y, gy):
    return _unary_backward(be, "sigmoid", y, gy)


def silu(be, x):
    return _unary(be, "silu", x)


def silu_backward(be, x, gy):
    return _unary_backward(be, "silu", x, gy)


def _ncs(x, b_size, op):
    if x.ndim < 2 or x.shape[1] != b_size:
        raise ValueError(f"{op}: expected x of shape (N, {b_size}, ...), got {tuple(x.shape)}")
    s = 1
    for d in x.shape[2:]:
        s *= int(d)
    return int(x.shape[0]), int(x.shape[1]), s


def bias_add(be, x, b):
    """y = x + b broadcast over channel axis 1 (x of shape (N, C, ...), b of (C,))."""
    x = be.c(x)
    b = be.c(be.cast_like(b, x))
    n, c, s = _ncs(x, b.size, "bias_add")
    y = be.empty(x.shape, x.dtype)
    be.kernel("elementwise_bias_add", x.dtype)(be.ptr(x), be.ptr(b), be.ptr(y), n, c, s, be.stream())
    return y


def bias_add_backward(be, gy):
    """db (C,) = sum of gy over every axis but 1."""
    gy = be.c(gy)
    n, c, s = _ncs(gy, gy.shape[1] if gy.ndim >= 2 else -1, "bias_add_backward")
    db = be.empty((c,), gy.dtype)
    be.kernel("elementwise_bias_add_backward", gy.dtype)(be.ptr(gy), be.ptr(db), n, c, s, be.stream())
    return db


def dropout_apply(be, x, u, p):
    """keep = u >= p for uniform draws u (shape of x) -> (y = x*keep/(1-p), mask = keep/(1-p))."""
    x = be.c(x)
    u = be.c(be.cast_like(u, x))
    y = be.empty(x.shape, x.dtype)
    mask = be.empty(x.shape, x.dtype)
    be.kernel("elementwise_dropout_forward", x.dtype)(be.ptr(x), be.ptr(u), be.ptr(y), be.ptr(mask), x.size,
                                                      float(p), be.stream())
    return y, mask


def dropout_backward(be, gy, mask):
    mask = be.c(mask)
    gy = be.c(be.cast_like(gy, mask))
    gx = be.empty(mask.shape, mask.dtype)
    be.kernel("elementwise_dropout_backward", mask.dtype)(be.ptr(gy), be.ptr(mask), be.ptr(gx), mask.size,
                                                          be.stream())
    return gx


def sgd_update(be, param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first_step=False):
    """In-place fused SGD step on contiguous ``param`` (and momentum ``buf``, which may
    be None when momentum == 0), PyTorch semantics (see Backend.sgd_update); ``grad``
    is cast to param's dtype (and made contiguous) when needed; a non-contiguous param
    or buffer, or a buffer of another dtype, takes the generic version; returns None."""
    if grad.shape != param.shape:
        raise ValueError(f"sgd_update: grad {grad.dtype}{tuple(grad.shape)} does not match param "
                         f"{param.dtype}{tuple(param.shape)}")
    if momentum != 0 and (buf is None or buf.shape != param.shape):
        raise ValueError(f"sgd_update: momentum needs a buffer of the param's shape {tuple(param.shape)}")
    if not param.flags.c_contiguous or (momentum != 0 and (buf.dtype != param.dtype
                                                           or not buf.flags.c_contiguous)):
        # the kernel updates contiguous arrays of one dtype in place; the generic version any
        return Backend.sgd_update(be, param, grad, buf, lr, momentum, dampening, weight_decay, nesterov,
                                  first_step)
    grad = be.c(be.cast_like(grad, param))
    be.kernel("optim_sgd_update", param.dtype)(
        be.ptr(param), be.ptr(grad), be.ptr(buf) if buf is not None else 0, param.size, float(lr),
        float(momentum), float(dampening), float(weight_decay), bool(nesterov), bool(first_step), be.stream())
