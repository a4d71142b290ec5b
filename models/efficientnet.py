"""EfficientNet B0-B7 (Tan & Le 2019), torchvision's layout and names.

All variants are derived from the B0 block table below and each variant's
(width, depth, resolution, dropout) coefficients: channels are scaled by the
width coefficient and rounded to a multiple of 8 (``make_divisible``), repeats
are scaled by the depth coefficient and rounded up.  A block is MBConv: 1x1
expand (SiLU/swish, skipped when the expansion is 1), depthwise k x k (SiLU),
squeeze-and-excitation to max(1, block input channels // 4), 1x1 linear
projection; the identity shortcut (stride 1, same channels) carries per-sample
stochastic depth whose rate grows linearly over the blocks,
``stochastic_depth_prob * block_index / total_blocks``.

Names: features.0 (stem ConvBNAct), features.1-7 (stages; features.S.M.block.K),
features.8 (1x1 head conv to 4 x the last stage's channels = 1280 x width),
classifier = Dropout + Linear.  B5-B7 use BN eps 1e-3 / momentum 0.01 as torchvision
does for its TF-ported weights (no effect on counts).

``efficientnet(phi)`` applies the paper's compound scaling to any phi:
depth = 1.2**phi, width = 1.1**phi, resolution = round(224 * 1.15**phi).  The
published B1-B7 were tuned by hand around that rule, so it is a separate,
unregistered constructor; it records its resolution as ``model.default_input_size``.

Initialization (torchvision): Kaiming normal fan_out convolutions, BN gamma 1 /
beta 0, Linear U(-1/sqrt(num_classes), 1/sqrt(num_classes)) with bias 0.
"""
from __future__ import annotations

import math

from minidl import functional as F
from minidl import nn

from .layers import ConvBNAct, SqueezeExcite, StochasticDepth, make_divisible
from .registry import register_model

# B0 stages: (expand ratio, kernel, first stride, in channels, out channels, repeats)
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

# variant -> (width, depth, resolution, dropout)
EFFICIENTNET_COEFFICIENTS = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
}

# compound scaling constants of the paper (alpha * beta^2 * gamma^2 ~= 2)
DEPTH_BASE, WIDTH_BASE, RESOLUTION_BASE = 1.2, 1.1, 1.15


class MBConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, expand_ratio,
                 stochastic_depth_prob, bn):
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = make_divisible(in_channels * expand_ratio, 8)
        layers = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, activation=nn.SiLU, **bn))
        layers += [ConvBNAct(expanded, expanded, kernel_size, stride=stride, groups=expanded,
                             activation=nn.SiLU, **bn),
                   SqueezeExcite(expanded, max(1, in_channels // 4), activation=nn.SiLU),
                   ConvBNAct(expanded, out_channels, 1, activation=None, **bn)]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.out_channels = out_channels

    def forward(self, x):
        y = self.block(x)
        return x + self.stochastic_depth(y) if self.use_res_connect else y


class EfficientNet(nn.Module):
    def __init__(self, width_mult, depth_mult, num_classes=1000, dropout=0.2,
                 stochastic_depth_prob=0.2, default_input_size=224, bn_eps=1e-5, bn_momentum=0.1):
        super().__init__()
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        self.default_input_size = default_input_size
        stages = [(t, k, s, make_divisible(cin * width_mult, 8), make_divisible(cout * width_mult, 8),
                   int(math.ceil(n * depth_mult)))
                  for t, k, s, cin, cout, n in EFFICIENTNET_B0_STAGES]
        total_blocks = sum(stage[-1] for stage in stages)
        layers = [ConvBNAct(3, stages[0][3], 3, stride=2, activation=nn.SiLU, **bn)]
        block_index = 0
        for t, k, s, cin, cout, n in stages:
            blocks = []
            for i in range(n):
                drop = stochastic_depth_prob * block_index / total_blocks
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, t, drop, bn))
                block_index += 1
            layers.append(nn.Sequential(*blocks))
        head_channels = 4 * stages[-1][4]
        layers.append(ConvBNAct(stages[-1][4], head_channels, 1, activation=nn.SiLU, **bn))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, num_classes))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.global_avg_pool2d(self.features(x))
        return self.classifier(x.reshape(x.shape[0], x.shape[1]))


def _build(name, num_classes, **kwargs):
    width, depth, resolution, dropout = EFFICIENTNET_COEFFICIENTS[name]
    if name in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7"):
        kwargs = {"bn_eps": 1e-3, "bn_momentum": 0.01, **kwargs}
    kwargs.setdefault("dropout", dropout)
    return EfficientNet(width, depth, num_classes=num_classes, default_input_size=resolution,
                        **kwargs)


def efficientnet(phi, num_classes=1000, **kwargs):
    """EfficientNet scaled from B0 by the compound coefficient ``phi`` (the paper's
    rule: depth 1.2**phi, width 1.1**phi, input round(224 * 1.15**phi)); not one of
    the published, hand-tuned B1-B7."""
    if phi < 0:
        raise ValueError(f"efficientnet: expected a compound coefficient phi >= 0, got {phi!r}")
    return EfficientNet(WIDTH_BASE ** phi, DEPTH_BASE ** phi, num_classes=num_classes,
                        default_input_size=int(round(224 * RESOLUTION_BASE ** phi)), **kwargs)


_PAPER = "Tan & Le, EfficientNet (2019)"
_ACC = "accuracy from the paper's Table 2 (single crop)"


@register_model(params=5_288_548, gmacs=0.386, input_size=224, year=2019, top1=77.1, top5=93.3,
                paper=f"{_PAPER}; {_ACC}", test_size=64, recipe="efficientnet", eval_resize=256)
def efficientnet_b0(num_classes=1000, **kwargs):
    return _build("efficientnet_b0", num_classes, **kwargs)


@register_model(params=7_794_184, gmacs=0.687, input_size=240, year=2019, top1=79.1, top5=94.4,
                paper=f"{_PAPER}; {_ACC}", test_size=64, recipe="efficientnet", eval_resize=274)
def efficientnet_b1(num_classes=1000, **kwargs):
    return _build("efficientnet_b1", num_classes, **kwargs)


@register_model(params=9_109_994, gmacs=0.994, input_size=260, year=2019, top1=80.1, top5=94.9,
                paper=f"{_PAPER}; {_ACC}", test_size=64, recipe="efficientnet", eval_resize=298)
def efficientnet_b2(num_classes=1000, **kwargs):
    return _build("efficientnet_b2", num_classes, **kwargs)


@register_model(params=12_233_232, gmacs=1.827, input_size=300, year=2019, top1=81.6, top5=95.7,
                paper=f"{_PAPER}; {_ACC}", test_size=64, recipe="efficientnet", eval_resize=342)
def efficientnet_b3(num_classes=1000, **kwargs):
    return _build("efficientnet_b3", num_classes, **kwargs)


@register_model(params=19_341_616, gmacs=4.394, input_size=380, year=2019, top1=82.9, top5=96.4,
                paper=f"{_PAPER}; {_ACC}", test_size=64, recipe="efficientnet", eval_resize=434)
def efficientnet_b4(num_classes=1000, **kwargs):
    return _build("efficientnet_b4", num_classes, **kwargs)


@register_model(params=30_389_784, gmacs=10.266, input_size=456, year=2019, top1=83.6, top5=96.7,
                paper=f"{_PAPER}; {_ACC}", test_size=64, recipe="efficientnet", eval_resize=522)
def efficientnet_b5(num_classes=1000, **kwargs):
    return _build("efficientnet_b5", num_classes, **kwargs)


@register_model(params=43_040_704, gmacs=19.068, input_size=528, year=2019, top1=84.0, top5=96.8,
                paper=f"{_PAPER}; {_ACC}", test_size=64, recipe="efficientnet", eval_resize=604)
def efficientnet_b6(num_classes=1000, **kwargs):
    return _build("efficientnet_b6", num_classes, **kwargs)


@register_model(params=66_347_960, gmacs=37.746, input_size=600, year=2019, top1=84.4, top5=97.1,
                recipe="efficientnet", eval_resize=686,
                paper=f"{_PAPER}; accuracy from the survey's table (models/README.md)", test_size=64)
def efficientnet_b7(num_classes=1000, **kwargs):
    return _build("efficientnet_b7", num_classes, **kwargs)
