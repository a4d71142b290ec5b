"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to
Document Recognition", Proc. IEEE 1998), the zoo's model for 28x28 images
(MNIST, Fashion-MNIST): the default of ``minidl-train``.

C1: 6 maps 5x5 -> S2: 2x2 pooling -> C3: 16 maps 5x5 -> S4: 2x2 pooling ->
C5: 120 units (a 5x5 conv on a 5x5 map, i.e. fully connected) -> F6: 84 -> output.
The paper frames each 28x28 digit in a 32x32 field; C1's padding of 2 does the same,
so every map has the paper's size (28, 14, 10, 5).  Modernized as in most
re-implementations, and said here: ReLU instead of the scaled tanh, max pooling
instead of trainable subsampling, full C3 connectivity instead of the paper's
connection table (2,416 instead of 1,516 C3 parameters), a linear layer + softmax
instead of the RBF output units.

Options: ``width`` multiplies the channels and units of every hidden layer;
``batch_norm`` adds batch normalization after every conv and hidden linear layer.
``lenet5_bn_w2`` (width 2 + batch norm) is the zoo's entry for a fast, accurate
Fashion-MNIST run on a CPU: few, reasonably large ops (the CPU backend's overhead
per op dominates on LeNet's tiny 6-channel maps), and batch norm lets it train at
a high learning rate in a few epochs.
"""
from __future__ import annotations

from minidl import nn

from .registry import register_model


class LeNet5(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1, batch_norm=False, dropout=0.0):
        super().__init__()
        if width < 1 or int(width) != width:
            raise ValueError(f"LeNet5: expected a positive integer width, got {width!r}")
        c1, c3, c5, f6 = 6 * width, 16 * width, 120 * width, 84 * width

        def conv(cin, cout, padding):
            layers = [nn.Conv2d(cin, cout, 5, padding=padding, bias=not batch_norm)]
            return layers + ([nn.BatchNorm2d(cout)] if batch_norm else []) + [nn.ReLU()]

        def fc(cin, cout):
            layers = [nn.Linear(cin, cout, bias=not batch_norm)]
            return layers + ([nn.BatchNorm1d(cout)] if batch_norm else []) + [nn.ReLU()]

        self.features = nn.Sequential(*conv(in_channels, c1, 2), nn.MaxPool2d(2),
                                      *conv(c1, c3, 0), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), *fc(c3 * 25, c5), *fc(c5, f6),
                                        nn.Dropout(dropout), nn.Linear(f6, num_classes))

    def forward(self, x):
        if x.shape[-2:] != (28, 28):
            raise ValueError(f"LeNet5: expected 28x28 inputs (N, C, 28, 28), got {x.shape}")
        return self.classifier(self.features(x))


_PAPER = ("LeCun et al., Gradient-Based Learning Applied to Document Recognition (1998); "
          "MNIST test error 0.95% (no ImageNet result); parameters here at 1 input channel "
          "and 1000 classes, full C3 connectivity")


@register_model(params=145_856, gmacs=0.00049968, input_size=28, year=1998, paper=_PAPER,
                test_size=28, recipe="lenet5", eval_resize=28)
def lenet5(num_classes=10, in_channels=1, **kwargs):
    return LeNet5(num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model(params=412_124, gmacs=0.00159552, input_size=28, year=1998,
                recipe="lenet5", eval_resize=28,
                paper=_PAPER + "; width 2 and batch norm (not in the paper)", test_size=28)
def lenet5_bn_w2(num_classes=10, in_channels=1, **kwargs):
    kwargs = {"width": 2, "batch_norm": True, **kwargs}
    return LeNet5(num_classes=num_classes, in_channels=in_channels, **kwargs)
