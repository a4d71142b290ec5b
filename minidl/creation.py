"""Tensor factories (zeros, ones, randn, ...), the interop constructors (tensor copies;
from_numpy, as_tensor and from_dlpack share memory) and tensor-level helpers (isfinite)."""
from __future__ import annotations

import numpy as np  # dtype objects and the ndarray type only

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
    """A new tensor holding a copy of ``data`` (a list, a number, an array or a Tensor), as
    ``torch.tensor`` does: changing ``data`` afterwards leaves the tensor as it is.
    :func:`from_numpy` and :func:`as_tensor` share memory instead."""
    t = Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
    source = data.data if isinstance(data, Tensor) else data
    # asarray returns either ``source`` itself, a view of it (base set) or a fresh array
    if t.data is source or getattr(t.data, "base", None) is not None:
        t.data = t.backend.copy(t.data)
    return t


def as_tensor(data, dtype=None, device="cpu"):
    """A tensor sharing memory with ``data`` where its dtype and device allow (as
    ``torch.as_tensor``), else converted.  No gradient is tracked."""
    return Tensor(data, dtype=dtype, device=device)


def from_numpy(array):
    """A cpu tensor sharing memory with the NumPy array ``array``: writes to either show
    in the other (as ``torch.from_numpy``).  The dtype is kept."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array, "cpu")


# DLPack device types (dlpack.h DLDeviceType) and the device that holds their memory
_DLPACK_DEVICES = {1: "cpu", 2: "cuda"}   # kDLCPU, kDLCUDA


def from_dlpack(obj):
    """A tensor sharing memory with ``obj``, any array that exports DLPack (NumPy, CuPy,
    PyTorch, JAX, another minidl Tensor): on the cpu for host memory, on ``cuda`` for
    GPU memory.  No copy is made."""
    if not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and __dlpack_device__ "
                        f"(a NumPy, CuPy or PyTorch array), got {type(obj).__name__}")
    kind = int(obj.__dlpack_device__()[0])
    device = _DLPACK_DEVICES.get(kind)
    if device is None:
        raise ValueError(f"from_dlpack: expected memory on the host or a CUDA GPU "
                         f"(DLPack device type 1 or 2), got device type {kind}")
    return Tensor._wrap(get_backend(device).from_dlpack(obj), device)


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
