"""Activations (relu, the fused add+ReLU, relu6, sigmoid, silu, tanh) and inverted
dropout.

Each backward uses the backend's matching ``*_backward`` method on the saved
forward input (the output for sigmoid), so a device can fuse them; dropout's
mask-apply is the backend's ``dropout_apply``/``dropout_backward``.
"""
from __future__ import annotations

from ..dtypes import is_floating
from ..random import generator
from .function import Function
from .math import Tanh


class ReLU(Function):
    op_name = "relu"
    backend_ops = ("relu", "relu_backward")

    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.relu(x)

    def backward(self, gy):
        return self.backend.relu_backward(self.saved[0], gy)


class AddReLU(Function):
    """y = max(a + b, 0) in one pass (a residual block's sum and ReLU); a and b of one
    shape and dtype."""

    op_name = "relu"
    backend_ops = ("add_relu", "relu_backward")

    def forward(self, a, b):
        y = self.backend.add_relu(a, b)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        g = self.backend.relu_backward(self.saved[0], gy)  # y > 0 exactly where a + b > 0
        return g, g


class ReLU6(Function):
    op_name = "relu6"
    backend_ops = ("relu6", "relu6_backward")

    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.relu6(x)

    def backward(self, gy):
        return self.backend.relu6_backward(self.saved[0], gy)


class Sigmoid(Function):
    backend_ops = ("sigmoid", "sigmoid_backward")

    def forward(self, x):
        y = self.backend.sigmoid(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        return self.backend.sigmoid_backward(self.saved[0], gy)


class SiLU(Function):
    op_name = "silu"
    backend_ops = ("silu", "silu_backward")

    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.silu(x)

    def backward(self, gy):
        return self.backend.silu_backward(self.saved[0], gy)


class Dropout(Function):
    """y = x * mask, mask = keep / (1 - p) with keep = (u >= p) for uniform draws u from
    the device's generator: the expected value of y equals x."""

    def forward(self, x):
        be = self.backend
        draws = be.uniform(generator(self.device), 0.0, 1.0, x.shape, x.dtype)
        y, self.mask = be.dropout_apply(x, draws, self.p)
        return y

    def backward(self, gy):
        return self.backend.dropout_backward(gy, self.mask)


def _check_tensor(x, op):
    from ..tensor import Tensor
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {x.dtype}")


def relu(x):
    _check_tensor(x, "relu")
    return ReLU.apply(x)


def add_relu(a, b):
    """relu(a + b), fused into one pass where a and b have one shape and dtype (the
    end of a residual block); otherwise the two ops."""
    _check_tensor(a, "add_relu")
    _check_tensor(b, "add_relu")
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return relu(a + b)
    return AddReLU.apply(a, b)


def relu6(x):
    """min(max(x, 0), 6), as in MobileNet."""
    _check_tensor(x, "relu6")
    return ReLU6.apply(x)


def sigmoid(x):
    _check_tensor(x, "sigmoid")
    return Sigmoid.apply(x)


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    _check_tensor(x, "silu")
    return SiLU.apply(x)


def tanh(x):
    _check_tensor(x, "tanh")
    return Tanh.apply(x)


def dropout(x, p=0.5, training=True):
    """Inverted dropout: zero each element with probability ``p`` and scale the kept
    ones by 1/(1-p).  Identity when not training or p == 0.  The mask comes from
    ``minidl.random.generator(x.device)``, so ``minidl.manual_seed`` reproduces it."""
    _check_tensor(x, "dropout")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: expected a probability p in [0, 1), got {p!r}")
    if not training or p == 0:
        return x
    return Dropout.apply(x, p=float(p), device=x.device)
