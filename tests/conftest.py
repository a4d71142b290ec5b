"""Shared test setup: ``tests/`` on sys.path (for ``helpers``) and the device selection.

Devices:
  * ``cpu``  always (NumPy + Numba);
  * ``emu``  our CUDA kernels run by the host emulation, when ``minidl._emu`` imports
             (skipped with the reason otherwise);
  * ``cuda`` our CUDA kernels on a GPU, when ``minidl.cuda.is_available()`` (skipped
             with the reason otherwise).
``MINIDL_KERNEL_DEVICES`` (``emu``, ``cuda`` or ``emu,cuda``; default both) restricts the
kernel devices (emu, cuda); cpu always runs.  benchmarks/gpu_check.sh sets it to cuda.

The op tests take the ``device`` fixture (cpu, emu, cuda); the kernel tests compare
kernel devices against the CPU backend and parametrize over ``KERNEL_DEVICES``
(``from conftest import KERNEL_DEVICES``).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import minidl  # noqa: E402


def _emu_reason():
    try:
        from minidl import _emu  # noqa: F401
    except ImportError as e:
        return f"minidl._emu is not built ({e}); build it with 'pip install -e .'"
    return None


def _cuda_reason():
    try:
        minidl.cuda.require()
    except RuntimeError as e:
        return f"no GPU: minidl.cuda.is_available() is False ({e})"
    return None


# float32 ops are tested at float32 precision: no TF32 tensor cores (minidl.cuda.allow_tf32)
minidl.cuda.allow_tf32.matmul = False
minidl.cuda.allow_tf32.conv = False

EMU_REASON = _emu_reason()
CUDA_REASON = _cuda_reason()  # None when the cuda device is usable
_REASONS = {"cpu": None, "emu": EMU_REASON, "cuda": CUDA_REASON}


def _wanted_kernel_devices():
    raw = os.environ.get("MINIDL_KERNEL_DEVICES", "emu,cuda")
    wanted = {d.strip() for d in raw.split(",") if d.strip()}
    unknown = wanted - {"emu", "cuda"}
    if unknown:
        raise ValueError(f"MINIDL_KERNEL_DEVICES: expected a comma-separated subset of emu,cuda, "
                         f"got {raw!r}")
    return wanted


def device_params(*names):
    """pytest params for the devices ``names`` (each marked skip, with the reason, when
    unusable); kernel devices not in MINIDL_KERNEL_DEVICES are left out."""
    wanted = _wanted_kernel_devices()
    out = []
    for name in names:
        if name != "cpu" and name not in wanted:
            continue
        reason = _REASONS[name]
        out.append(pytest.param(name, id=name, marks=pytest.mark.skipif(reason is not None,
                                                                       reason=reason or "")))
    return out


KERNEL_DEVICES = device_params("emu", "cuda")
DEVICES = device_params("cpu", "emu", "cuda")


@pytest.fixture(params=DEVICES)
def device(request):
    """Each op test that takes ``device`` runs on cpu, emu and cuda (where usable)."""
    return request.param
