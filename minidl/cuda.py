"""GPU availability: ``minidl.cuda.is_available()``, ``device_count()``.

Never imports CuPy at minidl import time; the first call does (guarded).  The GPU
needs both CuPy (``pip install -e ".[cuda]"``: cupy-cuda13x) and the compiled
module ``minidl._cuda`` (built by ``pip install -e .`` where nvcc is found).
"""
from __future__ import annotations

import importlib.util

from .install import extra_hint


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
