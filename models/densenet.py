"""DenseNet-BC (Huang et al. 2016), torchvision's layout.

Growth rate k=32, bottleneck width 4k (1x1 conv before each 3x3), compression
0.5 in the transitions, a 64-channel 7x7/2 stem.  Each dense layer receives the
concatenation of all earlier feature maps of its block.  Parameter names are
torchvision's: features.conv0/norm0, features.denseblock1.denselayer1.norm1/
conv1/norm2/conv2, features.transition1.norm/conv, features.norm5, classifier.
DenseNet-264 (blocks 6, 12, 64, 48) is from the paper; torchvision has no 264.

Initialization (torchvision): Kaiming normal (fan_in) convolutions, BN gamma 1 /
beta 0, classifier bias 0 (weight keeps the Linear default).
"""
from __future__ import annotations

from minidl import functional as F
from minidl import nn

from .registry import register_model

# name -> layers per dense block (growth rate 32, 64-channel stem, bottleneck 4)
DENSENET_CONFIGS = {
    "densenet121": (6, 12, 24, 16),
    "densenet169": (6, 12, 32, 32),
    "densenet201": (6, 12, 48, 32),
    "densenet264": (6, 12, 64, 48),
}


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bn_size*k) - BN-ReLU-conv3x3 (k) on the concatenated inputs."""

    def __init__(self, in_channels, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, features):
        x = F.concat(features, 1) if len(features) > 1 else features[0]
        # relu1/relu2 stay as torchvision's module tree; BN and ReLU run as one fused pass
        x = self.conv1(self.norm1(x, relu=True))
        x = self.conv2(self.norm2(x, relu=True))
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate > 0 else x


class DenseBlock(nn.Module):
    def __init__(self, num_layers, in_channels, growth_rate, bn_size, drop_rate):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate))

    def forward(self, x):
        features = [x]
        for layer in self.children():
            features.append(layer(features))
        return F.concat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) - 2x2/2 average pool between dense blocks."""

    def __init__(self, in_channels, out_channels):
        super().__init__({"norm": nn.BatchNorm2d(in_channels), "relu": nn.ReLU(),
                          "conv": nn.Conv2d(in_channels, out_channels, 1, bias=False),
                          "pool": nn.AvgPool2d(2, stride=2)})


class DenseNet(nn.Module):
    def __init__(self, block_config, num_classes=1000, growth_rate=32, num_init_features=64,
                 bn_size=4, drop_rate=0.0):
        super().__init__()
        features = {"conv0": nn.Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False),
                    "norm0": nn.BatchNorm2d(num_init_features), "relu0": nn.ReLU(),
                    "pool0": nn.MaxPool2d(3, stride=2, padding=1)}
        channels = num_init_features
        for i, num_layers in enumerate(block_config, start=1):
            features[f"denseblock{i}"] = DenseBlock(num_layers, channels, growth_rate, bn_size,
                                                    drop_rate)
            channels += num_layers * growth_rate
            if i != len(block_config):
                features[f"transition{i}"] = Transition(channels, channels // 2)
                channels //= 2
        features["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(features)
        self.classifier = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.features(x))
        x = F.global_avg_pool2d(x)
        return self.classifier(x.reshape(x.shape[0], x.shape[1]))


def _paper(extra):
    return f"Huang et al., Densely Connected Convolutional Networks (2016); {extra}"


_TV = "torchvision IMAGENET1K_V1 single-crop accuracy"


@register_model(params=7_978_856, gmacs=2.834, input_size=224, year=2016, top1=74.434, top5=91.972,
                paper=_paper(_TV), test_size=64, recipe="densenet")
def densenet121(num_classes=1000, **kwargs):
    return DenseNet(DENSENET_CONFIGS["densenet121"], num_classes=num_classes, **kwargs)


@register_model(params=14_149_480, gmacs=3.360, input_size=224, year=2016, top1=75.600, top5=92.806,
                paper=_paper(_TV), test_size=64, recipe="densenet")
def densenet169(num_classes=1000, **kwargs):
    return DenseNet(DENSENET_CONFIGS["densenet169"], num_classes=num_classes, **kwargs)


@register_model(params=20_013_928, gmacs=4.291, input_size=224, year=2016, top1=76.896, top5=93.370,
                paper=_paper(_TV), test_size=64, recipe="densenet")
def densenet201(num_classes=1000, **kwargs):
    return DenseNet(DENSENET_CONFIGS["densenet201"], num_classes=num_classes, **kwargs)


@register_model(params=33_337_704, gmacs=5.752, input_size=224, year=2016, top1=77.85, top5=93.88,
                paper=_paper("accuracy from the paper's Table 3 (single crop, 22.15/6.12 error)"),
                test_size=64, recipe="densenet")
def densenet264(num_classes=1000, **kwargs):
    return DenseNet(DENSENET_CONFIGS["densenet264"], num_classes=num_classes, **kwargs)
