"""Xception (Chollet 2016): entry flow, middle flow (8 x 3 separable convs), exit flow.

The layout is the Keras/timm ``legacy_xception`` one (Cadene's port of the Keras
weights), which has exactly the published 22,855,952 parameters: the two stem
convolutions are unpadded, a separable convolution is a depthwise 3x3 followed by
a pointwise 1x1 (both without bias) and then BN, and a block whose shape changes
has a 1x1 strided convolution + BN on its shortcut.  Parameter names follow that
port (conv1, bn1, block1.rep.N.conv1/pointwise, block1.skip, block1.skipbn, ...,
conv4, bn4, fc); torchvision has no Xception.

Initialization (as in that port): convolutions N(0, 2/(k*k*out_channels)) (Kaiming
fan_out), BN gamma 1 / beta 0, the classifier keeps the Linear default.
"""
from __future__ import annotations

from minidl import nn

from .layers import init_conv_bn_linear
from .registry import register_model

# entry, middle and exit flow: (in, out, separable convs, stride, relu first, grow first)
XCEPTION_BLOCKS = (
    (64, 128, 2, 2, False, True),
    (128, 256, 2, 2, True, True),
    (256, 728, 2, 2, True, True),
    *((728, 728, 3, 1, True, True),) * 8,
    (728, 1024, 2, 2, True, False),
)


class SeparableConv2d(nn.Module):
    """Depthwise k x k (one filter per channel) then pointwise 1x1, no bias."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding,
                               groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class XceptionBlock(nn.Module):
    """``reps`` x (ReLU, SeparableConv, BN), then a 3x3 max pool for stride 2; the
    shortcut is the identity or a strided 1x1 conv + BN."""

    def __init__(self, in_channels, out_channels, reps, stride=1, start_with_relu=True,
                 grow_first=True):
        super().__init__()
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        else:
            self.skip = None
        # channel plan of the separable convs: grow in the first one or in the last one
        widths = [out_channels if grow_first or i == reps - 1 else in_channels
                  for i in range(reps)]
        rep, channels = [], in_channels
        for width in widths:
            rep += [nn.ReLU(), SeparableConv2d(channels, width), nn.BatchNorm2d(width)]
            channels = width
        if not start_with_relu:
            rep = rep[1:]
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride=stride, padding=1))
        self.rep = nn.Sequential(*rep)

    def forward(self, x):
        identity = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + identity


class Xception(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        for i, spec in enumerate(XCEPTION_BLOCKS, start=1):
            setattr(self, f"block{i}", XceptionBlock(*spec))
        self.num_blocks = len(XCEPTION_BLOCKS)
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)
        init_conv_bn_linear(self, linear_std=None)

    def forward(self, x):
        x = self.bn1(self.conv1(x), relu=True)  # BN and ReLU as one fused pass
        x = self.bn2(self.conv2(x), relu=True)
        for i in range(1, self.num_blocks + 1):
            x = getattr(self, f"block{i}")(x)
        x = self.bn3(self.conv3(x), relu=True)
        x = self.bn4(self.conv4(x), relu=True)
        x = self.avgpool(x)
        return self.fc(x.reshape(x.shape[0], x.shape[1]))


@register_model(params=22_855_952, gmacs=8.357, input_size=299, year=2016, top1=79.0, top5=94.5,
                recipe="xception", eval_resize=333,
                paper="Chollet, Xception: Deep Learning with Depthwise Separable Convolutions "
                      "(2016); accuracy from the paper's Table 1 (single crop)", test_size=64)
def xception(num_classes=1000):
    return Xception(num_classes=num_classes)
