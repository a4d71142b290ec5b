"""GPU availability (``minidl.cuda.is_available()``, ``device_count()``) and the TF32
switch ``minidl.cuda.allow_tf32``.

Never imports CuPy at minidl import time; the first call does (guarded).  The GPU
needs both CuPy (``pip install -e ".[cuda]"``: cupy-cuda13x) and the compiled
module ``minidl._cuda`` (built by ``pip install -e .`` where nvcc is found).
"""
from __future__ import annotations

import importlib.util
import sys

from .install import extra_hint


class AllowTF32:
    """``minidl.cuda.allow_tf32``: may float32 work on the GPU use TF32 tensor cores
    (inputs rounded to a 10-bit mantissa, float32 accumulation: about 1e-3 relative
    error instead of 1e-6, for up to 8x the throughput)?

      ``matmul``  cuBLAS matrix products, through CuPy (Linear layers, 1x1 convolutions
                  and the im2col GEMMs); default False, as PyTorch's
                  ``torch.backends.cuda.matmul.allow_tf32``.
      ``conv``    our convolution kernels; default True, as
                  ``torch.backends.cudnn.allow_tf32``.  Read by the convolution
                  dispatch; the kernels of this release compute in float32 SIMT, so it
                  takes effect with the tensor-core kernels.

    The test suite runs with both off.  Setting ``matmul`` applies to CuPy at once when
    it is loaded, and the cuda backend applies it when it starts (CuPy's own default
    comes from the CUPY_TF32 environment variable, which this overrides).
    """

    def __init__(self, matmul=False, conv=True):
        self._matmul = self._check("matmul", matmul)
        self._conv = self._check("conv", conv)

    @staticmethod
    def _check(name, value):
        if not isinstance(value, bool):
            raise TypeError(f"minidl.cuda.allow_tf32.{name}: expected True or False, got {value!r}")
        return value

    @property
    def matmul(self):
        return self._matmul

    @matmul.setter
    def matmul(self, value):
        self._matmul = self._check("matmul", value)
        if "cupy" in sys.modules:
            self.apply_to_cupy()

    @property
    def conv(self):
        return self._conv

    @conv.setter
    def conv(self, value):
        self._conv = self._check("conv", value)

    def apply_to_cupy(self):
        """Set CuPy's compute type of float32 (and complex64) matrix products."""
        import numpy as np
        from cupy._core import _routines_linalg as linalg
        kind = linalg.COMPUTE_TYPE_TF32 if self._matmul else linalg.COMPUTE_TYPE_DEFAULT
        for dtype in (np.float32, np.complex64):
            linalg.set_compute_type(dtype, kind)

    def __repr__(self):
        return f"AllowTF32(matmul={self._matmul}, conv={self._conv})"


allow_tf32 = AllowTF32()


def unavailable_reason():
    """None when the cuda device can be used, else the reason."""
    if importlib.util.find_spec("cupy") is None:
        return f"CuPy is not installed ({extra_hint('cuda')})"
    try:
        import cupy
    except Exception as e:  # a broken CuPy install
        return f"CuPy failed to import ({e})"
    try:
        from . import _cuda  # noqa: F401
    except ImportError as e:
        return ("minidl._cuda was not built (no CUDA compiler at install time, or MINIDL_CUDA=OFF; "
                f"reinstall with nvcc on PATH) ({e})")
    try:
        ok = cupy.cuda.is_available()
    except Exception:
        ok = False
    if not ok:
        return "no GPU found (CuPy sees no CUDA device)"
    return None


def is_available() -> bool:
    return unavailable_reason() is None


def device_count() -> int:
    if not is_available():
        return 0
    import cupy
    return int(cupy.cuda.runtime.getDeviceCount())


def require():
    """Raise a clear RuntimeError when the cuda device cannot be used."""
    why = unavailable_reason()
    if why is not None:
        raise RuntimeError(f"device 'cuda' is not available: {why}")
