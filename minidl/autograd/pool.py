"""Pooling: max, average, adaptive average and global average pooling (NCHW).

Arguments and output sizes follow PyTorch: ``stride`` defaults to the kernel,
padding is symmetric and at most half the kernel, and ``ceil_mode`` keeps a
last partial window only when it starts inside the input or its left padding.
"""
from __future__ import annotations

from .function import Function


class MaxPool2d(Function):
    def forward(self, x):
        self.x_shape = x.shape
        y, self.argmax = self.backend.max_pool2d_forward(
            x, self.kernel, self.stride, self.padding, self.ceil_mode)
        return y

    def backward(self, gy):
        return self.backend.max_pool2d_backward(
            gy, self.argmax, self.x_shape, self.kernel, self.stride, self.padding)


class AvgPool2d(Function):
    def forward(self, x):
        self.x_shape = x.shape
        return self.backend.avg_pool2d_forward(
            x, self.kernel, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def backward(self, gy):
        return self.backend.avg_pool2d_backward(
            gy, self.x_shape, self.kernel, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad)


class AdaptiveAvgPool2d(Function):
    def forward(self, x):
        self.x_shape = x.shape
        return self.backend.adaptive_avg_pool2d_forward(x, self.output_size)

    def backward(self, gy):
        return self.backend.adaptive_avg_pool2d_backward(gy, self.x_shape)


# ---------------------------------------------------------------- argument checks
def check_nchw_input(x, op):
    """A floating-point 4-D Tensor (N, C, H, W), or a TypeError/ValueError naming ``op``."""
    from ..tensor import Tensor
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")


def _pair(value, name, op):
    """An int or a pair of ints -> (h, w)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{op}: expected {name} to be an int or a pair of ints, got {value!r}")


def _pool_args(x, kernel_size, stride, padding, ceil_mode, op):
    """Validate pooling arguments -> (kernel, stride, padding) as (h, w) pairs."""
    check_nchw_input(x, op)
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    if min(kernel) < 1:
        raise ValueError(f"{op}: expected a positive kernel_size, got {kernel}")
    if min(stride) < 1:
        raise ValueError(f"{op}: expected a positive stride, got {stride}")
    if min(padding) < 0:
        raise ValueError(f"{op}: expected non-negative padding, got {padding}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding must be at most half the kernel size, got padding {padding} "
            f"for kernel_size {kernel}")
    size = x.backend.pool_output_size
    out = tuple(size(x.shape[2 + i], kernel[i], stride[i], padding[i], ceil_mode) for i in range(2))
    if min(out) < 1:
        raise ValueError(
            f"{op}: input size {x.shape[2:]} is too small for kernel_size {kernel}, stride "
            f"{stride}, padding {padding}: the output size would be {out}")
    return kernel, stride, padding


# ---------------------------------------------------------------- public functions
def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, ceil_mode, "max_pool2d")
    return MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding,
                           ceil_mode=bool(ceil_mode))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding, ceil_mode, "avg_pool2d")
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=padding,
                           ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad))


def adaptive_avg_pool2d(x, output_size):
    """``output_size`` is an int or an (h, w) pair; None in the pair keeps that input size."""
    op = "adaptive_avg_pool2d"
    check_nchw_input(x, op)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(output_size))
    else:
        size = output_size
    out = _pair(size, "output_size", op)
    if min(out) < 1:
        raise ValueError(f"{op}: expected a positive output_size, got {output_size!r}")
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{op}: expected a non-empty input plane, got shape {x.shape}")
    return AdaptiveAvgPool2d.apply(x, output_size=out)


def global_avg_pool2d(x):
    """Mean over H and W -> (N, C, 1, 1)."""
    check_nchw_input(x, "global_avg_pool2d")
    return AdaptiveAvgPool2d.apply(x, output_size=(1, 1))
