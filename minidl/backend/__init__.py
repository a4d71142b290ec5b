"""Backend registry: maps a device name to its ``Backend`` object.

Only ``cpu`` is built in.  Other devices (``cuda``, ``emu``) register a factory
with :func:`register_backend`; the factory runs on first use, so importing
minidl never imports CuPy or a compiled kernel module.
"""
from __future__ import annotations

import os

from .base import Backend

# Numba's OpenMP workers sleep when idle instead of spinning on the cores that the CPU
# backend's GEMM threads need (cpu/parallel.py).  Set at import, unless the user set it:
# the pool reads it once, when it starts, and a user's numba.set_num_threads starts it
# (started spinning, the 3x3 64->64 forward at batch 8 took 13 ms instead of 8.5).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_factories = {}
_instances = {}


def register_backend(name, factory):
    _factories[name] = factory
    _instances.pop(name, None)


def get_backend(device) -> Backend:
    name = str(device)
    if name.startswith("cuda:"):  # a single GPU for now; 'cuda:0' names it too
        name = "cuda"
    backend = _instances.get(name)
    if backend is not None:
        return backend
    factory = _factories.get(name)
    if factory is None:
        raise ValueError(
            f"device: expected one of {sorted(_factories)}, got {device!r}")
    backend = factory()
    _instances[name] = backend
    return backend


def unavailable_reason(device):
    """None when ``device`` can be used now, else why not and what would fix it."""
    name = str(device)
    if name.startswith("cuda:"):
        name = "cuda"
    if name not in _factories:
        return f"expected one of {sorted(_factories)}, got {device!r}"
    if name == "cuda":
        from .. import cuda
        why = cuda.unavailable_reason()
        return None if why is None else f"device 'cuda' is not available: {why}"
    if name == "emu":
        import importlib
        try:
            importlib.import_module("minidl._emu")
        except ImportError as e:
            return f"device 'emu' is not available: {e}"
    return None


def available_devices():
    """The devices that work now: 'cpu', 'emu' where minidl._emu is built, 'cuda' where
    CuPy, minidl._cuda and a GPU are all present."""
    return [name for name in sorted(_factories) if unavailable_reason(name) is None]


def _make_cpu():
    from .cpu import CpuBackend
    return CpuBackend()


register_backend("cpu", _make_cpu)

__all__ = ["Backend", "get_backend", "register_backend", "available_devices", "unavailable_reason"]


# ---------------------------------------------------------------- kernel backends
# 'emu' (our CUDA kernels run by the host emulation, NumPy arrays) and 'cuda' (CuPy
# arrays + minidl._cuda); both KernelBackend (minidl/backend/kernel).  The factories
# run on first use, so CuPy is never imported by importing minidl.
def _make_emu():
    from .kernel import make_emu_backend
    return make_emu_backend()


def _make_cuda():
    from .kernel import make_cuda_backend
    return make_cuda_backend()


register_backend("emu", _make_emu)
register_backend("cuda", _make_cuda)
