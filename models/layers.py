"""Small blocks shared by the model families.

``ConvBNAct`` follows torchvision's ``Conv2dNormActivation`` (a Sequential whose
children are named 0 = conv, 1 = bn, 2 = activation), so that state-dict names
such as ``features.0.0.weight`` / ``features.0.1.running_mean`` line up.
``SqueezeExcite`` follows torchvision's ``SqueezeExcitation`` (``fc1``/``fc2``
1x1 convolutions with bias).  ``drop_path`` / ``StochasticDepth`` implement
per-sample stochastic depth (torchvision's ``StochasticDepth(p, "row")``).
"""
from __future__ import annotations

from minidl import functional as F
from minidl import nn
from minidl.random import generator
from minidl.tensor import Tensor


def make_divisible(value, divisor=8, min_value=None):
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``),
    never going more than 10% below ``value`` (the MobileNet/EfficientNet rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias, 'same'-style symmetric padding) + BatchNorm2d + activation.

    ``activation`` is a Module class (e.g. ``nn.ReLU``) or None for conv + BN only.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1,
                 activation=nn.ReLU, bn_eps=1e-5, bn_momentum=0.1, dilation=1):
        padding = (kernel_size - 1) // 2 * dilation
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                            dilation=dilation, groups=groups, bias=False),
                  nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.out_channels = out_channels

    def forward(self, x):
        if len(self) == 3 and type(self[2]) is nn.ReLU:  # BN and ReLU in one fused pass
            return self[1](self[0](x), relu=True)
        return super().forward(x)


class SqueezeExcite(nn.Module):
    """Channel attention: x * sigmoid(fc2(act(fc1(mean_hw(x)))))."""

    def __init__(self, channels, squeeze_channels, activation=nn.ReLU):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        scale = F.global_avg_pool2d(x)  # (N, C, 1, 1)
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))
        return x * scale


def drop_path(x, p, training):
    """Stochastic depth, per sample: zero a whole residual branch with probability ``p``
    and scale the survivors by 1/(1-p).  Identity in eval mode or when p == 0.
    The mask comes from ``minidl.random`` so ``manual_seed`` reproduces it."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"drop_path: expected a probability p in [0, 1), got {p!r}")
    if not training or p == 0.0:
        return x
    be = x.backend
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    u = be.uniform(generator(x.device), 0.0, 1.0, shape, x.dtype)
    keep_scale = be.astype(be.where(be.less(u, p), 0.0, 1.0 / (1.0 - p)), x.dtype)
    return x * Tensor._wrap(keep_scale, x.device)


class StochasticDepth(nn.Module):
    """Module form of ``drop_path`` (torchvision ``StochasticDepth(p, mode="row")``)."""

    def __init__(self, p):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        return drop_path(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def init_conv_bn_linear(model, conv_mode="fan_out", linear_std=0.01):
    """torchvision's init of ResNet/MobileNet-style models: Kaiming-normal convs (bias 0),
    BN gamma 1 / beta 0, Linear N(0, linear_std) with bias 0 (``linear_std=None`` keeps
    the Linear layers' default init, as torchvision's ResNet does)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
