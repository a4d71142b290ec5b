"""Elementwise arithmetic with NumPy broadcasting, unary math, reductions and matmul.

Backward of a broadcast binary op reduces the gradient back to each input's
shape with ``backend.sum_to_shape``.
"""
from __future__ import annotations

from .function import GenericFunction


class ToDevice(GenericFunction):
    moves_data_only = True

    def forward(self, x):
        from ..backend import get_backend
        self.src = self.backend
        self.dst = get_backend(self.device)
        self.output_device = self.device
        return self.dst.upload(self.src.to_numpy(x), getattr(self, "non_blocking", False))

    def backward(self, gy):
        return self.src.asarray(self.dst.to_numpy(gy))


class Cast(GenericFunction):
    moves_data_only = True

    def forward(self, x):
        self.src_dtype = x.dtype
        return self.backend.astype(x, self.dtype)

    def backward(self, gy):
        return self.backend.astype(gy, self.src_dtype)


class Clone(GenericFunction):
    moves_data_only = True

    def forward(self, x):
        return self.backend.copy(x)

    def backward(self, gy):
        return gy


class _Binary(GenericFunction):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a_dtype, self.b_dtype = a.dtype, b.dtype
        return self._forward(a, b)

    def _reduce(self, ga, gb):
        """Sum broadcast gradients back to the input shapes, in the input dtypes
        (mixed float32/float64 operands give a float64 output)."""
        be = self.backend
        if ga is not None:
            ga = be.sum_to_shape(ga, self.a_shape)
            ga = ga if ga.dtype == self.a_dtype else be.astype(ga, self.a_dtype)
        if gb is not None:
            gb = be.sum_to_shape(gb, self.b_shape)
            gb = gb if gb.dtype == self.b_dtype else be.astype(gb, self.b_dtype)
        return ga, gb


class Add(_Binary):
    def _forward(self, a, b):
        return self.backend.add(a, b)

    def backward(self, gy):
        return self._reduce(gy, gy)


class Sub(_Binary):
    def _forward(self, a, b):
        return self.backend.sub(a, b)

    def backward(self, gy):
        return self._reduce(gy, self.backend.neg(gy) if self.needs_input_grad[1] else None)


class Mul(_Binary):
    def _forward(self, a, b):
        self.save_for_backward(a, b)
        return self.backend.mul(a, b)

    def backward(self, gy):
        a, b = self.saved
        be = self.backend
        return self._reduce(be.mul(gy, b) if self.needs_input_grad[0] else None,
                            be.mul(gy, a) if self.needs_input_grad[1] else None)


class Div(_Binary):
    def _forward(self, a, b):
        self.save_for_backward(a, b)
        return self.backend.div(a, b)

    def backward(self, gy):
        a, b = self.saved
        be = self.backend
        ga = be.div(gy, b) if self.needs_input_grad[0] else None
        gb = be.neg(be.div(be.mul(gy, a), be.mul(b, b))) if self.needs_input_grad[1] else None
        return self._reduce(ga, gb)


class Pow(_Binary):
    """a ** b with both sides tensors (b's gradient needs a > 0)."""

    def _forward(self, a, b):
        y = self.backend.pow(a, b)
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved
        be = self.backend
        ga = be.mul(gy, be.mul(b, be.pow(a, be.sub(b, 1)))) if self.needs_input_grad[0] else None
        gb = be.mul(gy, be.mul(y, be.log(a))) if self.needs_input_grad[1] else None
        return self._reduce(ga, gb)


class PowScalar(GenericFunction):
    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.pow(x, self.exponent)

    def backward(self, gy):
        (x,) = self.saved
        be = self.backend
        if self.exponent == 0:  # x**0 == 1 everywhere: 0 * x**-1 would be NaN at x == 0
            return be.zeros_like(gy)
        return be.mul(gy, be.mul(be.pow(x, self.exponent - 1), self.exponent))


class Neg(GenericFunction):
    def forward(self, x):
        return self.backend.neg(x)

    def backward(self, gy):
        return self.backend.neg(gy)


class Exp(GenericFunction):
    def forward(self, x):
        y = self.backend.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return self.backend.mul(gy, self.saved[0])


class Log(GenericFunction):
    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.log(x)

    def backward(self, gy):
        return self.backend.div(gy, self.saved[0])


class Sqrt(GenericFunction):
    def forward(self, x):
        y = self.backend.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        be = self.backend
        return be.div(gy, be.mul(self.saved[0], 2))


class Tanh(GenericFunction):
    def forward(self, x):
        y = self.backend.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        be = self.backend
        (y,) = self.saved
        return be.mul(gy, be.sub(1, be.mul(y, y)))


class Abs(GenericFunction):
    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.abs(x)

    def backward(self, gy):
        return self.backend.mul(gy, self.backend.sign(self.saved[0]))


class Clamp(GenericFunction):
    def forward(self, x):
        be = self.backend
        lo = -float("inf") if self.lo is None else self.lo
        hi = float("inf") if self.hi is None else self.hi
        self.save_for_backward(x)
        return be.clip(x, lo, hi)

    def backward(self, gy):
        be = self.backend
        (x,) = self.saved
        inside = be.ones_like(x)
        if self.lo is not None:
            inside = be.where(be.less(x, self.lo), 0, inside)
        if self.hi is not None:
            inside = be.where(be.greater(x, self.hi), 0, inside)
        return be.mul(gy, be.cast_like(inside, gy))


class Maximum(_Binary):
    """Elementwise max of two tensors; ties send the gradient to the first input."""

    def _forward(self, a, b):
        self.save_for_backward(a, b)
        return self.backend.maximum(a, b)

    def backward(self, gy):
        be = self.backend
        a, b = self.saved
        first = be.cast_like(be.equal(be.maximum(a, b), a), gy)
        return self._reduce(be.mul(gy, first), be.mul(gy, be.sub(1, first)))


# ---------------------------------------------------------------- reductions
def _reduced_count(shape, axis):
    if axis is None:
        n = 1
        for s in shape:
            n *= s
        return n
    n = 1
    for a in axis:
        n *= shape[a]
    return n


def _expand_grad(be, gy, in_shape, axis, keepdims):
    """Reshape a reduced gradient so that it broadcasts against the input."""
    if axis is None:
        return be.reshape(gy, (1,) * len(in_shape))
    if keepdims:
        return gy
    shape = [1 if i in axis else s for i, s in enumerate(in_shape)]
    return be.reshape(gy, tuple(shape))


class Sum(GenericFunction):
    def forward(self, x):
        self.in_shape = x.shape
        return self.backend.sum(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        be = self.backend
        g = _expand_grad(be, gy, self.in_shape, self.axis, self.keepdims)
        return be.copy(be.broadcast_to(g, self.in_shape))


class Mean(GenericFunction):
    def forward(self, x):
        self.in_shape = x.shape
        return self.backend.mean(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        be = self.backend
        n = _reduced_count(self.in_shape, self.axis)
        g = _expand_grad(be, gy, self.in_shape, self.axis, self.keepdims)
        return be.copy(be.broadcast_to(be.div(g, n), self.in_shape))


class Max(GenericFunction):
    """Max over axes; tied maxima share the gradient equally."""

    def forward(self, x):
        y = self.backend.max(x, axis=self.axis, keepdims=True)
        self.save_for_backward(x, y)
        if self.keepdims:
            return y
        return self.backend.max(x, axis=self.axis, keepdims=False)

    def backward(self, gy):
        be = self.backend
        x, y = self.saved
        mask = be.cast_like(be.equal(x, y), gy)
        count = be.sum(mask, axis=self.axis, keepdims=True)
        g = _expand_grad(be, gy, x.shape, self.axis, self.keepdims)
        return be.mul(mask, be.div(g, count))


class Var(GenericFunction):
    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.var(x, axis=self.axis, keepdims=self.keepdims, ddof=self.ddof)

    def backward(self, gy):
        be = self.backend
        (x,) = self.saved
        n = _reduced_count(x.shape, self.axis)
        centered = be.sub(x, be.mean(x, axis=self.axis, keepdims=True))
        g = _expand_grad(be, gy, x.shape, self.axis, self.keepdims)
        return be.mul(centered, be.mul(g, 2.0 / (n - self.ddof)))


class MatMul(GenericFunction):
    """NumPy matmul semantics for 2-D and batched operands (1-D operands are promoted)."""

    def forward(self, a, b):
        if a.ndim < 1 or b.ndim < 1:
            raise ValueError(f"matmul: expected operands with at least 1 dimension, got {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
        self.save_for_backward(a, b)
        return self.backend.matmul(a, b)

    def backward(self, gy):
        be = self.backend
        a, b = self.saved
        a2 = be.reshape(a, (1,) + a.shape) if a.ndim == 1 else a
        b2 = be.reshape(b, b.shape + (1,)) if b.ndim == 1 else b
        g = gy
        if a.ndim == 1 and b.ndim == 1:  # vector @ vector -> scalar
            g = be.reshape(g, (1, 1))
        elif a.ndim == 1:
            g = be.expand_dims(g, -2)
        elif b.ndim == 1:
            g = be.expand_dims(g, -1)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = be.sum_to_shape(be.matmul(g, be.transpose(b2, _swap_last(b2.ndim))), a2.shape)
            ga = be.reshape(ga, a.shape)
            ga = ga if ga.dtype == a.dtype else be.astype(ga, a.dtype)
        if self.needs_input_grad[1]:
            gb = be.sum_to_shape(be.matmul(be.transpose(a2, _swap_last(a2.ndim)), g), b2.shape)
            gb = be.reshape(gb, b.shape)
            gb = gb if gb.dtype == b.dtype else be.astype(gb, b.dtype)
        return ga, gb


def _swap_last(ndim):
    axes = list(range(ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return tuple(axes)
