"""MobileNet v1 (Howard et al. 2017) and MobileNet v2 (Sandler et al. 2018).

v1: a 3x3/2 stem and 13 depthwise-separable blocks (depthwise 3x3 + BN + ReLU,
pointwise 1x1 + BN + ReLU), global average pool and one fully connected layer.
Two hyper-parameters from the paper:

* ``alpha`` (width multiplier) thins every layer: channels = int(c * alpha), as
  in Keras' implementation (alpha in {1, 0.75, 0.5, 0.25} gives whole numbers).
* ``rho`` (resolution multiplier) only changes the input the network is fed:
  the network is fully convolutional up to the global pool, so any size works.
  The caller chooses the input size; ``round(224 * rho)`` is recorded as
  ``model.default_input_size`` (rho in {1, 6/7, 5/7, 4/7} gives 224/192/160/128).

torchvision has no MobileNet v1; its names here are ``features.0`` (stem
ConvBNAct), ``features.N.dw`` / ``features.N.pw`` (ConvBNAct: .0 conv, .1 bn)
and ``classifier``.

v2: torchvision's layout and names (features.0 stem, features.1-17 inverted
residuals with ``.conv``, features.18 1x1 to 1280, classifier = Dropout(0.2) +
Linear); ``width_mult`` scales channels rounded to multiples of 8, the last
channel is 1280 * max(1, width_mult).

Initialization (torchvision's MobileNet v2, used for both): Kaiming normal fan_out
convolutions, BN gamma 1 / beta 0, Linear N(0, 0.01) with bias 0.
"""
from __future__ import annotations

from minidl import functional as F
from minidl import nn

from .layers import ConvBNAct, StochasticDepth, init_conv_bn_linear, make_divisible
from .registry import register_model

# v1 depthwise-separable blocks after the 32-channel stem: (out channels, stride)
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       *((512, 1),) * 5, (1024, 2), (1024, 1))

# v2 inverted residual stages: (expansion t, out channels c, repeats n, first stride s)
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_channels, out_channels, stride, activation=nn.ReLU):
        super().__init__()
        self.dw = ConvBNAct(in_channels, in_channels, 3, stride=stride, groups=in_channels, activation=activation)
        self.pw = ConvBNAct(in_channels, out_channels, 1, activation=activation)

    def forward(self, x):
        return self.pw(self.dw(x))


V1_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


class MobileNetV1(nn.Module):
    def __init__(self, num_classes=1000, alpha=1.0, rho=1.0, dropout=0.0, activation="relu"):
        super().__init__()
        if alpha <= 0 or rho <= 0:
            raise ValueError(f"MobileNetV1: expected positive alpha and rho, got alpha={alpha}, "
                             f"rho={rho}")
        if activation not in V1_ACTIVATIONS:
            raise ValueError(f"MobileNetV1: expected activation 'relu' (the paper) or 'relu6' (TF-slim's "
                             f"and timm's weights), got {activation!r}")
        act = V1_ACTIVATIONS[activation]
        self.alpha, self.rho = float(alpha), float(rho)
        self.default_input_size = int(round(224 * rho))
        width = lambda c: max(1, int(c * alpha))  # noqa: E731
        channels = width(32)
        layers = [ConvBNAct(3, channels, 3, stride=2, activation=act)]
        for out, stride in MOBILENET_V1_BLOCKS:
            layers.append(DepthwiseSeparable(channels, width(out), stride, act))
            channels = width(out)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        init_conv_bn_linear(self)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(self.dropout(x.reshape(x.shape[0], x.shape[1])))


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) - 3x3 depthwise (ReLU6) - 1x1 linear projection; identity
    shortcut when the shape is kept."""

    def __init__(self, in_channels, out_channels, stride, expand_ratio, drop_path=0.0):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.drop_path = StochasticDepth(drop_path) if drop_path and self.use_res_connect else None
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation=nn.ReLU6))
        layers += [ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden, activation=nn.ReLU6),
                   nn.Conv2d(hidden, out_channels, 1, bias=False),
                   nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x):
        y = self.conv(x)
        if not self.use_res_connect:
            return y
        return x + (y if self.drop_path is None else self.drop_path(y))


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2,
                 stochastic_depth_prob=0.0):
        """``stochastic_depth_prob`` (timm's drop_path_rate, off by default as in the paper):
        inverted-residual block k of n drops its branch with probability p * k / n, as
        timm's EfficientNet builder (blocks without a shortcut keep theirs)."""
        super().__init__()
        channels = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers = [ConvBNAct(3, channels, 3, stride=2, activation=nn.ReLU6)]
        index, total = 0, sum(n for _, _, n, _ in MOBILENET_V2_STAGES)
        for t, c, n, s in MOBILENET_V2_STAGES:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t,
                                               stochastic_depth_prob * index / total))
                channels, index = out, index + 1
        layers.append(ConvBNAct(channels, self.last_channel, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        init_conv_bn_linear(self)

    def forward(self, x):
        x = F.global_avg_pool2d(self.features(x))
        return self.classifier(x.reshape(x.shape[0], x.shape[1]))


@register_model(params=4_231_976, gmacs=0.569, input_size=224, year=2017, top1=70.9, top5=89.9,
                recipe="mobilenet_v1",
                paper="Howard et al., MobileNets (2017); accuracy of TF-slim's published "
                      "MobileNet_v1_1.0_224 (the paper gives 70.6 top-1 only)", test_size=64)
def mobilenet_v1(num_classes=1000, alpha=1.0, rho=1.0, **kwargs):
    """``alpha``: width multiplier; ``rho``: resolution multiplier (feed inputs of
    ``model.default_input_size`` = round(224 * rho)); ``activation``: "relu" as in the
    paper, or "relu6" as TF-slim's and timm's implementations (use it with their weights)."""
    return MobileNetV1(num_classes=num_classes, alpha=alpha, rho=rho, **kwargs)


@register_model(params=3_504_872, gmacs=0.301, input_size=224, year=2018, top1=71.878, top5=90.286,
                paper="Sandler et al., MobileNetV2 (2018); torchvision IMAGENET1K_V1 single-crop "
                      "accuracy", test_size=64, recipe="mobilenet_v2")
def mobilenet_v2(num_classes=1000, width_mult=1.0, **kwargs):
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, **kwargs)
