"""``minidl.summary(model, input_size)``: a per-layer complexity report.

Runs one forward pass (eval mode, no autograd) on a zero input and records, for
every leaf module call in execution order, its output shape, its parameters
(each distinct Parameter counted once, at its first use) and its multiply-
accumulates.  MACs count convolutions and fully connected layers only, with no
bias adds, as the lecture's tables do:

    conv:   N * Cout * Hout * Wout * (Cin / groups) * kh * kw
    linear: N * out_features * in_features   (N = all leading dimensions)

The MACs are counted where the arithmetic happens, in the autograd ``Conv2d`` and
``Linear`` functions, so a module that calls ``F.conv2d`` itself (a convolutional
form of a classifier, say) is counted too; they are charged to the innermost
module being called.  ``shape_only=True`` skips the convolution and matrix
arithmetic (those outputs become zeros of the right shape) and passes the input of
batch norm, LRN and activations through unchanged, while everything else runs;
that makes full-resolution counts of large models cheap.  Shapes, params and MACs
are exact either way, only the output values differ.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from ..autograd import activation as _act_ops
from ..autograd import batchnorm as _batchnorm_ops
from ..autograd import conv as _conv_ops
from ..autograd import lrn as _lrn_ops
from ..autograd.function import no_grad
from ..creation import zeros
from ..nn.layers import Conv2d
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
        """MACs per sample, in billions (the unit of the lecture's tables)."""
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
        if isinstance(m, Conv2d):
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


def _conv_output_shape(x, w, fn):
    n, _, h, wd = x.shape
    top, bottom, left, right = fn.padding
    ho = (h + top + bottom - fn.dilation[0] * (w.shape[2] - 1) - 1) // fn.stride[0] + 1
    wo = (wd + left + right - fn.dilation[1] * (w.shape[3] - 1) - 1) // fn.stride[1] + 1
    return (n, w.shape[0], ho, wo)


def _pass_through(fn, x, *rest):
    return x


# autograd functions whose output has their input's shape: skipped by shape_only
_SHAPE_PRESERVING = (_batchnorm_ops.BatchNormEval, _lrn_ops.LocalResponseNorm, _act_ops.ReLU,
                     _act_ops.ReLU6, _act_ops.Sigmoid, _act_ops.SiLU)


class _Tracer:
    """Patches ``Module.__call__`` and the conv/linear autograd functions (class
    attributes, so not while another thread runs a model) for one forward."""

    def __init__(self, model, shape_only):
        self.names = {id(m): name for name, m in model.named_modules()}
        self.shape_only = shape_only
        self.stack = []          # [module, macs charged to this call]
        self.rows = []
        self.seen_params = set()

    def charge(self, macs):
        if self.stack:
            self.stack[-1][1] += macs

    @contextlib.contextmanager
    def active(self):
        tracer = self
        call, conv_fwd, linear_fwd = Module.__call__, _conv_ops.Conv2d.forward, _conv_ops.Linear.forward

        def traced_call(module, *args, **kwargs):
            frame = [module, 0]
            tracer.stack.append(frame)
            index = len(tracer.rows)
            try:
                out = call(module, *args, **kwargs)
            finally:
                tracer.stack.pop()
            tracer.record(module, frame[1], out, index)
            return out

        def traced_conv(fn, x, w, b=None):
            shape = _conv_output_shape(x, w, fn)
            n_out = shape[0] * shape[1] * shape[2] * shape[3]
            tracer.charge(n_out * w.shape[1] * w.shape[2] * w.shape[3])
            if tracer.shape_only:
                return fn.backend.zeros(shape, x.dtype)
            return conv_fwd(fn, x, w, b)

        def traced_linear(fn, x, w, b=None):
            shape = tuple(x.shape[:-1]) + (w.shape[0],)
            n_out = 1
            for d in shape:
                n_out *= d
            tracer.charge(n_out * w.shape[1])
            if tracer.shape_only:
                return fn.backend.zeros(shape, x.dtype)
            return linear_fwd(fn, x, w, b)

        patches = [(Module, "__call__", traced_call), (_conv_ops.Conv2d, "forward", traced_conv),
                   (_conv_ops.Linear, "forward", traced_linear)]
        if self.shape_only:
            # shape-preserving layers pass their (all-zero) input through unchanged
            patches += [(op, "forward", _pass_through) for op in _SHAPE_PRESERVING]
        saved = [(owner, attr, owner.__dict__[attr]) for owner, attr, _ in patches]
        try:
            for owner, attr, replacement in patches:
                setattr(owner, attr, replacement)
            yield self
        finally:
            for owner, attr, original in saved:
                setattr(owner, attr, original)

    def record(self, module, own_macs, out, index):
        # a leaf gets a row; so does a composite module that owns parameters or does
        # conv/linear arithmetic itself (not through a child module)
        own = [p for p in module._parameters.values() if p is not None]
        if module._modules and not own and not own_macs:
            return
        new = [p for p in own if id(p) not in self.seen_params]
        self.seen_params.update(id(p) for p in new)
        name = self.names.get(id(module), f"<{type(module).__name__} outside the model>")
        # rows in call order: a composite's own row goes before its children's rows
        self.rows.insert(index, LayerRow(name, type(module).__name__, _shape_of(out),
                                         sum(p.numel() for p in new), own_macs))


def summary(model, input_size, batch_size=1, print_table=True, shape_only=False, device=None):
    """Trace one forward of ``model`` on a zero batch of ``input_size`` (an int for a
    square image, (H, W) or (C, H, W); without C, the channels are the first
    convolution's ``in_channels``) and report per-layer output shapes,
    parameters and MACs.  Prints the table unless ``print_table=False``; returns a
    :class:`ModelSummary` (``.rows``, ``.total_params``, ``.total_macs``, ``.gmacs``).

    The forward runs in eval mode under ``no_grad``; every module's mode is restored
    afterwards.  ``device`` defaults to the device of the model's first parameter.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a minidl.nn.Module, got {type(model).__name__}")
    shape = _input_shape(input_size, batch_size, input_channels(model))
    params = list(model.parameters())
    if device is None:
        device = params[0].device if params else "cpu"
    dtype = params[0].dtype if params else "float32"
    modes = [(m, m.training) for m in model.modules()]
    tracer = _Tracer(model, shape_only)
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
