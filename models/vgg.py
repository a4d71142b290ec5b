"""VGG (Simonyan & Zisserman, ICLR 2015), configurations D (VGG-16) and E (VGG-19),
with and without batch normalization, in torchvision's layout and module names
(features.N, avgpool, classifier.N).

The adaptive 7x7 average pool before the classifier is torchvision's addition:
at 224x224 it is the identity, and it lets smaller inputs through (tests).
"""
from __future__ import annotations

from minidl import nn

from .registry import register_model

# the paper's Table 1: output channels of the 3x3 convolutions, "M" = 2x2/2 max pool
CONFIGS = {
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_features(config, batch_norm=False):
    layers, in_channels = [], 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Initialization as torchvision: Kaiming-normal (fan_out) convs, BN 1/0,
    Linear N(0, 0.01), all biases 0."""

    def __init__(self, config, batch_norm=False, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = make_features(CONFIGS[config] if isinstance(config, str) else config,
                                      batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


_PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015"


@register_model(params=138_357_544, gmacs=15.470, input_size=224, year=2014, top1=74.4, top5=91.9,
                recipe="vgg",
                paper=_PAPER + ", config D (top-1/top-5: the survey's table, models/README.md)", test_size=32)
def vgg16(num_classes=1000, **kwargs):
    return VGG("D", num_classes=num_classes, **kwargs)


@register_model(params=143_667_240, gmacs=19.632, input_size=224, year=2014, top1=72.376,
                top5=90.876, paper=_PAPER + ", config E (top-1/top-5: torchvision's published "
                "single-crop)", test_size=32, recipe="vgg")
def vgg19(num_classes=1000, **kwargs):
    return VGG("E", num_classes=num_classes, **kwargs)


@register_model(params=138_365_992, gmacs=15.470, input_size=224, year=2015, top1=73.360,
                top5=91.516, paper=_PAPER + ", config D + batch norm (torchvision's vgg16_bn; "
                "top-1/top-5: torchvision's published single-crop)", test_size=32, recipe="vgg")
def vgg16_bn(num_classes=1000, **kwargs):
    return VGG("D", batch_norm=True, num_classes=num_classes, **kwargs)


@register_model(params=143_678_248, gmacs=19.632, input_size=224, year=2015, top1=74.218,
                top5=91.842, paper=_PAPER + ", config E + batch norm (torchvision's vgg19_bn; "
                "top-1/top-5: torchvision's published single-crop)", test_size=32, recipe="vgg")
def vgg19_bn(num_classes=1000, **kwargs):
    return VGG("E", batch_norm=True, num_classes=num_classes, **kwargs)
