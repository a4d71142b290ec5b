"""Inception-v2, i.e. BN-Inception (Ioffe & Szegedy, "Batch Normalization", ICML 2015):
GoogLeNet with batch normalization after every convolution (the convolutions keep
their bias, as in the Caffe bn-inception model), each 5x5 replaced by two 3x3
("double 3x3" branch), average-pool projections (max-pool in 5b), and the
stride-2 reductions 3c and 4e done inside the inception blocks (no 1x1 and no
projection branch; the max-pool branch passes its input through).  The stem is a
plain 7x7/2 convolution.  The table is the paper's Figure 5 as Caffe's
bn-inception prototxt implements it (4c/4d emit 608 channels, 4e 1056).

Not in torchvision; module names follow the Caffe layer names in Python form
(conv1, conv2_reduce, conv2, inception_3a.branch3x3dbl.1.bn, ...).  The final 7x7
average pooling is global (the same at 224x224), dropout is off by default (the
paper removed it).
"""
from __future__ import annotations

from minidl import functional as F, nn

from .googlenet import BasicConv2d, caffe_xavier_init_
from .registry import register_model

# name: (in, 1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool proj, stride)
# stride 2 marks a reduction block: no 1x1 and no pool projection.
_TABLE = {
    "3a": (192, 64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": (256, 64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": (320, 0, 128, 160, 64, 96, "max", 0, 2),
    "4a": (576, 224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": (576, 192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": (576, 160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": (608, 96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": (608, 0, 128, 192, 192, 256, "max", 0, 2),
    "5a": (1056, 352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": (1024, 352, 192, 320, 192, 224, "max", 128, 1),
}


def _conv(in_channels, out_channels, kernel_size, stride=1, padding=0):
    return BasicConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                       batch_norm=True, bias=True)


class InceptionV2Block(nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1), concatenated."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, dbl_red, dbl, pool, pool_proj, stride):
        super().__init__()
        self.branch1x1 = _conv(in_channels, ch1x1, 1) if ch1x1 else None
        self.branch3x3 = nn.Sequential(_conv(in_channels, ch3x3red, 1),
                                       _conv(ch3x3red, ch3x3, 3, stride=stride, padding=1))
        self.branch3x3dbl = nn.Sequential(_conv(in_channels, dbl_red, 1),
                                          _conv(dbl_red, dbl, 3, padding=1),
                                          _conv(dbl, dbl, 3, stride=stride, padding=1))
        pool_layer = (nn.MaxPool2d(3, stride=stride, padding=1 if stride == 1 else 0, ceil_mode=True)
                      if pool == "max" else nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True))
        layers = [pool_layer] + ([_conv(in_channels, pool_proj, 1)] if pool_proj else [])
        self.branch_pool = nn.Sequential(*layers)

    def forward(self, x):
        branches = [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        if self.branch1x1 is not None:
            branches.insert(0, self.branch1x1(x))
        return F.concat(branches, 1)


class InceptionV2(nn.Module):
    """Initialization: Caffe's "xavier" filler, biases 0, BN 1/0."""

    def __init__(self, num_classes=1000, dropout=0.0):
        super().__init__()
        self.conv1 = _conv(3, 64, 7, stride=2, padding=3)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_reduce = _conv(64, 64, 1)
        self.conv2 = _conv(64, 192, 3, padding=1)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.blocks = [f"inception_{name}" for name in _TABLE]
        for name in _TABLE:
            setattr(self, f"inception_{name}", InceptionV2Block(*_TABLE[name]))
        self.avgpool = nn.GlobalAvgPool2d()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        caffe_xavier_init_(self)

    def forward(self, x):
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(self.conv2_reduce(x)))
        for name in self.blocks:
            x = getattr(self, name)(x)
        return self.fc(self.dropout(self.avgpool(x)))


@register_model(params=11_295_240, gmacs=2.033, input_size=224, year=2015, top1=74.8, top5=None,
                paper="Ioffe & Szegedy, Batch Normalization, ICML 2015 (BN-Inception; top-1: the "
                      "paper's Figure 3, BN-x30 single crop; it gives no single-crop top-5)",
                test_size=64, recipe="inception_v2")
def inception_v2(num_classes=1000, **kwargs):
    return InceptionV2(num_classes=num_classes, **kwargs)
