"""``minidl.summary(model, input_size)``: a per-layer complexity report.

Runs one forward pass (eval mode, no autograd) on a zero input with forward hooks on
every module of the model, and records, for every module call in execution order, its
output shape, its parameters (each distinct Parameter counted once, at its first use)
and its multiply-accumulates.  MACs count convolutions and fully connected layers only,
with no bias adds, from the shapes the hooks see:

    Conv2d: output elements * (in_channels / groups) * kh * kw
    Linear: output elements * in_features

A module that does such arithmetic itself (``F.conv2d`` in its own ``forward``) is
counted through ``custom_macs``.  ``shape_only=True`` gives the convolution and linear
layers a forward that returns zeros of their output's shape, the pooling layers one
that pools a single channel to find that shape, and the batch norm, LRN and
activation layers one that returns their input, for the duration of the call;
everything else runs.  That makes full-resolution counts of large models cheap.
Shapes, params and MACs are exact either way, only the output values differ.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field

from .. import functional as F
from ..autograd.function import no_grad
from ..creation import zeros
from ..nn import layers, normalization
from ..nn.module import Module
from ..tensor import Tensor


@dataclass
class LayerRow:
    name: str               # dotted module path ("" for the model itself)
    type: str               # the module's class name
    output_shape: object    # a tuple, a list of tuples (several outputs) or None
    params: int             # parameters first used by this call
    macs: int               # conv + linear multiply-accumulates of this call


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    input_shape: tuple
    total_params: int        # every distinct parameter of the model
    trainable_params: int    # those with requires_grad
    unused_params: int       # parameters no module used in this forward (e.g. train-only aux heads)
    total_macs: int          # for the whole batch
    output_shape: object = None
    batch_size: int = field(init=False)

    def __post_init__(self):
        self.batch_size = self.input_shape[0]

    @property
    def used_params(self):
        """Parameters of the modules this forward ran: the inference network, without
        train-only parts such as auxiliary classifiers."""
        return self.total_params - self.unused_params

    @property
    def macs_per_sample(self):
        return self.total_macs // self.batch_size

    @property
    def gmacs(self):
        """MACs per sample, in billions (the unit of the reference tables)."""
        return self.total_macs / self.batch_size / 1e9

    def table(self):
        head = ("Layer", "Type", "Output shape", "Params", "MACs")
        body = [(r.name or "(model)", r.type, _fmt_shape(r.output_shape), f"{r.params:,}",
                 f"{r.macs:,}") for r in self.rows]
        widths = [max(len(line[i]) for line in [head] + body) for i in range(5)]
        aligns = ("<", "<", "<", ">", ">")

        def fmt(line):
            return "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(line, aligns, widths)).rstrip()

        rule = "-" * len(fmt(head))
        lines = [fmt(head), rule] + [fmt(line) for line in body] + [rule]
        lines.append(f"Total params:     {self.total_params:,} "
                     f"(trainable {self.trainable_params:,})")
        if self.unused_params:
            lines.append(f"  not used by this forward: {self.unused_params:,}")
        lines.append(f"Total MACs:       {self.total_macs:,} for input {self.input_shape} "
                     f"({_human(self.total_macs / self.batch_size)}MACs per sample)")
        lines.append(f"Output shape:     {_fmt_shape(self.output_shape)}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _human(count):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.3f} {unit}"
    return f"{count:g} "


def _fmt_shape(shape):
    if shape is None:
        return "-"
    if isinstance(shape, list):
        return ", ".join(_fmt_shape(s) for s in shape)
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _shape_of(out):
    if isinstance(out, Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        shapes = [_shape_of(o) for o in out]
        return [s for s in shapes if s is not None] or None
    return None


def input_channels(model, default=3):
    """The input channels a model expects: its first convolution's ``in_channels``."""
    for m in model.modules():
        if isinstance(m, layers.Conv2d):
            return m.in_channels
    return default


def _input_shape(input_size, batch_size, channels):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"summary: expected a positive int batch_size, got {batch_size!r}")
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        dims = (channels, input_size, input_size)
    elif isinstance(input_size, (tuple, list)) and len(input_size) in (2, 3):
        dims = tuple(input_size)
        dims = (channels,) + dims if len(dims) == 2 else dims
    else:
        dims = None
    if dims is None or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ValueError("summary: expected input_size as a positive int (a square image), (H, W) "
                         f"or (C, H, W), got {input_size!r}")
    return (batch_size,) + dims


def _conv_macs(module, args, out):
    return out.numel() * math.prod(module.weight.shape[1:])   # (in_channels / groups) * kh * kw


def _linear_macs(module, args, out):
    return out.numel() * module.in_features


# module type -> MACs of one call, from the module and the shapes its hooks see
MAC_RULES = {layers.Conv2d: _conv_macs, layers.Linear: _linear_macs}

# layers whose output has their input's shape: shape_only passes the input through
_SHAPE_PRESERVING = (normalization.BatchNorm1d, normalization.BatchNorm2d,
                     normalization.LocalResponseNorm, layers.ReLU, layers.ReLU6, layers.Sigmoid,
                     layers.SiLU, layers.Tanh)


@functools.lru_cache(maxsize=None)
def _conv_output_plane(size, kernel, stride, padding, dilation):
    """The spatial output size of a convolution, from the op itself run on one channel
    (a kh x kw kernel over one H x W plane of zeros): no copy of its geometry here."""
    plane = F.conv2d(zeros(1, 1, *size), zeros(1, 1, *kernel), stride=stride, padding=padding,
                     dilation=dilation)
    return tuple(plane.shape[2:])


def _zeros_like_output(module):
    """A forward for shape_only: zeros of the layer's output shape, without its arithmetic."""
    def forward(x):
        if isinstance(module, layers.Linear):
            shape = tuple(x.shape[:-1]) + (module.out_features,)
        else:
            spatial = _conv_output_plane(tuple(x.shape[2:]), tuple(module.weight.shape[2:]),
                                         module.stride, module.padding, module.dilation)
            shape = (x.shape[0], module.out_channels) + spatial
        return zeros(*shape, dtype=x.dtype, device=x.device)
    return forward


# pooling layers work on every channel alike: shape_only runs them on one channel
_CHANNELWISE = (layers.MaxPool2d, layers.AvgPool2d, layers.AdaptiveAvgPool2d)
_channelwise_planes = {}


def _one_channel_output(module):
    """A forward for shape_only: zeros of the output shape, the layer's own forward run on
    a single channel of one sample to find the spatial size (cached per layer setting)."""
    def forward(x):
        key = (type(module), module.extra_repr(), tuple(x.shape[2:]))
        if key not in _channelwise_planes:
            plane = type(module).forward(module, zeros(1, 1, *x.shape[2:], dtype=x.dtype, device=x.device))
            _channelwise_planes[key] = tuple(plane.shape[2:])
        return zeros(*x.shape[:2], *_channelwise_planes[key], dtype=x.dtype, device=x.device)
    return forward


def _pass_through(x, *rest, **kwargs):
    return x


class _Tracer:
    """Forward hooks on every module of one model, for one forward."""

    def __init__(self, model, shape_only, custom_macs):
        self.modules = [m for _, m in model.named_modules()]
        self.names = {id(m): name for name, m in model.named_modules()}
        self.shape_only = shape_only
        # the caller's rules first: the first class a module is an instance of decides
        self.mac_rules = list((custom_macs or {}).items()) + list(MAC_RULES.items())
        self.starts = []         # len(rows) at each open call: a composite's row goes first
        self.rows = []
        self.seen_params = set()

    def before(self, module, args):
        self.starts.append(len(self.rows))

    def after(self, module, args, out):
        index = self.starts.pop()
        rule = next((rule for cls, rule in self.mac_rules if isinstance(module, cls)), None)
        self.record(module, 0 if rule is None else int(rule(module, args, out)), out, index)

    @contextlib.contextmanager
    def active(self):
        handles, replaced = [], []
        try:
            for module in self.modules:
                handles.append(module.register_forward_pre_hook(self.before))
                handles.append(module.register_forward_hook(self.after))
                if self.shape_only:
                    forward = _replacement_forward(module)
                    if forward is not None:
                        # an instance attribute shadows the class's forward for this call only
                        module.__dict__["forward"] = forward
                        replaced.append(module)
            yield self
        finally:
            for handle in handles:
                handle.remove()
            for module in replaced:
                del module.__dict__["forward"]

    def record(self, module, own_macs, out, index):
        # a leaf gets a row; so does a composite module that owns parameters or counts
        # MACs of its own (arithmetic not done by a child module)
        own = [p for p in module._parameters.values() if p is not None]
        if module._modules and not own and not own_macs:
            return
        new = [p for p in own if id(p) not in self.seen_params]
        self.seen_params.update(id(p) for p in new)
        self.rows.insert(index, LayerRow(self.names[id(module)], type(module).__name__,
                                         _shape_of(out), sum(p.numel() for p in new), own_macs))


def _replacement_forward(module):
    if isinstance(module, (layers.Conv2d, layers.Linear)):
        return _zeros_like_output(module)
    if isinstance(module, _SHAPE_PRESERVING):
        return _pass_through
    if isinstance(module, _CHANNELWISE):
        return _one_channel_output(module)
    return None


def summary(model, input_size, batch_size=1, print_table=True, shape_only=False, device=None,
            custom_macs=None):
    """Trace one forward of ``model`` on a zero batch of ``input_size`` (an int for a
    square image, (H, W) or (C, H, W); without C, the channels are the first
    convolution's ``in_channels``) and report per-layer output shapes,
    parameters and MACs.  Prints the table unless ``print_table=False``; returns a
    :class:`ModelSummary` (``.rows``, ``.total_params``, ``.total_macs``, ``.gmacs``).

    The forward runs in eval mode under ``no_grad``; every module's mode is restored
    afterwards.  ``device`` defaults to the device of the model's first parameter.
    ``custom_macs`` maps a module class to ``fn(module, args, output) -> MACs`` for
    modules that compute convolutions or products themselves; it extends ``MAC_RULES``.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a minidl.nn.Module, got {type(model).__name__}")
    shape = _input_shape(input_size, batch_size, input_channels(model))
    params = list(model.parameters())
    if device is None:
        device = params[0].device if params else "cpu"
    dtype = params[0].dtype if params else "float32"
    modes = [(m, m.training) for m in model.modules()]
    tracer = _Tracer(model, shape_only, custom_macs)
    try:
        model.eval()
        with no_grad(), tracer.active():
            out = model(zeros(*shape, dtype=dtype, device=device))
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    total = sum(p.numel() for p in params)
    result = ModelSummary(
        rows=tracer.rows, input_shape=shape, total_params=total,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        unused_params=sum(p.numel() for p in params if id(p) not in tracer.seen_params),
        total_macs=sum(r.macs for r in tracer.rows), output_shape=_shape_of(out))
    if print_table:
        print(result.table())
    return result
