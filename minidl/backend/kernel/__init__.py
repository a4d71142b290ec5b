"""The kernel backends: ``cuda`` (CuPy arrays + minidl._cuda) and ``emu`` (NumPy
arrays + minidl._emu, the same CUDA kernels run by the host emulation).

One class, :class:`KernelBackend`, serves both: it differs only in the array module
(``xp``), the kernel module, how a raw pointer is read from an array and which stream
a launch goes to.  Generic ops come from :class:`~minidl.backend.base.Backend` over
``xp``; matmul is ``xp.matmul`` (cuBLAS through CuPy, or NumPy's BLAS for emu).

Kernel families live one per module (elementwise, softmax, batchnorm, and conv,
pool, lrn from the conv work).  A family module exports, in ``__all__``, plain
functions whose first argument is the backend (``be``); they become methods here.
Helpers a family function uses: ``be.kernel(name, dtype)`` (the bound launcher
``<name>_f32``/``_f64``), ``be.c(a)`` (C-contiguous), ``be.ptr(a)``, ``be.stream()``,
``be.empty(shape, dtype)``.  Families whose module is missing fall back to the base
class (NotImplementedError for fused ops).
"""
from __future__ import annotations

import importlib

import numpy as np

from ..base import Backend

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

# Family modules bound into KernelBackend, in order (later ones may override).
# Hooks for the conv work: conv.py, pool.py, lrn.py (also depthwise through conv).
FAMILIES = ("elementwise", "softmax", "batchnorm", "conv", "pool", "lrn")


class KernelBackend(Backend):
    """A backend whose fused ops run our CUDA kernels (on a GPU, or emulated)."""

    def __init__(self, name, xp, kernels, ptr, stream):
        self.name = name
        self.xp = xp
        self.kernels = kernels
        self._ptr = ptr
        self._stream = stream

    # ---------------------------------------------------------- kernel plumbing
    def kernel(self, name, dtype):
        """The launcher ``<name>_f32`` or ``<name>_f64`` for arrays of ``dtype``."""
        sfx = _SUFFIX.get(np.dtype(dtype))
        if sfx is None:
            raise TypeError(f"{name}: the {self.name} kernels support float32 and float64, got {np.dtype(dtype)}")
        return getattr(self.kernels, f"{name}_{sfx}")

    def c(self, a):
        return self.xp.ascontiguousarray(a)

    def ptr(self, a):
        return self._ptr(a)

    def stream(self):
        return self._stream()

    def to_numpy(self, a):
        if self.xp is np:
            return np.asarray(a)
        return self.xp.asnumpy(a)

    def asarray(self, data, dtype=None):
        if self.xp is not np and not isinstance(data, self.xp.ndarray):
            data = np.asarray(data, dtype=dtype)
        return self.xp.asarray(data, dtype=dtype)

    def __repr__(self):
        return f"KernelBackend({self.name!r})"


def _bind_families():
    for fam in FAMILIES:
        try:
            mod = importlib.import_module(f"{__name__}.{fam}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{fam}":
                continue  # family not written yet: base-class fallback
            raise
        for attr in getattr(mod, "__all__", ()):
            setattr(KernelBackend, attr, getattr(mod, attr))


_bind_families()


# ---------------------------------------------------------------- factories
def make_emu_backend():
    try:
        from ... import _emu
    except ImportError as e:
        raise RuntimeError(
            "device 'emu' is not available: the compiled module minidl._emu is missing "
            f"({e}); build it with 'pip install -e .' (needs CMake and a C++20 compiler)") from e
    return KernelBackend("emu", np, _emu, lambda a: a.ctypes.data, lambda: 0)


def make_cuda_backend():
    from ... import cuda
    cuda.require()
    import cupy
    from ... import _cuda
    return KernelBackend("cuda", cupy, _cuda, lambda a: a.data.ptr,
                         lambda: cupy.cuda.get_current_stream().ptr)
