"""Activations for the CPU backend as single-pass parallel Numba loops, and NumPy's
arithmetic and concatenation cut over threads on large arrays (end of the file).

The generic NumPy forms in backend/base.py make several passes and temporaries per
call (``where((x > 0) & (x < 6), gy, 0)`` is five passes over the tensor); on
MobileNetV2 at batch 16 and 224 px, relu6's backward alone took a quarter of the
training step.  Each loop here reads its inputs once and writes its output once.

Semantics are the generic forms' (backend/base.py), NaN included: relu and relu6 pass
a NaN input through, and their backwards give 0 where the input is NaN.  No fastmath:
it would let LLVM assume there are no NaNs.  float32/float64 only; other dtypes
(float16, bfloat16) take the generic forms.  float32's exp is our own vectorizable one
(fastexp.py, shared with softmax.py); with libm's scalar exp, a one-pass silu was
slower than NumPy's SIMD multiply after the sigmoid (74 vs 58 ms on 16x96x112x112),
with it the one pass wins.

Measured here (2-core VM, float32 16x96x112x112, median of 5, NumPy generic -> Numba):
relu 18 -> 12 ms, relu backward 109 -> 14, relu6 backward 120 -> 12, sigmoid 307 -> 80,
silu backward 167 -> 86; a MobileNetV2 training step at batch 16, 224 px: 2.15 -> 1.34 s.
Then the exp in float32 arithmetic (fastexp.py; it had been float64, Numba's promotion
of Python constants, with 2^n gathered from a table; 2-core AMD EPYC VM): silu 15.3 ->
5.3 ms, silu backward 16.7 -> 10.9 (its last steps stay float64, see _silu_backward).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

from ..base import Backend
from ..checks import check_array
from .fastexp import ONE, exp_nonpositive
from .gemm import THREADS, in_threads, panels
from .parallel import parallel_kernel

FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@parallel_kernel()
def _relu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v < 0 else v


@parallel_kernel()
def _relu_backward(x, gy, gx):
    for i in prange(x.size):
        gx[i] = gy[i] if x[i] > 0 else 0


@parallel_kernel()
def _add_relu(a, b, y):
    for i in prange(a.size):
        v = a[i] + b[i]
        y[i] = 0 if v < 0 else v


@parallel_kernel()
def _relu6(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = 0 if v < 0 else (6 if v > 6 else v)


@parallel_kernel()
def _relu6_backward(x, gy, gx):
    for i in prange(x.size):
        v = x[i]
        gx[i] = gy[i] if (v > 0 and v < 6) else 0


@njit(cache=True, inline="always")
def _sigmoid_of(v):
    e = exp_nonpositive(-abs(v))  # exp of -|x| only: no overflow for large |x|
    return ONE / (ONE + e) if v >= 0 else e / (ONE + e)


@parallel_kernel()
def _sigmoid(x, y):
    for i in prange(x.size):
        y[i] = _sigmoid_of(x[i])


@parallel_kernel()
def _sigmoid_backward(y, gy, gx):
    for i in prange(y.size):
        s = y[i]
        gx[i] = gy[i] * s * (ONE - s)


@parallel_kernel()
def _silu(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v * _sigmoid_of(v)


@parallel_kernel()
def _silu_backward(x, gy, gx):
    for i in prange(x.size):
        v = x[i]
        # s and 1 - s both from e = exp(-|v|), in float64: 1 - s from a rounded s would
        # lose v times its rounding for large v (float32 throughout: up to 2.0e-7 absolute,
        # PyTorch's 9.8e-7; this way 6.3e-8, for 1.4-1.8x the time)
        e = np.float64(exp_nonpositive(-abs(v)))
        r = 1.0 / (1.0 + e)
        s, one_minus_s = (r, e * r) if v >= 0 else (e * r, r)
        gx[i] = gy[i] * (s * (1.0 + v * one_minus_s))


def _forward(kernel, x):
    y = np.empty(x.shape, x.dtype)
    kernel.sized(x.size)(np.ascontiguousarray(x).reshape(-1), y.reshape(-1))
    return y


def _backward(op, kernel, saved, gy):
    check_array(op, "gy", gy, saved.shape, saved.dtype)
    gx = np.empty(gy.shape, gy.dtype)
    kernel.sized(gy.size)(np.ascontiguousarray(saved).reshape(-1), np.ascontiguousarray(gy).reshape(-1),
                          gx.reshape(-1))
    return gx


def _fast(*arrays):
    dtypes = [getattr(a, "dtype", None) for a in arrays]
    return all(d in FAST_DTYPES for d in dtypes) and len(set(dtypes)) == 1


# The contract's methods (first argument: the backend), bound in cpu/__init__.py.
def relu(be, x):
    return _forward(_relu, x) if _fast(x) else Backend.relu(be, x)


def relu_backward(be, x, gy):
    return _backward("relu_backward", _relu_backward, x, gy) if _fast(x, gy) else Backend.relu_backward(be, x, gy)


def add_relu(be, a, b):
    if not _fast(a, b) or a.shape != b.shape:
        return Backend.add_relu(be, a, b)
    y = np.empty(a.shape, a.dtype)
    _add_relu.sized(a.size)(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1),
                            y.reshape(-1))
    return y


def relu6(be, x):
    return _forward(_relu6, x) if _fast(x) else Backend.relu6(be, x)


def relu6_backward(be, x, gy):
    return _backward("relu6_backward", _relu6_backward, x, gy) if _fast(x, gy) else Backend.relu6_backward(be, x, gy)


def sigmoid(be, x):
    return _forward(_sigmoid, x) if _fast(x) else Backend.sigmoid(be, x)


def sigmoid_backward(be, y, gy):
    return _backward("sigmoid_backward", _sigmoid_backward, y, gy) if _fast(y, gy) \
        else Backend.sigmoid_backward(be, y, gy)


def silu(be, x):
    return _forward(_silu, x) if _fast(x) else Backend.silu(be, x)


def silu_backward(be, x, gy):
    if not _fast(x, gy):
        return Backend.silu_backward(be, x, gy)
    return _backward("silu_backward", _silu_backward, x, gy)


# ------------------------------------------------------------------ arithmetic
# NumPy's add, sub, mul and div are SIMD loops on one thread; they release the GIL, so a
# large one is cut along its output's first axis and run on the GEMM pool's threads
# (2 cores, batch 16: EfficientNet-B0's squeeze-excitation multiply (16,144,56,56) by
# (16,144,1,1) ran 7.3 ms on one thread).  Below THREADED_MIN_ELEMENTS a hand-off costs
# more than it saves.
THREADED_MIN_ELEMENTS = 1 << 19


def _rows(a, i0, i1, ndim):
    """Rows [i0, i1) of an operand broadcast to ``ndim`` dimensions (unchanged where it
    is a scalar or broadcasts along the first axis)."""
    if not isinstance(a, np.ndarray) or a.ndim < ndim or a.shape[0] == 1:
        return a
    return a[i0:i1]


def _threaded_rows(shape, elements):
    """Row panels [i0, i1) of an output of ``shape`` for THREADS threads, or None where
    the work is too small to hand off."""
    if THREADS == 1 or not shape or shape[0] < THREADS or elements < THREADED_MIN_ELEMENTS:
        return None
    return panels(shape[0], THREADS)


def _threaded(ufunc, a, b, out=None):
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    rows = _threaded_rows(shape, math.prod(shape))
    if rows is None:
        return ufunc(a, b, out=out)
    if out is None:
        out = np.empty(shape, dtype=np.result_type(a, b))
    nd = len(shape)
    in_threads([functools.partial(ufunc, _rows(a, i0, i1, nd), _rows(b, i0, i1, nd), out=out[i0:i1])
                for i0, i1 in rows])
    return out


def add(be, a, b):
    return _threaded(np.add, a, b)


def add_(be, a, b):
    return _threaded(np.add, a, b, out=a)


def sub(be, a, b):
    return _threaded(np.subtract, a, b)


def mul(be, a, b):
    return _threaded(np.multiply, a, b)


def div(be, a, b):
    return _threaded(np.true_divide, a, b)


def concat(be, arrays, axis):
    """np.concatenate; along an axis past the first, the output's rows are cut over the
    threads as above (DenseNet concatenates its growing feature maps at every layer)."""
    first = arrays[0]
    axis = axis % first.ndim if first.ndim else axis
    rows = None if axis == 0 else _threaded_rows(first.shape, sum(a.size for a in arrays))
    if rows is None:
        return np.concatenate(arrays, axis=axis)
    shape = list(first.shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.empty(shape, dtype=np.result_type(*arrays))
    in_threads([functools.partial(np.concatenate, [a[i0:i1] for a in arrays], axis=axis, out=out[i0:i1])
                for i0, i1 in rows])
    return out
