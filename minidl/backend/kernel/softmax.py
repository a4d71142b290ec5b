"""Softmax family (kernels/softmax.{h,cu,cuh}) for KernelBackend: row-wise
(log-)softmax and cross-entropy with label smoothing, forward and backward, under the
contract's names."""
from __future__ import annotations

import numpy as np

from ...dtypes import compute_dtype
from ..checks import check_index_range
from ..geometry import check_int32_sizes
from .operand import Operand, contiguous


def _rows(x, op):
    """(N, K) of a 2-D array, the launchers' 32-bit ints."""
    if x.ndim != 2:
        raise ValueError(f"{op}: expected a 2-D (N, K) array, got shape {tuple(x.shape)}")
    n, k = int(x.shape[0]), int(x.shape[1])
    check_int32_sizes(op, {"N": n, "K": k})
    return n, k


def _labels(be, labels, n, k, op):
    """The labels (N,) as a contiguous int64 device array; host labels are range-checked
    before the upload (the kernels index rows with them)."""
    labels = be.c(be.astype(be.asarray(check_index_range(op, "labels", labels, k)), np.int64))
    return Operand("labels", labels, (n,), np.int64)


def softmax_forward(be, x, log):
    (x,) = contiguous(be, x)
    n, k = _rows(x, "softmax_forward")
    y = be.empty(x.shape, x.dtype)
    be.launch("softmax_forward", x.dtype, Operand("x", x, (n, k), x.dtype), Operand("y", y, (n, k), x.dtype),
              n, k, bool(log))
    return y


def softmax_backward(be, y, gy, log):
    y, gy = contiguous(be, y, gy)
    n, k = _rows(y, "softmax_backward")
    gx = be.empty(y.shape, y.dtype)
    be.launch("softmax_backward", y.dtype, Operand("y", y, (n, k), y.dtype), Operand("gy", gy, (n, k), y.dtype),
              Operand("gx", gx, (n, k), y.dtype), n, k, bool(log))
    return gx


def cross_entropy_forward(be, logits, labels, label_smoothing):
    """float16/bfloat16 logits give float32 loss and log-probabilities (kernels/softmax.h)."""
    (logits,) = contiguous(be, logits)
    n, k = _rows(logits, "cross_entropy_forward")
    out = compute_dtype(logits.dtype)
    loss = be.empty((n,), out)
    logp = be.empty(logits.shape, out)
    be.launch("cross_entropy_forward", logits.dtype, Operand("logits", logits, (n, k), logits.dtype),
              _labels(be, labels, n, k, "cross_entropy_forward"), Operand("loss", loss, (n,), out),
              Operand("logp", logp, (n, k), out), n, k, float(label_smoothing))
    return loss, logp


def cross_entropy_backward(be, log_probs, labels, label_smoothing, grad_per_row):
    (log_probs,) = contiguous(be, log_probs)
    n, k = _rows(log_probs, "cross_entropy_backward")
    dtype = log_probs.dtype
    if getattr(grad_per_row, "ndim", 0) == 0:
        g = be.full((n,), float(grad_per_row), dtype)
    else:
        g = be.c(be.cast_like(grad_per_row, log_probs))
    dx = be.empty(log_probs.shape, dtype)
    be.launch("cross_entropy_backward", dtype, Operand("log_probs", log_probs, (n, k), dtype),
              _labels(be, labels, n, k, "cross_entropy_backward"), Operand("grad_per_row", g, (n,), dtype),
              Operand("dx", dx, (n, k), dtype), n, k, float(label_smoothing))
    return dx
