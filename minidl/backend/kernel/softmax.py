"""Softmax family (kernels/softmax.cu) for KernelBackend: row-wise (log-)softmax and
cross-entropy with label smoothing, forward and backward (the base contract's
signatures)."""
from __future__ import annotations

import numpy as np

__all__ = ["softmax_forward", "softmax_backward", "cross_entropy_forward", "cross_entropy_backward"]


def _rows(x, op):
    if x.ndim != 2:
        raise ValueError(f"{op}: expected a 2-D (N, K) array, got shape {tuple(x.shape)}")
    return int(x.shape[0]), int(x.shape[1])


def _labels(be, labels, n, k, op):
    labels = be.c(be.astype(labels, np.int64))
    if labels.shape != (n,):
        raise ValueError(f"{op}: expected labels of shape ({n},), got {tuple(labels.shape)}")
    if n and k and not be.all((labels >= 0) & (labels < k)):
        raise ValueError(f"{op}: labels must lie in [0, {k})")
    return labels


def softmax_forward(be, x, log):
    x = be.c(x)
    n, k = _rows(x, "softmax")
    y = be.empty(x.shape, x.dtype)
    be.kernel("softmax_forward", x.dtype)(be.ptr(x), be.ptr(y), n, k, bool(log), be.stream())
    return y


def softmax_backward(be, y, gy, log):
    y = be.c(y)
    gy = be.c(be.cast_like(gy, y))
    n, k = _rows(y, "softmax_backward")
    gx = be.empty(y.shape, y.dtype)
    be.kernel("softmax_backward", y.dtype)(be.ptr(y), be.ptr(gy), be.ptr(gx), n, k, bool(log), be.stream())
    return gx


def cross_entropy_forward(be, logits, labels, label_smoothing):
    logits = be.c(logits)
    n, k = _rows(logits, "cross_entropy")
    labels = _labels(be, labels, n, k, "cross_entropy")
    loss = be.empty((n,), logits.dtype)
    logp = be.empty(logits.shape, logits.dtype)
    be.kernel("softmax_cross_entropy_forward", logits.dtype)(
        be.ptr(logits), be.ptr(labels), be.ptr(loss), be.ptr(logp), n, k, float(label_smoothing), be.stream())
    return loss, logp


def cross_entropy_backward(be, log_probs, labels, label_smoothing, grad_per_row):
    log_probs = be.c(log_probs)
    n, k = _rows(log_probs, "cross_entropy_backward")
    labels = _labels(be, labels, n, k, "cross_entropy_backward")
    if getattr(grad_per_row, "ndim", 0) == 0:
        g = be.full((n,), float(grad_per_row), log_probs.dtype)
    else:
        g = be.c(be.cast_like(be.reshape(grad_per_row, (n,)), log_probs))
    dx = be.empty(log_probs.shape, log_probs.dtype)
    be.kernel("softmax_cross_entropy_backward", log_probs.dtype)(
        be.ptr(log_probs), be.ptr(labels), be.ptr(g), be.ptr(dx), n, k, float(label_smoothing), be.stream())
    return dx
