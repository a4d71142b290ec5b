"""Gradient utilities: ``clip_grad_norm_`` and ``clip_grad_value_``; ``fuse_conv_relu``."""
from __future__ import annotations

import math

from ..tensor import Tensor


def _grads(parameters, fn):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: expected Tensors/Parameters, got {type(p).__name__}")
    return [p.grad for p in params if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scale all gradients together so that their joint ``norm_type`` norm is at most
    ``max_norm``; returns the norm before clipping, a 0-d float64 tensor on the
    gradients' device (``float(norm)`` reads it).  Nothing is read on the host: the
    norm, the factor min(1, max_norm / (norm + 1e-6)) and the scaling stay on the
    device, so a training step with clipping needs no sync.  A non-finite norm makes
    every gradient NaN, and the step's NaN check sees it."""
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: expected max_norm >= 0, got {max_norm!r}")
    norm_type = float(norm_type)
    if norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: expected a positive norm_type (or inf), got {norm_type!r}")
    grads = _grads(parameters, "clip_grad_norm_")
    if not grads:
        return Tensor(0.0, dtype="float64")  # (on the cpu: there is no device to say)
    be = grads[0].backend
    if len({g.device for g in grads}) > 1:
        raise ValueError(f"clip_grad_norm_: expected gradients on one device, got {sorted({g.device for g in grads})}")
    # float64 partial results so float32/half gradients neither overflow nor round
    if math.isinf(norm_type):
        parts = [be.max(be.abs(be.astype(g.data, "float64"))) for g in grads]
        total = be.max(be.stack(parts, 0))
    else:
        parts = [be.sum(be.pow(be.abs(be.astype(g.data, "float64")), norm_type)) for g in grads]
        total = be.pow(be.sum(be.stack(parts, 0)), 1.0 / norm_type)
    coef = be.minimum(be.div(be.asarray(float(max_norm), dtype="float64"), be.add(total, 1e-6)), 1.0)
    for g in grads:
        g.data = be.mul(g.data, be.astype(coef, g.dtype))
    return Tensor._wrap(total, grads[0].device)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value]."""
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: expected clip_value >= 0, got {clip_value!r}")
    for g in _grads(parameters, "clip_grad_value_"):
        g.data = g.backend.clip(g.data, -clip_value, clip_value)


def zero_grad_(parameters, set_to_none=True):
    """Drop (or zero in place) the gradients of ``parameters``: Module.zero_grad and
    Optimizer.zero_grad."""
    for p in parameters:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.data = p.backend.zeros_like(p.grad.data)


def fuse_conv_relu(model):
    """In every Sequential of ``model``, a Conv2d directly followed by a ReLU becomes one
    Conv2d(relu=True) (the tensor-core kernels apply it in their epilogue) and the ReLU
    an Identity, so the names and the state_dict stay as they were (as PyTorch's
    ``fuse_modules``).  Returns ``model`` (changed in place); the results are the same."""
    from .containers import Sequential
    from .layers import Conv2d, Identity, ReLU
    for m in list(model.modules()):
        if not isinstance(m, Sequential) or type(m).forward is not Sequential.forward:
            continue  # (a forward of its own may read the conv's output elsewhere)
        names = list(m._modules)
        for a, b in zip(names, names[1:]):
            conv, act = m._modules[a], m._modules[b]
            if isinstance(conv, Conv2d) and not conv.relu and type(act) is ReLU:
                conv.relu = True
                m._modules[b] = Identity()
    return model
