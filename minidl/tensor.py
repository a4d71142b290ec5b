"""``Tensor``: an array on a device plus the autograd bookkeeping.

The array lives in ``.data`` (a NumPy array on ``cpu``, a CuPy array on
``cuda``); every operation is an autograd ``Function`` (minidl/autograd) that
reaches the array through the device's backend.
"""
from __future__ import annotations

import numpy as np  # dtype objects and scalar checks only

from .backend import get_backend
from .dtypes import bfloat16, float16, is_floating, names_dtype
from .autograd import function as _function
from .autograd.math import (Abs, Add, Cast, Clamp, Clone, Div, Exp, Log, MatMul, Max, Mean, Mul, Neg, Pow,
                            PowScalar, Sqrt, Sub, Sum, Tanh, ToDevice, Var)
from .autograd.shape import BroadcastTo, GetItem, Permute, Reshape

DEFAULT_DTYPE = np.float32


def _normalize_dtype(dtype):
    return None if dtype is None else np.dtype(dtype)


class Conversions:
    """``cpu()/cuda()/float()/double()/half()/bfloat16()`` shorthands over ``to()``, shared by
    Tensor and Module."""

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def half(self):
        return self.to(dtype=float16)

    def bfloat16(self):
        return self.to(dtype=bfloat16)


class Tensor(Conversions):
    __array_priority__ = 1000  # numpy scalars/arrays on the left defer to our operators
    _post_accumulate_grad_hooks = None  # {handle id: hook} once one is registered

    def __init__(self, data, dtype=None, device="cpu", requires_grad=False):
        backend = get_backend(device)
        dtype = _normalize_dtype(dtype)
        if isinstance(data, Tensor):
            data = data.data
        arr = backend.asarray(data, dtype=dtype)
        if dtype is None and arr.dtype == np.float64 and not _is_float64_array(data):
            arr = backend.astype(arr, DEFAULT_DTYPE)  # Python floats default to float32
        self.data = arr
        self.device = _device_name(device)
        self.grad = None
        self._ctx = None
        self._out_index = 0
        if requires_grad and not is_floating(self.data.dtype):
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)

    @classmethod
    def _wrap(cls, array, device, requires_grad=False):
        t = cls.__new__(cls)
        t.data = array
        t.device = device
        t.grad = None
        t._ctx = None
        t._out_index = 0
        t.requires_grad = requires_grad
        return t

    # ------------------------------------------------------------ properties
    @property
    def backend(self):
        return get_backend(self.device)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return int(self.data.size)

    def numel(self):
        return int(self.data.size)

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        prefix = "Tensor("
        # prefix: continuation rows are indented under the first, as numpy.array_repr does
        body = np.array2string(self.numpy(), precision=4, separator=", ", threshold=50,
                               prefix=prefix)
        extras = [f"shape={self.shape}", f"dtype={self.dtype}", f"device='{self.device}'"]
        if self._ctx is not None:
            extras.append(f"grad_fn=<{type(self._ctx).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"{prefix}{body}, {', '.join(extras)})"

    # ------------------------------------------------------------ array protocols
    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)``: the cpu tensor's own array (no copy).  A tensor on another
        device is an error, as in PyTorch: copy it to the host with ``.cpu()`` or ``.numpy()``."""
        if self.device != "cpu":
            raise TypeError(f"can't convert a tensor on device '{self.device}' to a NumPy array "
                            "implicitly; copy it to host memory first with .cpu() or .numpy()")
        if copy is False and dtype is not None and np.dtype(dtype) != self.dtype:
            raise ValueError(f"__array__: converting {self.dtype} to {np.dtype(dtype)} needs a copy, "
                             "but copy=False was given")
        out = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return out.copy() if copy else out

    def __dlpack__(self, **kwargs):
        """DLPack export of the underlying array (shared memory); keyword arguments
        (``stream``, ``max_version``, ``dl_device``, ``copy``) go to the array's own
        ``__dlpack__``, the ones left at None are not passed."""
        return self.data.__dlpack__(**{k: v for k, v in kwargs.items() if v is not None})

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    # ------------------------------------------------------------ conversion
    def numpy(self):
        return self.backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: expected a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None, non_blocking=False):
        """This tensor on ``device`` and/or in ``dtype`` (itself when nothing changes).
        ``non_blocking=True``: a host-to-GPU copy overlaps the host and the queued
        kernels (pinned memory, a second stream; see Backend.upload).  A dtype as the first argument is the dtype
        (``t.to(minidl.float16)``, as in PyTorch)."""
        if device is not None and dtype is None and names_dtype(device):
            device, dtype = None, device
        out = self
        if device is not None and _device_name(device) != self.device:
            get_backend(device)  # raises a clear error for an unknown or absent device
            out = ToDevice.apply(out, device=_device_name(device), non_blocking=bool(non_blocking))
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = Cast.apply(out, dtype=np.dtype(dtype))
        return out

    def detach(self):
        return Tensor._wrap(self.data, self.device)

    def clone(self):
        return Clone.apply(self)

    def requires_grad_(self, flag=True):
        if flag and not is_floating(self.data.dtype):
            raise TypeError(f"requires_grad_: only floating-point tensors can require grad, got {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    def zero_grad(self):
        self.grad = None

    def backward(self, grad=None, retain_graph=False):
        _function.backward(self, grad, retain_graph=retain_graph)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` in every backward pass as soon as this leaf's ``.grad``
        holds all of that pass's contributions (before the rest of backward finishes);
        -> a handle whose ``remove()`` unregisters it."""
        if not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: the tensor is not a leaf; "
                               "hooks run where gradients accumulate, on leaves")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: the tensor does not require grad")
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: expected a callable, "
                            f"got {type(hook).__name__}")
        if self._post_accumulate_grad_hooks is None:
            self._post_accumulate_grad_hooks = {}
        return _function.HookHandle(self._post_accumulate_grad_hooks, hook)

    # ------------------------------------------------------------ arithmetic
    def _coerce(self, other):
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, bool, np.number)):
            return Tensor._wrap(self.backend.asarray(other, dtype=self.dtype), self.device)
        return Tensor(other, dtype=self.dtype, device=self.device)

    def _operands(self, other):
        """(self, other) as Tensors for a binary op.  A Python/NumPy scalar takes self's
        dtype; a float scalar with an integer/bool tensor promotes both to float32
        (instead of truncating the scalar: int_tensor * 0.5 is not zero)."""
        if self.data.dtype.kind in "biu" and isinstance(other, (float, np.floating)):
            a = self.to(dtype=DEFAULT_DTYPE)
            return a, a._coerce(other)
        return self, self._coerce(other)

    def __add__(self, other):
        return Add.apply(*self._operands(other))

    def __radd__(self, other):
        return Add.apply(*self._operands(other)[::-1])

    def __sub__(self, other):
        return Sub.apply(*self._operands(other))

    def __rsub__(self, other):
        return Sub.apply(*self._operands(other)[::-1])

    def __mul__(self, other):
        return Mul.apply(*self._operands(other))

    def __rmul__(self, other):
        return Mul.apply(*self._operands(other)[::-1])

    def __truediv__(self, other):
        return Div.apply(*self._operands(other))

    def __rtruediv__(self, other):
        return Div.apply(*self._operands(other)[::-1])

    def __pow__(self, other):
        if isinstance(other, (int, float, np.number)):
            return PowScalar.apply(self, exponent=float(other))
        return Pow.apply(*self._operands(other))

    def __rpow__(self, other):
        return Pow.apply(*self._operands(other)[::-1])

    def __neg__(self):
        return Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return MatMul.apply(*self._operands(other))

    def __rmatmul__(self, other):
        return MatMul.apply(*self._operands(other)[::-1])

    # comparisons give tensors that never require grad
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(getattr(self.backend, op)(self.data, other), self.device)

    def __eq__(self, other):
        return self._compare(other, "equal")

    def __gt__(self, other):
        return self._compare(other, "greater")

    def __lt__(self, other):
        return self._compare(other, "less")

    def __ne__(self, other):
        return self._compare(other, "not_equal")

    def __ge__(self, other):
        return self._compare(other, "greater_equal")

    def __le__(self, other):
        return self._compare(other, "less_equal")

    def _one_value(self, what):
        if self.data.size != 1:
            raise ValueError(f"{what}: only a tensor of one element converts to a Python scalar, "
                             f"got shape {self.shape}")
        return self.item()

    def __bool__(self):
        return bool(self._one_value("bool"))

    def __float__(self):
        return float(self._one_value("float"))

    def __int__(self):
        return int(self._one_value("int"))

    def __invert__(self):
        return Tensor._wrap(~self.data, self.device)

    __hash__ = object.__hash__

    # ------------------------------------------------------------ unary
    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Sqrt.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def abs(self):
        return Abs.apply(self)

    def clamp(self, min=None, max=None):
        return Clamp.apply(self, lo=min, hi=max)

    def relu(self):
        from . import functional
        return functional.relu(self)

    def sigmoid(self):
        from . import functional
        return functional.sigmoid(self)

    # ------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False):
        return Sum.apply(self, axis=_norm_axis(axis, self.ndim, "sum"), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return Mean.apply(self, axis=_norm_axis(axis, self.ndim, "mean"), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return Max.apply(self, axis=_norm_axis(axis, self.ndim, "max"), keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return Var.apply(self, axis=_norm_axis(axis, self.ndim, "var"), keepdims=keepdims, ddof=ddof)

    def argmax(self, axis=None):
        return Tensor._wrap(self.backend.argmax(self.data, axis=axis), self.device)

    # ------------------------------------------------------------ shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=_resolve_shape(shape, self.size, "reshape"))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        nd = self.ndim
        s = _dim(start_dim, nd, "flatten") if nd else 0
        e = _dim(end_dim, nd, "flatten") if nd else 0
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {self.shape}")
        shape = self.shape[:s] + (-1,) + self.shape[e + 1:]
        return self.reshape(shape)

    def transpose(self, dim0=None, dim1=None):
        if dim0 is None:
            return self.permute(*reversed(range(self.ndim)))
        axes = list(range(self.ndim))
        dim0, dim1 = _dim(dim0, self.ndim, "transpose"), _dim(dim1, self.ndim, "transpose")
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    @property
    def T(self):
        return self.transpose()

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        nd = self.ndim
        if (len(axes) != nd or any(not -nd <= int(a) < nd for a in axes)
                or sorted(int(a) % nd for a in axes) != list(range(nd))):
            raise ValueError(f"permute: expected a permutation of {self.ndim} axes, got {axes}")
        return Permute.apply(self, axes=tuple(a % self.ndim for a in axes))

    def unsqueeze(self, dim):
        dim = _dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dim = _dim(dim, self.ndim, "squeeze")
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def expand(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(s if s != -1 else self.shape[i - (len(shape) - self.ndim)] for i, s in enumerate(shape))
        return BroadcastTo.apply(self, shape=shape)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return GetItem.apply(self, index=index)


def _device_name(device):
    name = str(device)
    return "cuda" if name.startswith("cuda") else name


def _is_float64_array(data):
    return hasattr(data, "dtype") and np.dtype(data.dtype) == np.float64


def _dim(dim, ndim, op, name="dimension"):
    """Normalize a possibly negative axis index, or raise a ValueError naming the op."""
    dim = int(dim)
    if not -ndim <= dim < ndim:
        raise ValueError(f"{op}: {name} {dim} is out of range for a tensor with {ndim} dimensions "
                         f"(expected {-ndim} to {ndim - 1})")
    return dim % ndim


def _norm_axis(axis, ndim, op="reduce"):
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        axes = tuple(sorted(_dim(a, ndim, op, "axis") for a in axis))
        if len(set(axes)) != len(axes):
            raise ValueError(f"{op}: axis {tuple(axis)} repeats an axis")
        return axes
    return (_dim(axis, ndim, op, "axis"),)


def _resolve_shape(shape, size, op):
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ValueError(f"{op}: at most one dimension may be -1, got {shape}")
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        if known == 0 or size % known:
            raise ValueError(f"{op}: cannot reshape {size} elements into {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    n = 1
    for s in shape:
        n *= s
    if n != size:
        raise ValueError(f"{op}: cannot reshape {size} elements into shape {shape}")
    return shape
