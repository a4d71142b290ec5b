"""Batch-norm family (kernels/batchnorm.cu) for KernelBackend: training forward
(batch statistics), inference forward, backward (dx, dgamma, dbeta), with the base
contract's signatures; and ``batch_norm_update_running`` (in place; the running-stat
update of minidl.autograd.batchnorm)."""
from __future__ import annotations

from ..base import Backend

__all__ = ["batch_norm_train_forward", "batch_norm_eval_forward", "batch_norm_backward",
           "batch_norm_update_running"]


def _ncs(x, op):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected x of shape (N, C, ...), got {tuple(x.shape)}")
    s = 1
    for d in x.shape[2:]:
        s *= int(d)
    return int(x.shape[0]), int(x.shape[1]), s


def _vec(be, v, c, ref, name, op):
    v = be.c(be.cast_like(v, ref))
    if v.shape != (c,):
        raise ValueError(f"{op}: expected {name} of shape ({c},), got {tuple(v.shape)}")
    return v


def batch_norm_train_forward(be, x, gamma, beta, eps):
    x = be.c(x)
    n, c, s = _ncs(x, "batch_norm")
    gamma = _vec(be, gamma, c, x, "weight", "batch_norm")
    beta = _vec(be, beta, c, x, "bias", "batch_norm")
    y = be.empty(x.shape, x.dtype)
    mean = be.empty((c,), x.dtype)
    var = be.empty((c,), x.dtype)
    be.kernel("batchnorm_train_forward", x.dtype)(be.ptr(x), be.ptr(gamma), be.ptr(beta), be.ptr(y), be.ptr(mean),
                                                  be.ptr(var), n, c, s, float(eps), be.stream())
    return y, mean, var


def batch_norm_eval_forward(be, x, gamma, beta, mean, var, eps):
    x = be.c(x)
    n, c, s = _ncs(x, "batch_norm")
    args = [_vec(be, v, c, x, name, "batch_norm")
            for v, name in ((gamma, "weight"), (beta, "bias"), (mean, "running_mean"), (var, "running_var"))]
    y = be.empty(x.shape, x.dtype)
    be.kernel("batchnorm_eval_forward", x.dtype)(be.ptr(x), *[be.ptr(a) for a in args], be.ptr(y), n, c, s,
                                                 float(eps), be.stream())
    return y


def batch_norm_backward(be, x, gy, gamma, mean, var, eps):
    x = be.c(x)
    gy = be.c(be.cast_like(gy, x))
    n, c, s = _ncs(x, "batch_norm_backward")
    gamma = _vec(be, gamma, c, x, "weight", "batch_norm_backward")
    mean = _vec(be, mean, c, x, "mean", "batch_norm_backward")
    var = _vec(be, var, c, x, "var", "batch_norm_backward")
    dx = be.empty(x.shape, x.dtype)
    dgamma = be.empty((c,), x.dtype)
    dbeta = be.empty((c,), x.dtype)
    be.kernel("batchnorm_backward", x.dtype)(be.ptr(x), be.ptr(gy), be.ptr(gamma), be.ptr(mean), be.ptr(var),
                                             be.ptr(dx), be.ptr(dgamma), be.ptr(dbeta), n, c, s, float(eps),
                                             be.stream())
    return dx, dgamma, dbeta


def batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, count):
    """In place: running = (1 - momentum) * running + momentum * batch statistic, the
    variance made unbiased with count / (count - 1); the batch statistics are cast to
    the running stats' dtype."""
    c = int(running_mean.shape[0])
    for a in (running_mean, running_var):
        if a.shape != (c,):
            raise ValueError(f"batch_norm_update_running: expected running stats of shape ({c},), got "
                             f"{tuple(running_mean.shape)} and {tuple(running_var.shape)}")
    if (running_var.dtype != running_mean.dtype or not running_mean.flags.c_contiguous
            or not running_var.flags.c_contiguous):
        # the kernel updates two contiguous arrays of one dtype; the generic version any
        return Backend.batch_norm_update_running(be, running_mean, running_var, mean, var, momentum, count)
    mean = _vec(be, mean, c, running_mean, "mean", "batch_norm_update_running")
    var = _vec(be, var, c, running_mean, "var", "batch_norm_update_running")
    be.kernel("batchnorm_update_running", running_mean.dtype)(
        be.ptr(running_mean), be.ptr(running_var), be.ptr(mean), be.ptr(var), c, float(momentum), int(count),
        be.stream())
