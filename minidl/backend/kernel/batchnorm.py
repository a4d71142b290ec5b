"""Batch-norm family (kernels/batchnorm.{h,cu,cuh}) for KernelBackend: training forward
(batch statistics, the running statistics updated in place by the same launcher),
inference forward, backward (dx, dgamma, dbeta), each optionally fused with a ReLU, and
the in-place running-statistics update, under the contract's names."""
from __future__ import annotations

from ...dtypes import compute_dtype, is_half
from ..base import Backend
from .operand import Operand, contiguous, ncs as _ncs


def _operands(names, arrays, shape, dtype):
    return [Operand(name, a, shape, dtype) for name, a in zip(names, arrays)]


def _vectors(be, dtype, *arrays):
    """Per-channel arrays, C-contiguous in ``dtype`` (the half parameters of a half
    model are widened to the float32 the 16-bit kernels take)."""
    return [be.c(a if a.dtype == dtype else be.astype(a, dtype)) for a in arrays]


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
    """x of any kernel dtype; float16/bfloat16 x takes float32 (or its own dtype's)
    gamma and beta and returns float32 mean and var (kernels/batchnorm.h)."""
    x = be.c(x)
    n, c, s = _ncs(x, "batch_norm_train_forward")
    stat = compute_dtype(x.dtype)  # (kernels/batchnorm.h)
    gamma, beta = _vectors(be, stat, gamma, beta)
    y = be.empty(x.shape, x.dtype)
    mean = be.empty((c,), stat)
    var = be.empty((c,), stat)
    running = _running(running_mean, running_var, stat, c)
    be.launch("batch_norm_train_forward", x.dtype, Operand("x", x, x.shape, x.dtype),
              *_operands(("weight", "bias"), (gamma, beta), (c,), stat), Operand("y", y, x.shape, x.dtype),
              *_operands(("mean", "var"), (mean, var), (c,), stat), *(running or (0, 0)),
              _work(be, n, c, s, stat, 2, 2), n, c, s, float(eps), float(momentum), int(bool(relu)))
    if running_mean is not None and running is None:
        batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, n * s)
    return y, mean, var


def batch_norm_eval_forward(be, x, gamma, beta, mean, var, eps, relu=False):
    x = be.c(x)
    n, c, s = _ncs(x, "batch_norm_eval_forward")
    stat = compute_dtype(x.dtype)  # (kernels/batchnorm.h)
    y = be.empty(x.shape, x.dtype)
    be.launch("batch_norm_eval_forward", x.dtype, Operand("x", x, x.shape, x.dtype),
              *_operands(("weight", "bias", "running_mean", "running_var"), _vectors(be, stat, gamma, beta, mean, var),
                         (c,), stat), Operand("y", y, x.shape, x.dtype), _work(be, n, c, s, stat, 0, 2), n, c, s,
              float(eps), int(bool(relu)))
    return y


def batch_norm_backward(be, x, gy, gamma, beta, mean, var, eps, relu=False):
    """dx in x's dtype; dgamma and dbeta in gamma's."""
    x, gy = contiguous(be, x, gy)
    n, c, s = _ncs(x, "batch_norm_backward")
    stat = compute_dtype(x.dtype)  # (kernels/batchnorm.h)
    dx = be.empty(x.shape, x.dtype)
    dgamma = be.empty((c,), stat)
    dbeta = be.empty((c,), stat)
    be.launch("batch_norm_backward", x.dtype, *_operands(("x", "gy"), (x, gy), x.shape, x.dtype),
              *_operands(("weight", "bias", "mean", "var"), _vectors(be, stat, gamma, beta, mean, var), (c,), stat),
              Operand("dx", dx, x.shape, x.dtype),
              *_operands(("dgamma", "dbeta"), (dgamma, dbeta), (c,), stat), _work(be, n, c, s, stat, 2, 5),
              n, c, s, float(eps), int(bool(relu)))
    return dx, *_vectors(be, gamma.dtype, dgamma, dbeta)


def batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, count):
    """In place (Backend.batch_norm_update_running); running stats that are not two
    contiguous float32/float64 arrays of one dtype take the generic version."""
    c = int(running_mean.shape[0])
    for a in (running_mean, running_var):
        if a.shape != (c,):
            raise ValueError(f"batch_norm_update_running: expected running stats of shape ({c},), got "
                             f"{tuple(running_mean.shape)} and {tuple(running_var.shape)}")
    if (running_var.dtype != running_mean.dtype or is_half(running_mean.dtype)
            or not running_mean.flags.c_contiguous or not running_var.flags.c_contiguous):
        return Backend.batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, count)
    _, mean, var = contiguous(be, running_mean, mean, var)
    dtype = running_mean.dtype
    be.launch("batch_norm_update_running", dtype,
              *_operands(("running_mean", "running_var", "mean", "var"), (running_mean, running_var, mean, var),
                         (c,), dtype), c, float(momentum), int(count))
