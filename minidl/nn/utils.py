"""Gradient utilities: ``clip_grad_norm_`` and ``clip_grad_value_``."""
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
    ``max_norm``; returns the norm before clipping (a Python float)."""
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: expected max_norm >= 0, got {max_norm!r}")
    norm_type = float(norm_type)
    if norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: expected a positive norm_type (or inf), got {norm_type!r}")
    grads = _grads(parameters, "clip_grad_norm_")
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(g.backend.max(g.backend.abs(g.data))) for g in grads)
    else:
        acc = 0.0
        for g in grads:
            be = g.backend
            # accumulate in float64 on the host side so float32 gradients do not overflow/round
            acc += float(be.sum(be.pow(be.abs(be.astype(g.data, "float64")), norm_type)))
        total = acc ** (1.0 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.data = g.backend.mul(g.data, g.backend.asarray(coef, dtype=g.dtype))
    return total


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
