"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) and torchvision's one-GPU variant.

``alexnet``: the paper / Caffe ``bvlc_alexnet`` network, 227x227 input,
96-256-384-384-256 convolutions with groups=2 on conv2, conv4 and conv5 (the
two-GPU split), local response normalization after conv1 and conv2, overlapping
3x3/2 max pooling and dropout 0.5 in fc6/fc7.  The fully connected layers take a
fixed 6x6x256 map, so the network needs its full 227x227 input.

LRN follows the paper's formula b = a / (k + alpha * sum a^2)^beta with n=5,
k=2, alpha=1e-4, beta=0.75.  minidl's LocalResponseNorm (like PyTorch and
Caffe) divides alpha by the window size, so it gets alpha = 1e-4 * 5.  (Caffe's
bvlc_alexnet uses k=1 and alpha/5 instead: not the paper's normalization.)

``alexnet_owt``: torchvision's ``alexnet`` ("One weird trick", Krizhevsky 2014):
64-192-384-256-256, no LRN and no groups, adaptive 6x6 average pooling before
the classifier.  Module names equal torchvision's (features.N, classifier.N).
"""
from __future__ import annotations

from minidl import nn

from .registry import register_model

# (out_channels, kernel, stride, padding, groups, lrn_and_pool_after)
_PAPER_CONVS = [
    (96, 11, 4, 0, 1, "lrn+pool"),
    (256, 5, 1, 2, 2, "lrn+pool"),
    (384, 3, 1, 1, 1, None),
    (384, 3, 1, 1, 2, None),
    (256, 3, 1, 1, 2, "pool"),
]
# (out_channels, kernel, stride, padding, pool_after) -- torchvision's layout
_OWT_CONVS = [
    (64, 11, 4, 2, True),
    (192, 5, 1, 2, True),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, False),
    (256, 3, 1, 1, True),
]


class AlexNet(nn.Module):
    """The paper's network: ``features`` (convs), ``classifier`` (fc6-fc8).

    Initialization as in the paper: weights N(0, 0.01); biases 1 in conv2, conv4,
    conv5 and the hidden fully connected layers (to give ReLUs positive inputs
    early on), 0 elsewhere.
    """

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        layers, in_channels, one_biased = [], 3, []
        for i, (out, kernel, stride, padding, groups, after) in enumerate(_PAPER_CONVS):
            conv = nn.Conv2d(in_channels, out, kernel, stride=stride, padding=padding, groups=groups)
            layers += [conv, nn.ReLU(inplace=True)]
            if after == "lrn+pool":
                layers.append(nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0))
            if after is not None:
                layers.append(nn.MaxPool2d(3, stride=2))
            if i in (1, 3, 4):
                one_biased.append(conv)
            in_channels = out
        self.features = nn.Sequential(*layers)
        fc6, fc7 = nn.Linear(256 * 6 * 6, 4096), nn.Linear(4096, 4096)
        self.classifier = nn.Sequential(
            fc6, nn.ReLU(inplace=True), nn.Dropout(dropout),
            fc7, nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        for m in one_biased + [fc6, fc7]:
            nn.init.ones_(m.bias)

    def forward(self, x):
        x = self.features(x)
        if x.shape[2:] != (6, 6):
            raise ValueError(f"AlexNet: expected a 227x227 input (a 6x6 map before fc6), got input "
                             f"giving a {x.shape[2]}x{x.shape[3]} map")
        return self.classifier(x.flatten(1))


class AlexNetOWT(nn.Module):
    """torchvision's AlexNet; PyTorch's default layer initialization, as torchvision."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        layers, in_channels = [], 3
        for out, kernel, stride, padding, pool in _OWT_CONVS:
            layers += [nn.Conv2d(in_channels, out, kernel, stride=stride, padding=padding),
                       nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(3, stride=2))
            in_channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


@register_model(params=60_965_224, gmacs=0.724, input_size=227, year=2012, top1=63.3, top5=84.6,
                paper="Krizhevsky et al., ImageNet Classification with Deep CNNs, NIPS 2012 "
                      "(top-1/top-5: the survey's table, models/README.md)",
                test_size=227, recipe="alexnet", eval_resize=256)
def alexnet(num_classes=1000, **kwargs):
    return AlexNet(num_classes=num_classes, **kwargs)


@register_model(params=61_100_840, gmacs=0.714, input_size=224, year=2014, top1=56.522, top5=79.066,
                paper="Krizhevsky, One weird trick for parallelizing CNNs, 2014 "
                      "(torchvision's alexnet; top-1/top-5: torchvision's published single-crop)",
                test_size=64, recipe="alexnet")
def alexnet_owt(num_classes=1000, **kwargs):
    return AlexNetOWT(num_classes=num_classes, **kwargs)
