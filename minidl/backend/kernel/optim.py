"""Optimizer family (kernels/optim.{h,cu,cuh}) for KernelBackend: the fused SGD step
(contract and semantics: Backend.sgd_update)."""
from __future__ import annotations

from ..base import Backend
from .operand import Operand


def sgd_update(be, param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first_step=False):
    """In-place fused SGD step on contiguous ``param`` (and momentum ``buf``, which may
    be None when momentum == 0); ``grad`` is cast to param's dtype (and made
    contiguous) when needed; a non-contiguous param or buffer, or a buffer of another
    dtype, takes the generic version; returns None."""
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
    shape, dtype = param.shape, param.dtype
    be.launch("sgd_update", dtype, Operand("param", param, shape, dtype), Operand("grad", grad, shape, dtype),
              Operand("buf", buf, shape, dtype) if momentum != 0 else 0, param.size, float(lr), float(momentum),
              float(dampening), float(weight_decay), bool(nesterov), bool(first_step))
