"""GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015), the
PAPER version (its Table 1, as Caffe's bvlc_googlenet): true 5x5 convolutions in the
third branch, convolutions with bias and no batch norm, local response normalization
after the first pooling and after conv3, 3x3 max-pool branches, ceil-mode pooling,
dropout 0.4 before the classifier.

Deliberate differences from torchvision's ``googlenet`` (which has BN, no bias,
3x3 in place of 5x5, no LRN): the module names follow torchvision's (conv1.conv,
inception3a.branch2.1.conv, aux1.fc1, fc, ...), but a ``BasicConv2d`` here has no
``bn``, ``branch3.1`` is a 5x5 convolution, and the two LRNs are ``lrn1``/``lrn2``.
The final 7x7 average pooling is a global average pooling (the same at 224x224;
it lets smaller inputs through), and the aux heads pool to 4x4 adaptively
(torchvision's choice; the paper's 5x5/3 pooling gives the same 4x4 at 224).

Auxiliary classifiers (after 4a and 4d) exist when ``aux_logits=True`` (the
default) and run in training mode only, where ``forward`` returns
``(logits, aux1, aux2)``.  The reference count 6,998,552 is for
``googlenet(aux_logits=False)``; the two heads add 3,188,840 + 3,190,888 parameters.
"""
from __future__ import annotations

import math

from minidl import functional as F, nn

from .registry import register_model

# name: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) -- the paper's Table 1
_TABLE = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class BasicConv2d(nn.Module):
    """Conv2d + optional BatchNorm2d + ReLU, named ``conv``/``bn`` as torchvision's
    BasicConv2d.  ``bias`` defaults to "no BN" (a conv before BN needs none)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 batch_norm=False, bias=None, bn_eps=1e-5):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=(not batch_norm) if bias is None else bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps) if batch_norm else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            return self.bn(x, relu=True)  # BN and ReLU in one fused pass
        return self.relu(x)


def caffe_xavier_init_(model, conv_bias=0.0):
    """Caffe's "xavier" filler, U(+-sqrt(3 / fan_in)), on every conv and linear weight;
    conv biases ``conv_bias``, linear biases 0; BN gamma 1, beta 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = math.sqrt(3.0 / (m.weight.numel() // m.weight.shape[0]))
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.constant_(m.bias, conv_bias if isinstance(m, nn.Conv2d) else 0.0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Inception(nn.Module):
    """Four parallel branches concatenated: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 |
    3x3 max pool -> 1x1."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1),
                                     BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, 1))

    def forward(self, x):
        return F.concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """The paper's auxiliary classifier: average pooling to 4x4, 1x1 conv 128 + ReLU,
    fc 1024 + ReLU, dropout 0.7, fc to the classes."""

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.conv(self.pool(x)).flatten(1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """Initialization as Caffe's bvlc_googlenet: "xavier" weights (uniform,
    +-sqrt(3 / fan_in)), conv biases 0.2, classifier biases 0."""

    def __init__(self, num_classes=1000, aux_logits=True, dropout=0.4, aux_dropout=0.7):
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("3a", "3b"):
            setattr(self, "inception" + name, Inception(*_TABLE[name]))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("4a", "4b", "4c", "4d", "4e"):
            setattr(self, "inception" + name, Inception(*_TABLE[name]))
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("5a", "5b"):
            setattr(self, "inception" + name, Inception(*_TABLE[name]))
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, aux_dropout)
            self.aux2 = InceptionAux(528, num_classes, aux_dropout)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.GlobalAvgPool2d()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        caffe_xavier_init_(self, conv_bias=0.2)

    def forward(self, x):
        x = self.lrn1(self.maxpool1(self.conv1(x)))
        x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(self.avgpool(x)))
        if aux1 is not None:
            return logits, aux1, aux2
        return logits


@register_model(params=6_998_552, gmacs=1.583, input_size=224, year=2014, top1=69.778, top5=89.93,
                paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015 (paper version; "
                      "params without the aux heads, i.e. googlenet(aux_logits=False); top-5: the "
                      "paper's 1-model 1-crop error 10.07%; the paper gives no top-1, so top-1 is "
                      "torchvision's published single-crop for its BN variant)",
                test_size=64, recipe="googlenet", aux_weight=0.3)
def googlenet(num_classes=1000, **kwargs):
    return GoogLeNet(num_classes=num_classes, **kwargs)
