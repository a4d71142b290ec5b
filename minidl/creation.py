"""Tensor factories (zeros, ones, randn, ...) and tensor-level helpers (isfinite)."""
from __future__ import annotations

import numpy as np  # dtype objects only

from .backend import get_backend
from .dtypes import is_floating
from .random import generator
from .tensor import DEFAULT_DTYPE, Tensor, _device_name


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(int(s) for s in shape[0])
    return tuple(int(s) for s in shape)


def _make(array, device, requires_grad):
    if requires_grad and not is_floating(array.dtype):
        raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {array.dtype}")
    return Tensor._wrap(array, _device_name(device), requires_grad=bool(requires_grad))


def tensor(data, dtype=None, device="cpu", requires_grad=False):
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros(*shape, dtype=DEFAULT_DTYPE, device="cpu", requires_grad=False):
    return _make(get_backend(device).zeros(_shape(shape), np.dtype(dtype)), device, requires_grad)


def ones(*shape, dtype=DEFAULT_DTYPE, device="cpu", requires_grad=False):
    return _make(get_backend(device).ones(_shape(shape), np.dtype(dtype)), device, requires_grad)


def full(shape, value, dtype=DEFAULT_DTYPE, device="cpu", requires_grad=False):
    return _make(get_backend(device).full(_shape((shape,)), value, np.dtype(dtype)), device, requires_grad)


def zeros_like(t, requires_grad=False):
    return _make(t.backend.zeros_like(t.data), t.device, requires_grad)


def ones_like(t, requires_grad=False):
    return _make(t.backend.ones_like(t.data), t.device, requires_grad)


def arange(*args, dtype=None, device="cpu"):
    """Like numpy.arange; integer arguments give int64, float arguments the default float32."""
    be = get_backend(device)
    if dtype is None and any(isinstance(a, float) for a in args):
        dtype = DEFAULT_DTYPE
    return _make(be.arange(*args, dtype=None if dtype is None else np.dtype(dtype)), device, False)


def randn(*shape, dtype=DEFAULT_DTYPE, device="cpu", requires_grad=False):
    be = get_backend(device)
    return _make(be.standard_normal(generator(device), _shape(shape), np.dtype(dtype)), device, requires_grad)


def rand(*shape, dtype=DEFAULT_DTYPE, device="cpu", requires_grad=False):
    be = get_backend(device)
    return _make(be.uniform(generator(device), 0.0, 1.0, _shape(shape), np.dtype(dtype)), device, requires_grad)


def isfinite(t) -> bool:
    """True when every element of ``t`` is finite (use it to catch a NaN/inf loss)."""
    return t.backend.all(t.backend.isfinite(t.data))
