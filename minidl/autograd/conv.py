"""Convolution and fully connected layers: ``conv2d`` and ``linear``.

The convolution itself is a backend kernel (im2col + GEMM on the CPU); the bias
is added by the backend's ``bias_add`` (a fused kernel on cuda/emu), and its
gradient, the sum of the output gradient over batch and space, by
``bias_add_backward``.
"""
from __future__ import annotations

from .function import Function


class Conv2d(Function):
    """x (N, C, H, W), weight (O, C // groups, KH, KW), optional bias (O,).
    Attributes: stride, dilation (pairs), padding (top, bottom, left, right), groups."""

    def forward(self, x, weight, bias=None):
        be = self.backend
        self.save_for_backward(x, weight)
        y = be.conv2d_forward(x, weight, self.stride, self.padding, self.dilation, self.groups)
        if bias is not None:
            y = be.bias_add(y, bias)
        return y

    def backward(self, gy):
        be = self.backend
        x, weight = self.saved
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        dx = dw = db = None
        if need_dx or need_dw:
            dx, dw = be.conv2d_backward(x, weight, gy, self.stride, self.padding, self.dilation,
                                        self.groups, need_dx=need_dx, need_dw=need_dw)
        if self.needs_input_grad[2]:
            db = be.bias_add_backward(gy)
        return dx, dw, db


class Linear(Function):
    """x (..., in_features) @ weight (out_features, in_features)^T + bias (out_features,)."""

    def forward(self, x, weight, bias=None):
        be = self.backend
        self.save_for_backward(x, weight)
        y = be.matmul(x, be.transpose(weight, (1, 0)))
        if bias is not None:
            y = be.add(y, bias)
        return y

    def backward(self, gy):
        be = self.backend
        x, weight = self.saved
        out_features, in_features = weight.shape
        dx = dw = db = None
        if self.needs_input_grad[0]:
            dx = be.matmul(gy, weight)
        if self.needs_input_grad[1]:
            gy2 = be.reshape(gy, (-1, out_features))
            dw = be.matmul(be.transpose(gy2, (1, 0)), be.reshape(x, (-1, in_features)))
        if self.needs_input_grad[2]:
            db = be.sum(be.reshape(gy, (-1, out_features)), axis=0)
        return dx, dw, db


# ---------------------------------------------------------------- argument checks
def _pair(value, name, op="conv2d"):
    if isinstance(value, int):
        pair = (value, value)
    else:
        pair = tuple(value)
        if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
            raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{op}: {name} must be positive, got {value!r}")
    return pair


def _same_padding(size, kernel, stride, dilation):
    """TF 'SAME': out = ceil(size / stride); the odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _conv_padding(padding, x_shape, w_shape, stride, dilation):
    """-> (top, bottom, left, right) from an int, (ph, pw), a 4-tuple, 'valid' or 'same'."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            return (_same_padding(x_shape[2], w_shape[2], stride[0], dilation[0])
                    + _same_padding(x_shape[3], w_shape[3], stride[1], dilation[1]))
        raise ValueError(f"conv2d: padding string must be 'valid' or 'same', got {padding!r}")
    if isinstance(padding, int):
        pads = (padding,) * 4
    else:
        pads = tuple(padding)
        if len(pads) == 2:
            pads = (pads[0], pads[0], pads[1], pads[1])
        if len(pads) != 4 or not all(isinstance(p, int) for p in pads):
            raise TypeError("conv2d: padding must be an int, (ph, pw), (top, bottom, left, right), "
                            f"'valid' or 'same', got {padding!r}")
    if any(p < 0 for p in pads):
        raise ValueError(f"conv2d: padding must be non-negative, got {padding!r}")
    return pads


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation as in PyTorch, NCHW.  ``padding`` is an int, (ph, pw),
    (top, bottom, left, right), "valid", or "same" (TF-style: out = ceil(in / stride),
    the extra pixel of padding on the bottom/right)."""
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected a 4-D weight (O, C // groups, KH, KW), got shape {tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if x.dtype != weight.dtype:
        raise TypeError(f"conv2d: input dtype {x.dtype} does not match weight dtype {weight.dtype}")
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if c % groups or o % groups:
        raise ValueError(f"conv2d: groups={groups} must divide both the input channels ({c}) "
                         f"and the output channels ({o})")
    if cg * groups != c:
        raise ValueError(f"conv2d: input has {c} channels but weight expects {cg * groups} "
                         f"(weight shape {tuple(weight.shape)})")
    if bias is not None:
        if tuple(bias.shape) != (o,):
            raise ValueError(f"conv2d: bias must have shape ({o},) to match the weight's {o} "
                             f"output channels, got {tuple(bias.shape)}")
        if bias.dtype != x.dtype:
            raise TypeError(f"conv2d: bias dtype {bias.dtype} does not match input dtype {x.dtype}")
    stride = _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    pads = _conv_padding(padding, x.shape, weight.shape, stride, dilation)
    span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    padded_h, padded_w = h + pads[0] + pads[1], w + pads[2] + pads[3]
    if padded_h < span_h or padded_w < span_w:
        raise ValueError(
            f"conv2d: output would be empty: input size {h}x{w} padded to {padded_h}x{padded_w} "
            f"is smaller than the kernel {kh}x{kw} (dilated to {span_h}x{span_w})")
    return Conv2d.apply(x, weight, bias, stride=stride, padding=pads, dilation=dilation,
                        groups=groups)


def linear(x, weight, bias=None):
    """y = x @ weight^T + bias, with weight (out_features, in_features) as in PyTorch."""
    if weight.ndim != 2:
        raise ValueError(
            f"linear: expected a 2-D weight (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim < 1:
        raise ValueError("linear: expected an input of shape (..., in_features), got a scalar")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input dtype {x.dtype} does not match weight dtype {weight.dtype}")
    out_features, in_features = weight.shape
    if x.shape[-1] != in_features:
        raise ValueError(f"linear: input has {x.shape[-1]} features but weight expects {in_features} "
                         f"(weight shape {tuple(weight.shape)})")
    if bias is not None:
        if tuple(bias.shape) != (out_features,):
            raise ValueError(f"linear: bias must have shape ({out_features},), got {tuple(bias.shape)}")
        if bias.dtype != x.dtype:
            raise TypeError(f"linear: bias dtype {bias.dtype} does not match input dtype {x.dtype}")
    return Linear.apply(x, weight, bias)
