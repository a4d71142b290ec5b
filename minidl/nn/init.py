"""Parameter initialization, PyTorch's ``torch.nn.init`` semantics.

Every function fills a Tensor in place (it rebinds ``.data`` on the same
object) through its backend, drawing from ``minidl.random`` so that
``minidl.manual_seed`` makes initialization reproducible, and returns it.

Inside ``with skip_init():`` every function checks its arguments and leaves the
tensor as it is (models built there keep their zero-filled parameters): for counting
parameters and MACs of large models, where drawing the weights costs far more than
the count (``python -m minidl.models --table``).
"""
from __future__ import annotations

import contextlib
import math

from ..dtypes import is_floating
from ..random import generator
from ..tensor import Tensor


_skipping = False


@contextlib.contextmanager
def skip_init():
    """Initialization functions do nothing (but check their arguments) in this block."""
    global _skipping
    previous, _skipping = _skipping, True
    try:
        yield
    finally:
        _skipping = previous


def _check(fn, tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{fn}: expected a Tensor, got {type(tensor).__name__}")
    if not is_floating(tensor.dtype):
        raise TypeError(f"init.{fn}: expected a floating-point tensor, got dtype {tensor.dtype}")


def calculate_fan_in_and_fan_out(tensor):
    """fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field
    (a conv weight (O, I/groups, KH, KW) has fan_in I/groups*KH*KW)."""
    if tensor.ndim < 2:
        raise ValueError(f"init.calculate_fan_in_and_fan_out: expected a tensor with at least 2 "
                         f"dimensions, got shape {tensor.shape}")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The recommended std gain of a nonlinearity (PyTorch's table)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"init.calculate_gain: expected a number as the leaky_relu slope, got {slope!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"init.calculate_gain: expected one of {linear + ('tanh', 'relu', 'leaky_relu', 'selu')}, "
                     f"got {nonlinearity!r}")


def _fan(tensor, mode, fn):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{fn}: expected mode 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"init.{fn}: cannot initialize a tensor with zero elements (shape {tensor.shape})")
    return fan


def uniform_(tensor, a=0.0, b=1.0):
    _check("uniform_", tensor)
    if a > b:
        raise ValueError(f"init.uniform_: expected a <= b, got a={a}, b={b}")
    if _skipping:
        return tensor
    be = tensor.backend
    tensor.data = be.uniform(generator(tensor.device), float(a), float(b), tensor.shape, tensor.dtype)
    return tensor


def normal_(tensor, mean=0.0, std=1.0):
    _check("normal_", tensor)
    if std < 0:
        raise ValueError(f"init.normal_: expected std >= 0, got {std}")
    if _skipping:
        return tensor
    be = tensor.backend
    z = be.standard_normal(generator(tensor.device), tensor.shape, tensor.dtype)
    tensor.data = be.add(be.mul(z, float(std)), float(mean))
    return tensor


def constant_(tensor, val):
    _check("constant_", tensor)
    if _skipping:
        return tensor
    tensor.data = tensor.backend.full(tensor.shape, float(val), tensor.dtype)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0):
    _check("xavier_uniform_", tensor)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    _check("xavier_normal_", tensor)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound), bound = gain * sqrt(3 / fan).  PyTorch's default conv/linear
    init is ``a=sqrt(5)``, which makes bound = 1/sqrt(fan_in)."""
    _check("kaiming_uniform_", tensor)
    fan = _fan(tensor, mode, "kaiming_uniform_")
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2), std = gain / sqrt(fan) (He et al.; ResNets use mode='fan_out',
    nonlinearity='relu')."""
    _check("kaiming_normal_", tensor)
    fan = _fan(tensor, mode, "kaiming_normal_")
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def _normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, max_rounds=10000):
    """N(mean, std^2) restricted to [a, b] (absolute bounds, as in PyTorch), by
    rejection: out-of-range entries are redrawn until none is left.  Draws come
    from the normal itself when [a, b] holds enough of its mass, otherwise from
    U(a, b) accepted with probability density/max-density (narrow intervals)."""
    _check("trunc_normal_", tensor)
    if not a < b:
        raise ValueError(f"init.trunc_normal_: expected a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"init.trunc_normal_: expected std > 0, got {std}")
    if _skipping:
        return tensor
    be, rng, shape, dtype = tensor.backend, generator(tensor.device), tensor.shape, tensor.dtype
    za, zb = (a - mean) / std, (b - mean) / std
    mass = _normal_cdf(zb) - _normal_cdf(za)
    closest = min(max(0.0, za), zb)  # the z of highest density inside [za, zb]

    def draw():
        if mass >= 0.05:
            x = be.add(be.mul(be.standard_normal(rng, shape, dtype), float(std)), float(mean))
            return x, be.less(x, a) | be.greater(x, b)
        u = be.uniform(rng, float(za), float(zb), shape, dtype)
        density = be.exp(be.mul(be.sub(be.mul(u, u), closest * closest), -0.5))
        rejected = be.greater(be.uniform(rng, 0.0, 1.0, shape, dtype), density)
        return be.add(be.mul(u, float(std)), float(mean)), rejected

    values, bad = draw()
    for _ in range(max_rounds):
        if int(be.sum(bad)) == 0:
            tensor.data = be.clip(values, a, b)  # guard float rounding at the edges
            return tensor
        fresh, fresh_bad = draw()
        values = be.where(bad, fresh, values)
        bad = bad & fresh_bad
    raise ValueError(f"init.trunc_normal_: could not draw from N({mean}, {std}^2) truncated to "
                     f"[{a}, {b}] in {max_rounds} rounds")
