"""Checks of the user's convolution and pooling arguments, and the geometry built
from them once per call (minidl.backend.geometry).

``pair`` is the one reading of an int-or-pair argument (kernel_size, stride, ...);
nn layers use it too.  A bool is never an int here: ``stride=True`` is a TypeError.
"""
from __future__ import annotations

from ..backend.geometry import ConvGeometry, PoolGeometry


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def pair(value, name, op):
    """An int or a pair of ints -> (h, w); anything else is a TypeError naming ``op``."""
    if _is_int(value):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{op}: expected {name} to be an int or a pair of ints, got {value!r}")


def positive_pair(value, name, op):
    out = pair(value, name, op)
    if min(out) < 1:
        raise ValueError(f"{op}: expected a positive {name}, got {out}")
    return out


def _same_padding(size, kernel, stride, dilation):
    """TF 'SAME': out = ceil(size / stride); the odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv_padding(padding, op="conv2d"):
    """An int, (ph, pw), (top, bottom, left, right), 'valid' or 'same' -> a 4-tuple of
    non-negative ints, or the string 'same' (which needs the input size)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            return "same"
        raise ValueError(f"{op}: padding string must be 'valid' or 'same', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4 and all(_is_int(p) for p in padding):
        pads = tuple(padding)
    else:
        try:
            ph, pw = pair(padding, "padding", op)
        except TypeError:
            raise TypeError(f"{op}: padding must be an int, (ph, pw), (top, bottom, left, right), "
                            f"'valid' or 'same', got {padding!r}") from None
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    return pads


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, op="conv2d"):
    """The checked ConvGeometry of x (N, C, H, W) * weight (O, C/groups, KH, KW)."""
    stride = positive_pair(stride, "stride", op)
    dilation = positive_pair(dilation, "dilation", op)
    pads = conv_padding(padding, op)
    if pads == "same":
        pads = (_same_padding(x_shape[2], w_shape[2], stride[0], dilation[0])
                + _same_padding(x_shape[3], w_shape[3], stride[1], dilation[1]))
    geometry = ConvGeometry.create(x_shape, w_shape, stride, pads, dilation, groups)
    if geometry.HO < 1 or geometry.WO < 1:
        g = geometry
        raise ValueError(
            f"{op}: output would be empty: input size {g.H}x{g.W} padded to {g.H + g.pt + g.pb}x"
            f"{g.W + g.pl + g.pr} is smaller than the kernel {g.KH}x{g.KW} (dilated to "
            f"{g.dh * (g.KH - 1) + 1}x{g.dw * (g.KW - 1) + 1})")
    return geometry


def pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode, op):
    """The checked PoolGeometry of a max/avg pooling of x (N, C, H, W); ``stride``
    None means the kernel size, padding is at most half the kernel (PyTorch)."""
    kernel = positive_pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else positive_pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    if min(padding) < 0:
        raise ValueError(f"{op}: expected non-negative padding, got {padding}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding must be at most half the kernel size, got padding {padding} "
            f"for kernel_size {kernel}")
    geometry = PoolGeometry.create(x_shape, kernel, stride, padding, ceil_mode)
    if min(geometry.OH, geometry.OW) < 1:
        raise ValueError(
            f"{op}: input size {tuple(x_shape[2:])} is too small for kernel_size {kernel}, stride "
            f"{stride}, padding {padding}: the output size would be {(geometry.OH, geometry.OW)}")
    return geometry
