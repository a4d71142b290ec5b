"""The floating-point dtypes minidl computes in, as NumPy dtype objects.

float16 is NumPy's; bfloat16 comes from ``ml_dtypes`` (a NumPy dtype extension
whose dtype ``kind`` is ``'V'``, so floating-point checks go through
``is_floating`` rather than ``dtype.kind == 'f'``).  NumPy's promotion rules hold
for both: float16 with bfloat16 gives float32, either with float32 gives float32.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

float16 = np.dtype(np.float16)
bfloat16 = np.dtype(ml_dtypes.bfloat16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)

HALF_DTYPES = (float16, bfloat16)
FLOATING_DTYPES = (float16, bfloat16, float32, float64)


def dtype(spec):
    """``spec`` (a name such as "bfloat16", a NumPy type or dtype) as a NumPy dtype."""
    return np.dtype(spec)


def names_dtype(spec) -> bool:
    """Whether ``spec`` names a dtype rather than a device ("float16", np.float32, a
    dtype): ``to(spec)`` then casts, as PyTorch's ``to(torch.float16)`` does."""
    if isinstance(spec, (np.dtype, type)):
        return True
    if isinstance(spec, str) and spec.partition(":")[0] not in ("cpu", "cuda", "emu"):
        try:
            np.dtype(spec)
        except TypeError:
            return False
        return True
    return False


def is_floating(dt) -> bool:
    return np.dtype(dt) in FLOATING_DTYPES


def is_half(dt) -> bool:
    return np.dtype(dt) in HALF_DTYPES


def compute_dtype(dt):
    """The dtype 16-bit data is computed and accumulated in (kernels/half.cuh's
    compute_t): float32 for float16 and bfloat16, else ``dt`` itself.  The kernels'
    per-channel vectors, partial sums and work arrays beside 16-bit data have it."""
    dt = np.dtype(dt)
    return float32 if dt in HALF_DTYPES else dt
