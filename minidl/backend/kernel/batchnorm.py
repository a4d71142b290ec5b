"""Batch-norm family (kernels/batchnorm.{h,cu,cuh}) for KernelBackend: training forward
(batch statistics), inference forward, backward (dx, dgamma, dbeta) and the in-place
running-statistics update, under the contract's names."""
from __future__ import annotations

from ..base import Backend
from .operand import Operand, contiguous, ncs as _ncs


def _operands(names, arrays, shape, dtype):
    return [Operand(name, a, shape, dtype) for name, a in zip(names, arrays)]


def batch_norm_train_forward(be, x, gamma, beta, eps):
    x, gamma, beta = contiguous(be, x, gamma, beta)
    n, c, s = _ncs(x, "batch_norm_train_forward")
    y = be.empty(x.shape, x.dtype)
    mean = be.empty((c,), x.dtype)
    var = be.empty((c,), x.dtype)
    be.launch("batch_norm_train_forward", x.dtype, Operand("x", x, x.shape, x.dtype),
              *_operands(("weight", "bias"), (gamma, beta), (c,), x.dtype), Operand("y", y, x.shape, x.dtype),
              *_operands(("mean", "var"), (mean, var), (c,), x.dtype), n, c, s, float(eps))
    return y, mean, var


def batch_norm_eval_forward(be, x, gamma, beta, mean, var, eps):
    x, gamma, beta, mean, var = contiguous(be, x, gamma, beta, mean, var)
    n, c, s = _ncs(x, "batch_norm_eval_forward")
    y = be.empty(x.shape, x.dtype)
    be.launch("batch_norm_eval_forward", x.dtype, Operand("x", x, x.shape, x.dtype),
              *_operands(("weight", "bias", "running_mean", "running_var"), (gamma, beta, mean, var), (c,),
                         x.dtype), Operand("y", y, x.shape, x.dtype), n, c, s, float(eps))
    return y


def batch_norm_backward(be, x, gy, gamma, mean, var, eps):
    x, gy, gamma, mean, var = contiguous(be, x, gy, gamma, mean, var)
    n, c, s = _ncs(x, "batch_norm_backward")
    dx = be.empty(x.shape, x.dtype)
    dgamma = be.empty((c,), x.dtype)
    dbeta = be.empty((c,), x.dtype)
    be.launch("batch_norm_backward", x.dtype, *_operands(("x", "gy"), (x, gy), x.shape, x.dtype),
              *_operands(("weight", "mean", "var"), (gamma, mean, var), (c,), x.dtype),
              Operand("dx", dx, x.shape, x.dtype),
              *_operands(("dgamma", "dbeta"), (dgamma, dbeta), (c,), x.dtype), n, c, s, float(eps))
    return dx, dgamma, dbeta


def batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, count):
    """In place (Backend.batch_norm_update_running); running stats that are not two
    contiguous arrays of one dtype take the generic version."""
    c = int(running_mean.shape[0])
    for a in (running_mean, running_var):
        if a.shape != (c,):
            raise ValueError(f"batch_norm_update_running: expected running stats of shape ({c},), got "
                             f"{tuple(running_mean.shape)} and {tuple(running_var.shape)}")
    if (running_var.dtype != running_mean.dtype or not running_mean.flags.c_contiguous
            or not running_var.flags.c_contiguous):
        return Backend.batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, count)
    _, mean, var = contiguous(be, running_mean, mean, var)
    dtype = running_mean.dtype
    be.launch("batch_norm_update_running", dtype,
              *_operands(("running_mean", "running_var", "mean", "var"), (running_mean, running_var, mean, var),
                         (c,), dtype), c, float(momentum), int(count))
