"""The checks every backend op applies to the arrays it is given, before a kernel (a
Numba loop or a CUDA launch) trusts them: shape against the geometry, dtype,
C-contiguity, and the range of indices a kernel dereferences.  Errors name the op
and the array: "max_pool2d_backward: argmax has shape (2, 3), expected (2, 3, 4, 4)".
"""
from __future__ import annotations

import numpy as np


def check_array(op, name, a, shape=None, dtype=None, contiguous=False):
    """``a`` has ``shape`` (a tuple; None: any), ``dtype`` (None: any) and, with
    ``contiguous``, C-contiguous memory; else ValueError/TypeError naming ``op``."""
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{op}: expected {name} to be an array, got {type(a).__name__}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if dtype is not None and np.dtype(a.dtype) != np.dtype(dtype):
        raise TypeError(f"{op}: {name} has dtype {np.dtype(a.dtype)}, expected {np.dtype(dtype)}")
    if contiguous and not a.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous")
    return a


def check_index_range(op, name, a, upper):
    """Every value of the integer array ``a`` lies in [0, upper); else ValueError.

    Checked where it costs no device sync: host (NumPy) arrays, i.e. everything on cpu
    and emu, and host labels given to cuda.  A CuPy array is device data that was
    checked where it was made: labels on the host before their upload (an out-of-range
    label left on the device gives a NaN loss, see kernels/softmax.cuh), argmax by our own
    max_pool2d_forward (and the max-pool backward kernel only compares argmax values
    with pixel indices, it never dereferences them)."""
    if np.dtype(a.dtype).kind not in "iu":
        raise TypeError(f"{op}: {name} must hold integers, got dtype {np.dtype(a.dtype)}")
    if isinstance(a, np.ndarray) and a.size:  # (a plain view: emu's launch check is no host read)
        plain = a.view(np.ndarray)
        low, high = int(plain.min()), int(plain.max())
        if low < 0 or high >= upper:
            raise ValueError(f"{op}: {name} must lie in [0, {upper}), got {low if low < 0 else high}")
    return a


def check_conv_arrays(op, geometry, x, w, gy=None):
    """x, w (and gy) of a convolution against its ConvGeometry."""
    check_array(op, "x", x, geometry.x_shape)
    if w.ndim == 4 and w.shape[1] * geometry.G != geometry.C:
        raise ValueError(f"{op}: input has {geometry.C} channels, weight expects {w.shape[1] * geometry.G} "
                         f"({w.shape[1]} per group x {geometry.G} groups)")
    check_array(op, "w", w, geometry.w_shape, x.dtype)
    if gy is not None:
        check_array(op, "gy", gy, geometry.y_shape)


def check_pool_arrays(op, geometry, x=None, gy=None, argmax=None):
    """The arrays of a pooling against its PoolGeometry; argmax values must index the
    input plane (check_index_range)."""
    if x is not None:
        check_array(op, "x", x, geometry.x_shape)
    if gy is not None:
        check_array(op, "gy", gy, geometry.y_shape)
    if argmax is not None:
        check_array(op, "argmax", argmax, geometry.y_shape)
        check_index_range(op, "argmax", argmax, geometry.H * geometry.W)
