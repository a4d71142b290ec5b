"""ResNet (He et al. 2015) and ResNeXt (Xie et al. 2016), torchvision's layout.

ResNet-50/101/152 are "v1.5": the stride-2 of a downsampling bottleneck sits in
its 3x3 convolution (the paper puts it in the first 1x1), as in torchvision.
ResNeXt replaces the bottleneck's 3x3 by a grouped convolution of
``groups x width_per_group`` channels.  Parameter names are torchvision's
(conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ..., fc), so a torchvision
state dict loads without renames.

Initialization (torchvision): Kaiming normal fan_out for convolutions, BN
gamma 1 / beta 0; ``zero_init_residual=True`` zeroes the last BN gamma of every
residual branch so that each block starts as the identity (Goyal et al. 2017).
"""
from __future__ import annotations

from minidl import functional as F, nn

from .layers import StochasticDepth, init_conv_bn_linear
from .registry import register_model

# name -> (block, blocks per stage, groups, width_per_group)
RESNET_CONFIGS = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), 32, 8),
    "resnext101_64x4d": ("bottleneck", (3, 4, 23, 3), 64, 4),
}


def _downsample(in_channels, out_channels, stride):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34)."""
    expansion = 1

    def __init__(self, in_channels, planes, stride=1, groups=1, width_per_group=64, drop_path=0.0):
        super().__init__()
        if groups != 1 or width_per_group != 64:
            raise ValueError("BasicBlock: expected groups=1 and width_per_group=64, got "
                             f"groups={groups}, width_per_group={width_per_group}")
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()  # torchvision's module tree; forward fuses it into bn/add_relu
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        out = planes * self.expansion
        self.downsample = _downsample(in_channels, out, stride) \
            if stride != 1 or in_channels != out else None
        self.drop_path = StochasticDepth(drop_path) if drop_path else None

    def last_bn(self):
        return self.bn2

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.bn1(self.conv1(x), relu=True)
        y = self.bn2(self.conv2(y))
        return F.add_relu(_dropped(self, y), identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt, carries the stride: v1.5), 1x1 expand x4."""
    expansion = 4

    def __init__(self, in_channels, planes, stride=1, groups=1, width_per_group=64, drop_path=0.0):
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()  # torchvision's module tree; forward fuses it into bn/add_relu
        self.downsample = _downsample(in_channels, out, stride) \
            if stride != 1 or in_channels != out else None
        self.drop_path = StochasticDepth(drop_path) if drop_path else None

    def last_bn(self):
        return self.bn3

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.bn1(self.conv1(x), relu=True)
        y = self.bn2(self.conv2(y), relu=True)
        y = self.bn3(self.conv3(y))
        return F.add_relu(_dropped(self, y), identity)


def _dropped(block, y):
    """The residual branch through the block's stochastic depth, where it has one."""
    return y if block.drop_path is None else block.drop_path(y)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """7x7/2 stem + 3x3/2 max pool, four stages (64, 128, 256, 512 planes), global
    average pool and one fully connected layer."""

    def __init__(self, block, layers, num_classes=1000, groups=1, width_per_group=64,
                 zero_init_residual=False, dropout=0.0, stochastic_depth_prob=0.0):
        """``dropout`` before the classifier and ``stochastic_depth_prob`` (timm's drop_rate
        and drop_path_rate, default off as in the paper): block k of n drops its residual
        branch with probability stochastic_depth_prob * k / (n - 1), as timm's ResNet."""
        super().__init__()
        block = _BLOCKS[block] if isinstance(block, str) else block
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()  # torchvision's module tree; forward fuses it into bn/add_relu
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels, index, total = 64, 0, sum(layers)
        for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stride = 1 if stage == 1 else 2
            stage_blocks = []
            for i in range(blocks):
                drop = stochastic_depth_prob * index / max(1, total - 1)
                stage_blocks.append(block(in_channels, planes, stride if i == 0 else 1,
                                          groups, width_per_group, drop))
                in_channels, index = planes * block.expansion, index + 1
            setattr(self, f"layer{stage}", nn.Sequential(*stage_blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual):
        init_conv_bn_linear(self, linear_std=None)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward(self, x):
        x = self.maxpool(self.bn1(self.conv1(x), relu=True))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).reshape(x.shape[0], x.shape[1])
        return self.fc(x if self.dropout is None else self.dropout(x))


def _build(name, num_classes, **kwargs):
    block, layers, groups, width = RESNET_CONFIGS[name]
    return ResNet(block, layers, num_classes=num_classes, groups=groups, width_per_group=width,
                  **kwargs)


_TV = "torchvision IMAGENET1K_V1 single-crop accuracy"


@register_model(params=11_689_512, gmacs=1.814, input_size=224, year=2015, top1=69.758,
                recipe="resnet",
                top5=89.078, paper=f"He et al., Deep Residual Learning (2015); {_TV}", test_size=64)
def resnet18(num_classes=1000, **kwargs):
    return _build("resnet18", num_classes, **kwargs)


@register_model(params=21_797_672, gmacs=3.664, input_size=224, year=2015, top1=73.314,
                recipe="resnet",
                top5=91.420, paper=f"He et al., Deep Residual Learning (2015); {_TV}", test_size=64)
def resnet34(num_classes=1000, **kwargs):
    return _build("resnet34", num_classes, **kwargs)


@register_model(params=25_557_032, gmacs=4.089, input_size=224, year=2015, top1=76.130,
                top5=92.862, paper=f"He et al., Deep Residual Learning (2015), v1.5; {_TV}",
                test_size=64, recipe="resnet")
def resnet50(num_classes=1000, **kwargs):
    return _build("resnet50", num_classes, **kwargs)


@register_model(params=44_549_160, gmacs=7.801, input_size=224, year=2015, top1=78.25,
                top5=93.95, recipe="resnet",
                paper="He et al., Deep Residual Learning (2015), v1.5; accuracy from the survey's "
                      "table (models/README.md)", test_size=64)
def resnet101(num_classes=1000, **kwargs):
    return _build("resnet101", num_classes, **kwargs)


@register_model(params=60_192_808, gmacs=11.514, input_size=224, year=2015, top1=78.312,
                top5=94.046, paper=f"He et al., Deep Residual Learning (2015), v1.5; {_TV}",
                test_size=64, recipe="resnet")
def resnet152(num_classes=1000, **kwargs):
    return _build("resnet152", num_classes, **kwargs)


@register_model(params=25_028_904, gmacs=4.230, input_size=224, year=2016, top1=77.618,
                top5=93.698, paper=f"Xie et al., Aggregated Residual Transformations (ResNeXt, "
                                   f"2016); {_TV}", test_size=64, recipe="resnext")
def resnext50_32x4d(num_classes=1000, **kwargs):
    return _build("resnext50_32x4d", num_classes, **kwargs)


@register_model(params=88_791_336, gmacs=16.414, input_size=224, year=2016, top1=79.312,
                top5=94.526, paper=f"Xie et al., Aggregated Residual Transformations (ResNeXt, "
                                   f"2016); {_TV}", test_size=64, recipe="resnext")
def resnext101_32x8d(num_classes=1000, **kwargs):
    return _build("resnext101_32x8d", num_classes, **kwargs)


@register_model(params=83_455_272, gmacs=15.460, input_size=224, year=2016, top1=79.6, top5=94.7,
                recipe="resnext",
                paper="Xie et al., Aggregated Residual Transformations (ResNeXt, 2016); accuracy "
                      "from the paper's Table 5 (224x224 single crop, 20.4/5.3 error)", test_size=64)
def resnext101_64x4d(num_classes=1000, **kwargs):
    return _build("resnext101_64x4d", num_classes, **kwargs)
