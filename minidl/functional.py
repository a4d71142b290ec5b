"""The functional API (``import minidl.functional as F``).

Every function here builds autograd nodes; each op family's forward and
backward live together in one module of minidl/autograd.
"""
from .autograd.activation import add_relu, dropout, relu, relu6, sigmoid, silu, tanh
from .autograd.batchnorm import batch_norm
from .autograd.conv import conv2d, linear
from .autograd.lrn import local_response_norm
from .autograd.pool import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d
from .autograd.shape import concat, flatten, pad, split, stack
from .autograd.softmax import cross_entropy, log_softmax, softmax

swish = silu
cat = concat

__all__ = ["adaptive_avg_pool2d", "add_relu", "avg_pool2d", "batch_norm", "cat", "concat", "conv2d",
           "cross_entropy", "dropout", "flatten", "global_avg_pool2d", "linear",
           "local_response_norm", "log_softmax", "max_pool2d", "pad", "relu", "relu6",
           "sigmoid", "silu", "softmax", "split", "stack", "swish", "tanh"]
