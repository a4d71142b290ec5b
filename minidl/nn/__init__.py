"""Neural-network modules: ``Module``, ``Parameter``, containers, layers, init and utils.

``minidl.nn.functional`` is ``minidl.functional``.
"""
from .. import functional
from . import init, utils
from .containers import ModuleDict, ModuleList, Sequential
from .layers import (AdaptiveAvgPool2d, AvgPool2d, Concat, Conv2d, CrossEntropyLoss, Dropout, Flatten,
                     GlobalAvgPool2d, Identity, Linear, LogSoftmax, MaxPool2d, ReLU, ReLU6, Sigmoid,
                     SiLU, Softmax, Swish, Tanh)
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from .parameter import Parameter
from .utils import clip_grad_norm_, clip_grad_value_, fuse_conv_relu

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Sequential", "ModuleList",
           "ModuleDict", "Identity", "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d",
           "LocalResponseNorm", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d",
           "Dropout", "ReLU", "ReLU6", "Sigmoid", "SiLU", "Swish", "Tanh", "Softmax", "LogSoftmax",
           "Flatten", "Concat", "CrossEntropyLoss", "clip_grad_norm_", "clip_grad_value_",
           "fuse_conv_relu"]
