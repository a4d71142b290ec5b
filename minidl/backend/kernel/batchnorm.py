"""Batch-norm family (kernels/batchnorm.{h,cu,cuh}) for KernelBackend: training forward
(batch statistics, the running statistics updated in place by the same launcher),
inference forward, backward (dx, dgamma, dbeta), each optionally fused with a ReLU, and
the in-place running-statistics update, under the contract's names."""
from __future__ import annotations

from ..base import Backend
from .operand import Operand, contiguous, ncs as _ncs


def _operands(names, arrays, shape, dtype):
    return [Operand(name, a, shape, dtype) for name, a in zip(names, arrays)]


def _work(be, n, c, s, dtype, per_partial, per_channel):
    """The launchers' work vector (kernels/batchnorm.h): per_partial * P * C +
    per_channel * C elements, P the reduction's partial rows."""
    p = int(be.kernels.channel_partials(n, c, s)) if per_partial else 0
    size = per_partial * p * c + per_channel * c
    return Operand("work", be.empty((size,), dtype), (size,), dtype)


def _running(running_mean, running_var, dtype, c):
    """The running stats as Operands the train forward updates in place, or None when
    they are absent or not what the kernel takes (then the caller updates them)."""
    if running_mean is None:
        return None
    for a in (running_mean, running_var):
        if a.dtype != dtype or not a.flags.c_contiguous or a.shape != (c,):
            return None
    return _operands(("running_mean", "running_var"), (running_mean, running_var), (c,), dtype)


def batch_norm_train_forward(be, x, gamma, beta, eps, relu=False, running_mean=None, running_var=None,
                             momentum=0.1):
    x, gamma, beta = contiguous(be, x, gamma, beta)
    n, c, s = _ncs(x, "batch_norm_train_forward")
    y = be.empty(x.shape, x.dtype)
    mean = be.empty((c,), x.dtype)
    var = be.empty((c,), x.dtype)
    running = _running(running_mean, running_var, x.dtype, c)
    be.launch("batch_norm_train_forward", x.dtype, Operand("x", x, x.shape, x.dtype),
              *_operands(("weight", "bias"), (gamma, beta), (c,), x.dtype), Operand("y", y, x.shape, x.dtype),
              *_operands(("mean", "var"), (mean, var), (c,), x.dtype), *(running or (0, 0)),
              _work(be, n, c, s, x.dtype, 2, 2), n, c, s, float(eps), float(momentum), int(bool(relu)))
    if running_mean is not None and running is None:
        batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, n * s)
    return y, mean, var


def batch_norm_eval_forward(be, x, gamma, beta, mean, var, eps, relu=False):
    x, gamma, beta, mean, var = contiguous(be, x, gamma, beta, mean, var)
    n, c, s = _ncs(x, "batch_norm_eval_forward")
    y = be.empty(x.shape, x.dtype)
    be.launch("batch_norm_eval_forward", x.dtype, Operand("x", x, x.shape, x.dtype),
              *_operands(("weight", "bias", "running_mean", "running_var"), (gamma, beta, mean, var), (c,),
                         x.dtype), Operand("y", y, x.shape, x.dtype), _work(be, n, c, s, x.dtype, 0, 2), n, c, s,
              float(eps), int(bool(relu)))
    return y


def batch_norm_backward(be, x, gy, gamma, beta, mean, var, eps, relu=False):
    x, gy, gamma, beta, mean, var = contiguous(be, x, gy, gamma, beta, mean, var)
    n, c, s = _ncs(x, "batch_norm_backward")
    dx = be.empty(x.shape, x.dtype)
    dgamma = be.empty((c,), x.dtype)
    dbeta = be.empty((c,), x.dtype)
    be.launch("batch_norm_backward", x.dtype, *_operands(("x", "gy"), (x, gy), x.shape, x.dtype),
              *_operands(("weight", "bias", "mean", "var"), (gamma, beta, mean, var), (c,), x.dtype),
              Operand("dx", dx, x.shape, x.dtype),
              *_operands(("dgamma", "dbeta"), (dgamma, dbeta), (c,), x.dtype), _work(be, n, c, s, x.dtype, 2, 5),
              n, c, s, float(eps), int(bool(relu)))
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
