"""Layers with PyTorch's names, arguments, defaults and initialization:
Linear, Conv2d, pooling, activations, Dropout, Flatten, Softmax, Concat,
Identity and CrossEntropyLoss.  Each ``forward`` is one call into
``minidl.functional``."""
from __future__ import annotations

import math

from .. import creation, functional as F
from ..autograd.geometry import pair
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter


def _positive_int(value, owner, what):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: expected {what} to be a positive int, got {value!r}")
    return value


class Identity(Module):
    """Returns its input (accepts and ignores any constructor arguments, like PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = _positive_int(in_features, "Linear", "in_features")
        self.out_features = _positive_int(out_features, "Linear", "out_features")
        self.weight = Parameter(creation.zeros(out_features, in_features))
        if bias:
            self.bias = Parameter(creation.zeros(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # PyTorch's default: kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)) for both
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution; weight (out_channels, in_channels // groups, KH, KW).

    ``padding`` is passed through to ``F.conv2d``: an int, a pair (h, w), a
    4-tuple (top, bottom, left, right) for asymmetric pads, or "same"/"valid".
    ``relu=True`` applies max(., 0) to the output in the same op (``nn.fuse_conv_relu``
    sets it on a Conv2d that a ReLU follows).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, relu=False):
        super().__init__()
        self.relu = bool(relu)
        self.in_channels = _positive_int(in_channels, "Conv2d", "in_channels")
        self.out_channels = _positive_int(out_channels, "Conv2d", "out_channels")
        self.groups = _positive_int(groups, "Conv2d", "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.dilation = pair(dilation, "dilation", "Conv2d")
        for what, v in (("kernel_size", self.kernel_size), ("stride", self.stride),
                        ("dilation", self.dilation)):
            if min(v) <= 0:
                raise ValueError(f"Conv2d: expected positive {what}, got {v}")
        self.padding = self._check_padding(padding)
        self.weight = Parameter(creation.zeros(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = Parameter(creation.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @staticmethod
    def _check_padding(padding):
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: expected padding 'same' or 'valid' as a string, got {padding!r}")
            return padding
        if isinstance(padding, (tuple, list)) and len(padding) == 4:
            pads = tuple(padding)
        else:
            pads = pair(padding, "padding (or a 4-tuple, 'same', 'valid')", "Conv2d")
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pads):
            raise ValueError(f"Conv2d: expected non-negative int padding, got {padding!r}")
        return pads

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups, relu=self.relu)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding not in ((0, 0), (0, 0, 0, 0)):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.relu:
            s += ", relu=True"
        return s


# ---------------------------------------------------------------- pooling
class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name)
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.padding) < 0:
            raise ValueError(f"{name}: expected positive kernel_size and stride and non-negative "
                             f"padding, got kernel_size={self.kernel_size}, stride={self.stride}, "
                             f"padding={self.padding}")
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding should be at most half the kernel size, got "
                             f"padding={self.padding} for kernel_size={self.kernel_size}")
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxPool2d(_Pool2d):
    """Max pooling; ``stride`` defaults to ``kernel_size``."""

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding,
                            ceil_mode=self.ceil_mode)


class AvgPool2d(_Pool2d):
    """Average pooling; ``count_include_pad`` counts zero padding in the divisor."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding,
                            ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)

    def extra_repr(self):
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size``: an int or a pair, where None in the
    pair keeps that input dimension."""

    def __init__(self, output_size):
        super().__init__()
        size = (output_size, output_size) if isinstance(output_size, int) else output_size
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(
                s is None or (isinstance(s, int) and not isinstance(s, bool) and s > 0) for s in size)):
            raise ValueError(f"AdaptiveAvgPool2d: expected output_size as a positive int or a pair of "
                             f"positive ints (or None), got {output_size!r}")
        self.output_size = tuple(size)

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with ``keepdim``."""

    def __init__(self, keepdim=False):
        super().__init__()
        self.keepdim = bool(keepdim)

    def forward(self, x):
        y = F.global_avg_pool2d(x)  # (N, C, 1, 1)
        return y if self.keepdim else y.reshape(y.shape[0], y.shape[1])

    def extra_repr(self):
        return f"keepdim={self.keepdim}"


# ---------------------------------------------------------------- activations
class _Activation(Module):
    # ``inplace`` is accepted so PyTorch model code ports unchanged; minidl never
    # overwrites an input, since autograd may still need it
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)


class ReLU(_Activation):
    def forward(self, x):
        return F.relu(x)


class ReLU6(_Activation):
    def forward(self, x):
        return F.relu6(x)


class Sigmoid(_Activation):
    def forward(self, x):
        return F.sigmoid(x)


class SiLU(_Activation):
    """x * sigmoid(x), also known as Swish."""

    def forward(self, x):
        return F.silu(x)


Swish = SiLU


class Tanh(_Activation):
    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


# ---------------------------------------------------------------- misc
class Dropout(Module):
    """Zeroes each element with probability ``p`` in training, scaling the rest by 1/(1-p)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: expected a probability p in [0, 1], got {p!r}")
        self.p = float(p)
        self.inplace = bool(inplace)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Concat(Module):
    """Concatenates a list of tensors along ``dim`` (Inception/DenseNet branches)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, *tensors):
        if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
            tensors = tensors[0]
        return F.concat(list(tensors), self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits (N, K) against integer labels (N,)."""

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"CrossEntropyLoss: expected reduction 'mean', 'sum' or 'none', got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: expected label_smoothing in [0, 1], got {label_smoothing!r}")
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, target):
        if not isinstance(target, Tensor):
            target = creation.tensor(target, device=logits.device)
        return F.cross_entropy(logits, target, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"
