"""Pooling: max, average, adaptive average and global average pooling (NCHW).

Arguments and output sizes follow PyTorch: ``stride`` defaults to the kernel,
padding is symmetric and at most half the kernel, and ``ceil_mode`` keeps a
last partial window only when it starts inside the input or its left padding.
"""
from __future__ import annotations

from ..backend.geometry import PoolGeometry
from ..dtypes import is_floating
from .function import Function
from .geometry import pair, pool_geometry


class MaxPool2d(Function):
    """Attribute ``geometry``: the PoolGeometry every backend reads."""

    backend_ops = ("max_pool2d_forward", "max_pool2d_backward")

    def forward(self, x):
        y, self.argmax = self.backend.max_pool2d_forward(x, self.geometry)
        return y

    def backward(self, gy):
        return self.backend.max_pool2d_backward(gy, self.argmax, self.geometry)


class AvgPool2d(Function):
    """Attributes ``geometry`` (a PoolGeometry) and ``count_include_pad``."""

    backend_ops = ("avg_pool2d_forward", "avg_pool2d_backward")

    def forward(self, x):
        return self.backend.avg_pool2d_forward(x, self.geometry, self.count_include_pad)

    def backward(self, gy):
        return self.backend.avg_pool2d_backward(gy, self.geometry, self.count_include_pad)


class AdaptiveAvgPool2d(Function):
    """Attribute ``geometry``: a PoolGeometry without a window (PoolGeometry.adaptive)."""

    backend_ops = ("adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward")

    def forward(self, x):
        return self.backend.adaptive_avg_pool2d_forward(x, self.geometry)

    def backward(self, gy):
        return self.backend.adaptive_avg_pool2d_backward(gy, self.geometry)


# ---------------------------------------------------------------- argument checks
def check_nchw_input(x, op):
    """A floating-point 4-D Tensor (N, C, H, W), or a TypeError/ValueError naming ``op``."""
    from ..tensor import Tensor
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")


# ---------------------------------------------------------------- public functions
def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    op = "max_pool2d"
    check_nchw_input(x, op)
    geometry = pool_geometry(x.shape, kernel_size, stride, padding, bool(ceil_mode), op)
    return MaxPool2d.apply(x, geometry=geometry)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    op = "avg_pool2d"
    check_nchw_input(x, op)
    geometry = pool_geometry(x.shape, kernel_size, stride, padding, bool(ceil_mode), op)
    return AvgPool2d.apply(x, geometry=geometry, count_include_pad=bool(count_include_pad))


def adaptive_avg_pool2d(x, output_size):
    """``output_size`` is an int or an (h, w) pair; None in the pair keeps that input size."""
    op = "adaptive_avg_pool2d"
    check_nchw_input(x, op)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(output_size))
    else:
        size = output_size
    out = pair(size, "output_size", op)
    if min(out) < 1:
        raise ValueError(f"{op}: expected a positive output_size, got {output_size!r}")
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{op}: expected a non-empty input plane, got shape {x.shape}")
    return AdaptiveAvgPool2d.apply(x, geometry=PoolGeometry.adaptive(x.shape, out))


def global_avg_pool2d(x):
    """Mean over H and W -> (N, C, 1, 1)."""
    check_nchw_input(x, "global_avg_pool2d")
    return AdaptiveAvgPool2d.apply(x, geometry=PoolGeometry.adaptive(x.shape, (1, 1)))
