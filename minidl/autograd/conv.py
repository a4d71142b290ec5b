"""Convolution and fully connected layers: ``conv2d`` and ``linear``.

The convolution itself is a backend kernel (im2col + GEMM on the CPU); the bias
is added by the backend's ``bias_add`` (a fused kernel on cuda/emu), and its
gradient, the sum of the output gradient over batch and space, by
``bias_add_backward``.
"""
from __future__ import annotations

from .function import Function, autocast_inputs
from .geometry import conv_geometry


class Conv2d(Function):
    """x (N, C, H, W), weight (O, C // groups, KH, KW), optional bias (O,); attribute
    ``geometry``, the ConvGeometry that every backend reads, and ``relu``: the output
    is max(conv + bias, 0), in the convolution's epilogue where the backend has one
    (the tensor-core kernels); its backward masks gy by y > 0 first."""

    # the convolution's arguments, read by minidl.summary
    stride = property(lambda self: self.geometry.stride)
    padding = property(lambda self: self.geometry.padding)
    dilation = property(lambda self: self.geometry.dilation)

    fresh_grads = True  # (the backend contract: conv2d_backward and bias_add_backward return new arrays)

    relu = False

    def backend_ops(self, inputs):
        with_bias = len(inputs) > 2 and inputs[2] is not None
        return (("conv2d_forward", "conv2d_backward") + (("bias_add_backward",) if with_bias else ())
                + (("relu_backward",) if self.relu else ()))

    def forward(self, x, weight, bias=None):
        be = self.backend
        y = be.conv2d_forward(x, weight, self.geometry, bias, relu=self.relu)
        self.save_for_backward(x, weight, *((y,) if self.relu else ()))
        return y

    def backward(self, gy):
        be = self.backend
        x, weight = self.saved[:2]
        if self.relu:
            gy = be.relu_backward(self.saved[2], gy)  # y > 0 exactly where conv + bias > 0
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        dx = dw = db = None
        if need_dx or need_dw:
            dx, dw = be.conv2d_backward(x, weight, gy, self.geometry, need_dx=need_dx, need_dw=need_dw)
        if self.needs_input_grad[2]:
            db = be.bias_add_backward(gy)
        return dx, dw, db


class Linear(Function):
    """x (..., in_features) @ weight (out_features, in_features)^T + bias (out_features,)."""

    fresh_grads = True  # (matmul and sum make new arrays)

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


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu=False):
    """2-D cross-correlation as in PyTorch, NCHW.  ``padding`` is an int, (ph, pw),
    (top, bottom, left, right), "valid", or "same" (TF-style: out = ceil(in / stride),
    the extra pixel of padding on the bottom/right).  ``relu``: max(., 0) of the result
    in the same op (the tensor-core kernels' epilogue; one pass less on the others)."""
    x, weight, bias = autocast_inputs("conv2d", (x, weight, bias))
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected a 4-D weight (O, C // groups, KH, KW), got shape {tuple(weight.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"conv2d: groups must be a positive int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if x.dtype != weight.dtype:
        raise TypeError(f"conv2d: input dtype {x.dtype} does not match weight dtype {weight.dtype}")
    c, (o, cg) = x.shape[1], weight.shape[:2]
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
    geometry = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    return Conv2d.apply(x, weight, bias, geometry=geometry, relu=bool(relu))


def linear(x, weight, bias=None):
    """y = x @ weight^T + bias, with weight (out_features, in_features) as in PyTorch."""
    x, weight, bias = autocast_inputs("linear", (x, weight, bias))
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
