"""Softmax, log-softmax and softmax cross-entropy on the CPU: fused Numba loops over rows.

Every row is max-subtracted before exponentiation, so logits of any magnitude
stay finite.  Row sums accumulate in float64.  Cross-entropy keeps the
log-probabilities from the forward pass; its backward is
``(softmax - target) * grad`` with target = (1 - eps) * onehot + eps / K.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..checks import check_array, check_index_range
from .fastexp import exp_nonpositive
from .parallel import parallel_kernel

# Reassociation lets LLVM vectorize the row reductions; NaN/inf semantics are kept.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


# Row sums run in blocks: each block accumulates in the input dtype (so the exp
# loop vectorizes; a float64 accumulator there halves the speed) and the blocks
# add up in float64.
_BLOCK = 256


@njit(inline="always", fastmath=_FAST)
def _row_max(x, r):
    """max_k x[r, k] (a NaN need not win here: exp(NaN - top) turns the row sum, and so
    the row, NaN).  LLVM leaves a compare-and-select reduction scalar, even with nnan;
    eight independent ones it packs into one vector: (256, 1000) 0.137 -> 0.036 ms."""
    classes = x.shape[1]
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = x[r, 0]
    whole = np.uint64(classes - classes % 8)  # (unsigned indices: see parallel.py)
    for k in range(np.uint64(0), whole, np.uint64(8)):
        v = x[r, k]; b0 = v if v > b0 else b0
        v = x[r, k + 1]; b1 = v if v > b1 else b1
        v = x[r, k + 2]; b2 = v if v > b2 else b2
        v = x[r, k + 3]; b3 = v if v > b3 else b3
        v = x[r, k + 4]; b4 = v if v > b4 else b4
        v = x[r, k + 5]; b5 = v if v > b5 else b5
        v = x[r, k + 6]; b6 = v if v > b6 else b6
        v = x[r, k + 7]; b7 = v if v > b7 else b7
    best = max(max(max(b0, b1), max(b2, b3)), max(max(b4, b5), max(b6, b7)))
    for k in range(whole, np.uint64(classes)):
        best = max(best, x[r, k])
    return best


# What _row_exp_sum also writes to out[r]: nothing, exp(x - top), or x - top.
_STORE_NONE, _STORE_EXP, _STORE_SHIFTED = 0, 1, 2


@njit(inline="always", fastmath=_FAST)
def _row_exp_sum(x, r, top, out, store):
    """(sum_k exp(x[r, k] - top), sum_k (x[r, k] - top)) in float64, and out[r]
    written as ``store`` says (the second sum is dropped by the compiler when unused).

    Log-softmax stores x - top and subtracts log(sum) in a later loop: written as
    one expression, reassociation could turn (x - top) - log(sum) into
    x - (top + log(sum)), which rounds to the ulp of a large ``top``."""
    classes = x.shape[1]
    total = 0.0
    shifted_total = 0.0
    for start in range(0, classes, _BLOCK):
        part = x.dtype.type(0.0)
        shifted_part = x.dtype.type(0.0)
        # (unsigned: with a signed start the loop stayed scalar, (256, 1000) 0.28 -> 0.10 ms)
        for k in range(np.uint64(start), np.uint64(min(start + _BLOCK, classes))):
            d = x[r, k] - top
            e = exp_nonpositive(d)
            if store == _STORE_EXP:
                out[r, k] = e
            elif store == _STORE_SHIFTED:
                out[r, k] = d
            part += e
            shifted_part += d
        total += part
        shifted_total += shifted_part
    return total, shifted_total


@parallel_kernel(fastmath=_FAST)
def _softmax_rows(x, y, log):
    rows, classes = x.shape
    for r in prange(rows):
        top = _row_max(x, r)
        if log:
            log_total = y.dtype.type(math.log(_row_exp_sum(x, r, top, y, _STORE_SHIFTED)[0]))
            for k in range(classes):
                y[r, k] -= log_total
        else:
            inv = x.dtype.type(1.0 / _row_exp_sum(x, r, top, y, _STORE_EXP)[0])
            for k in range(classes):
                y[r, k] *= inv


@parallel_kernel(fastmath=_FAST)
def _softmax_backward_rows(y, gy, log, dx):
    rows, classes = y.shape
    for r in prange(rows):
        total = 0.0
        if log:
            # d log_softmax: gx = gy - softmax * sum(gy)
            for k in range(classes):
                total += gy[r, k]
            s = y.dtype.type(total)
            for k in range(classes):
                dx[r, k] = gy[r, k] - exp_nonpositive(y[r, k]) * s
        else:
            # d softmax: gx = y * (gy - sum(gy * y))
            for k in range(classes):
                total += gy[r, k] * y[r, k]
            s = y.dtype.type(total)
            for k in range(classes):
                dx[r, k] = y[r, k] * (gy[r, k] - s)


@parallel_kernel(fastmath=_FAST)
def _cross_entropy_rows(logits, labels, smoothing, log_probs, loss):
    rows, classes = logits.shape
    off = smoothing / classes
    for r in prange(rows):
        top = _row_max(logits, r)
        total, shifted_total = _row_exp_sum(logits, r, top, log_probs, _STORE_SHIFTED)
        log_total64 = math.log(total)
        log_total = logits.dtype.type(log_total64)
        for k in range(classes):
            log_probs[r, k] -= log_total
        target_lp = np.float64(log_probs[r, labels[r]])
        loss[r] = -(1.0 - smoothing) * target_lp
        if smoothing != 0.0:  # skipped at 0: 0 * (-inf) from a -inf logit would be NaN
            loss[r] -= off * (shifted_total - classes * log_total64)


@parallel_kernel(fastmath=_FAST)
def _cross_entropy_backward_rows(log_probs, labels, smoothing, grad, dlogits):
    rows, classes = log_probs.shape
    off = log_probs.dtype.type(smoothing / classes)
    for r in prange(rows):
        g = log_probs.dtype.type(grad[r])
        for k in range(classes):
            dlogits[r, k] = (exp_nonpositive(log_probs[r, k]) - off) * g
        dlogits[r, labels[r]] -= log_probs.dtype.type((1.0 - smoothing) * grad[r])


# Below this many elements one thread runs the loops: at (256, 1000) two threads
# gain ~20% on an idle machine but a parallel region can stall for milliseconds
# when the cores are shared.
_PARALLEL_MIN_SIZE = 1 << 20


def _rows(a, op):
    a = np.ascontiguousarray(a)
    if a.ndim != 2:
        raise ValueError(f"{op}: expected a 2-D array, got shape {a.shape}")
    return a


def _labels(labels, rows, op):
    """int64 labels (N,) in [0, K) for the rows of ``rows`` (N, K): the loops index with them."""
    check_array(op, "labels", labels, rows.shape[:1])
    return np.ascontiguousarray(check_index_range(op, "labels", labels, rows.shape[1]), dtype=np.int64)


def softmax_forward(x, log):
    x = _rows(x, "softmax_forward")
    y = np.empty_like(x)
    if x.size:
        _softmax_rows.sized(x.size, _PARALLEL_MIN_SIZE)(x, y, bool(log))
    return y


def softmax_backward(y, gy, log):
    y = _rows(y, "softmax_backward")
    gy = np.ascontiguousarray(check_array("softmax_backward", "gy", gy, y.shape), dtype=y.dtype)
    dx = np.empty_like(y)
    if y.size:
        _softmax_backward_rows.sized(y.size, _PARALLEL_MIN_SIZE)(y, gy, bool(log), dx)
    return dx


def cross_entropy_forward(logits, labels, label_smoothing):
    logits = _rows(logits, "cross_entropy_forward")
    log_probs = np.empty_like(logits)
    loss = np.empty(logits.shape[0], dtype=logits.dtype)
    if logits.size:
        _cross_entropy_rows.sized(logits.size, _PARALLEL_MIN_SIZE)(
            logits, _labels(labels, logits, "cross_entropy_forward"), float(label_smoothing), log_probs, loss)
    return loss, log_probs


def cross_entropy_backward(log_probs, labels, label_smoothing, grad_per_row):
    log_probs = _rows(log_probs, "cross_entropy_backward")
    grad = np.ascontiguousarray(grad_per_row, dtype=log_probs.dtype).reshape(-1)
    dlogits = np.empty_like(log_probs)
    if log_probs.size:
        _cross_entropy_backward_rows.sized(log_probs.size, _PARALLEL_MIN_SIZE)(
            log_probs, _labels(labels, log_probs, "cross_entropy_backward"), float(label_smoothing), grad, dlogits)
    return dlogits
