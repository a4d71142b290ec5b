"""Kernel benchmark of minidl's own CUDA kernels (device 'cuda'), or a correctness
run of the same entries through the host emulation (device 'emu': no timing claims).

    python benchmarks/kernels.py --device cuda --out DIR [--only NAME] [--iters 20]
    python benchmarks/kernels.py --device emu  --out DIR
    python benchmarks/kernels.py --device emu  --profile   (benchmarks/kernel_profile.py)

For every entry (kernel family, op, shape) on cuda it reports: median time over
`iters` timed runs after warm-up (CUDA events; inputs are random, never zeros),
achieved GB/s (bytes the kernel must move at least) or TFLOP/s, that figure as a
fraction of the measured roofline (device-to-device copy bandwidth, counted as
bytes read + bytes written, or a bf16 8192^3 GEMM rate, both measured here), and
the ratio to PyTorch/cuDNN on the same shape when PyTorch with CUDA is installed.
Writes kernels.json and kernels.md into --out.

Registry: entries are added with ``@entry(family, name, shape)`` on a function
``f(ctx) -> Case``; ``ctx.pick(tiny, full)`` gives its shape (tiny on emu, mid-sized
for the emu profile, full on cuda).  A Case holds the
minidl call, optional torch call, the bytes/flops it counts and a check against the
CPU backend.  Conv/depthwise/pool/LRN entries are registered in the marked section.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import minidl
from minidl.backend import get_backend
from minidl.backend.geometry import ConvGeometry, PoolGeometry

ENTRIES = []


def entry(family, name, shape, tc_format=None):
    """Register an entry; ``tc_format`` ("tf32" or "16bit") marks the tensor-core ones
    (the emu profile's second table, the fraction of the tensor-core peak)."""
    def deco(fn):
        ENTRIES.append(dict(family=family, name=name, shape=shape, make=fn, tc_format=tc_format))
        return fn
    return deco


@dataclass
class Case:
    run: Callable[[], object]                    # the minidl kernel call(s)
    bytes: float = 0.0                           # minimum bytes moved (read + write)
    flops: float = 0.0                           # for compute-bound entries
    torch_run: Optional[Callable[[], object]] = None
    check: Optional[Callable[[], None]] = None   # raises on a mismatch with the CPU backend
    notes: str = ""


PROFILE_ELEMENTS = 1 << 16  # the largest tensor of an entry in the emu profile


def profile_shape(full):
    """``full`` shrunk to at most PROFILE_ELEMENTS elements, keeping its inner layout:
    the leading (batch) dimension goes first, then the larger of the trailing two
    (a plane, not below 7), then the others from the front; each halves in turn."""
    shape = [full] if isinstance(full, int) else list(full)
    while int(np.prod(shape)) > PROFILE_ELEMENTS:
        plane = [i for i in range(2, len(shape)) if i >= len(shape) - 2 and shape[i] > 7]
        if len(shape) > 1 and shape[0] > 1:
            i = 0
        elif plane:
            i = max(plane, key=lambda j: shape[j])
        else:
            i = next(i for i in range(len(shape)) if shape[i] > 1)
        shape[i] = (shape[i] + 1) // 2
    return shape[0] if isinstance(full, int) else tuple(shape)


class Ctx:
    def __init__(self, device, size):
        self.device = device
        self.size = size          # "tiny" (emu check), "profile" (emu profile) or "full"
        self.scale = 1.0          # full elements over picked elements, set by pick()
        self.be = get_backend(device)
        self.cpu = get_backend("cpu")
        self.xp = self.be.xp
        self.rng = np.random.default_rng(0)
        self.torch = None
        if device == "cuda":
            try:
                import torch
                if torch.cuda.is_available():
                    self.torch = torch
            except ImportError:
                pass

    def pick(self, tiny, full):
        """The shape of an entry for this run's size (see profile_shape)."""
        if self.size == "tiny":
            return tiny
        if self.size == "full":
            return full
        shape = profile_shape(full)
        self.scale = float(np.prod(full)) / float(np.prod(shape))
        return shape

    def randn(self, *shape, dtype=np.float32, scale=1.0):
        return self.be.asarray((self.rng.standard_normal(shape) * scale).astype(dtype))

    def uniform(self, lo, hi, *shape, dtype=np.float32):
        return self.be.asarray(self.rng.uniform(lo, hi, shape).astype(dtype))

    def host(self, a):
        return self.be.to_numpy(a)

    def t(self, a):
        """A torch view of a device array (DLPack, no copy)."""
        return self.torch.from_dlpack(a)

    def close(self, got, want, rtol=1e-4, atol=1e-5, what=""):
        np.testing.assert_allclose(self.host(got), np.asarray(want), rtol=rtol, atol=atol, err_msg=what)


B = 8      # the batch of benchmarks/cpu_ops.py
B50 = 64   # ResNet-50-sized layers


# ================================================================ elementwise / optim
def _act_entry(op, n_shape):
    def make(ctx):
        shape = ctx.pick((2, 3, 5, 7), n_shape)
        x = ctx.randn(*shape, scale=3)
        gy = ctx.randn(*shape)
        be, n = ctx.be, int(np.prod(shape))
        y = getattr(be, op)(x)
        saved = y if op == "sigmoid" else x

        def check():
            xh, gh = ctx.host(x), ctx.host(gy)
            ctx.close(getattr(be, op)(x), getattr(ctx.cpu, op)(xh), what=op)
            sh = ctx.host(saved)
            ctx.close(getattr(be, op + "_backward")(saved, gy), getattr(ctx.cpu, op + "_backward")(sh, gh),
                      what=op + "_backward")

        def run():
            getattr(be, op)(x)
            getattr(be, op + "_backward")(saved, gy)
        tr = None
        if ctx.torch is not None:
            F = ctx.torch.nn.functional
            tx = ctx.t(x).clone().requires_grad_(True)
            tg = ctx.t(gy)
            f = {"relu": F.relu, "relu6": F.relu6, "sigmoid": ctx.torch.sigmoid, "silu": F.silu}[op]

            def tr():
                out = f(tx)
                ctx.torch.autograd.grad(out, tx, tg)
        # forward reads x writes y; backward reads saved + gy, writes gx
        return Case(run, bytes=5 * n * 4, torch_run=tr, check=check, notes="fwd+bwd")
    return make


for _op in ("relu", "relu6", "sigmoid", "silu"):
    entry("elementwise", f"{_op} fwd+bwd", f"({B},64,112,112)")(_act_entry(_op, (B, 64, 112, 112)))
entry("elementwise", "relu fwd+bwd", f"({B50},256,56,56)")(_act_entry("relu", (B50, 256, 56, 56)))


@entry("elementwise", "bias_add fwd+bwd", f"({B},64,112,112)")
def _bias(ctx):
    shape = ctx.pick((2, 3, 4, 5), (B, 64, 112, 112))
    x, b, gy = ctx.randn(*shape), ctx.randn(shape[1]), ctx.randn(*shape)
    be, n = ctx.be, int(np.prod(shape))

    def check():
        ctx.close(be.bias_add(x, b), ctx.host(x) + ctx.host(b).reshape(1, -1, 1, 1))
        ctx.close(be.bias_add_backward(gy), ctx.host(gy).astype(np.float64).sum((0, 2, 3)), rtol=1e-3, atol=1e-3)

    def run():
        be.bias_add(x, b)
        be.bias_add_backward(gy)
    tr = None
    if ctx.torch is not None:
        tx, tb, tg = ctx.t(x), ctx.t(b).view(1, -1, 1, 1), ctx.t(gy)

        def tr():
            tx + tb
            tg.sum((0, 2, 3))
    return Case(run, bytes=3 * n * 4, torch_run=tr, check=check)


@entry("elementwise", "add+ReLU fwd+bwd (fused residual)", f"({B50},256,56,56)")
def _add_relu(ctx):
    shape = ctx.pick((2, 3, 4, 5), (B50, 256, 56, 56))
    a, b, gy = ctx.randn(*shape), ctx.randn(*shape), ctx.randn(*shape)
    be, n = ctx.be, int(np.prod(shape))

    def check():
        ctx.close(be.add_relu(a, b), np.maximum(ctx.host(a) + ctx.host(b), 0))

    def run():
        y = be.add_relu(a, b)
        be.relu_backward(y, gy)
    tr = None
    if ctx.torch is not None:
        ta, tb = ctx.t(a).clone().requires_grad_(True), ctx.t(b).clone().requires_grad_(True)
        tg = ctx.t(gy)

        def tr():
            ctx.torch.autograd.grad(ctx.torch.nn.functional.relu(ta + tb), (ta, tb), tg)
    # forward reads a, b and writes y; backward reads y, gy and writes the one gradient
    return Case(run, bytes=6 * n * 4, torch_run=tr, check=check, notes="fwd+bwd")


@entry("elementwise", "dropout fwd+bwd (mask-apply)", f"({B50},65536)")
def _dropout(ctx):
    shape = ctx.pick((3, 50), (B50, 4096 * 16))
    x, u, gy = ctx.randn(*shape), ctx.uniform(0, 1, *shape), ctx.randn(*shape)
    be, n = ctx.be, int(np.prod(shape))

    def check():
        y, m = be.dropout_apply(x, u, 0.5)
        keep = (ctx.host(u) >= 0.5) * 2.0
        ctx.close(y, ctx.host(x) * keep)
        ctx.close(be.dropout_backward(gy, m), ctx.host(gy) * keep)

    def run():
        y, m = be.dropout_apply(x, u, 0.5)
        be.dropout_backward(gy, m)
    tr = None
    if ctx.torch is not None:
        tx, tg = ctx.t(x), ctx.t(gy)

        def tr():
            ctx.torch.nn.functional.dropout(tx, 0.5, True)
            tg * 2.0
    return Case(run, bytes=7 * n * 4, torch_run=tr, check=check,
                notes="uniform draws come from the caller; torch generates its own")


def _resnet50_sizes():
    """The element counts of ResNet-50's 161 parameter tensors (25,557,032 values), from
    its layer table: what a training step's optimizer updates."""
    sizes = [64 * 3 * 49, 64, 64]  # stem conv, bn
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            width, out = planes, planes * 4
            sizes += [width * inplanes, width, width, width * width * 9, width, width, out * width, out, out]
            if b == 0:
                sizes += [out * inplanes, out, out]  # downsample conv + bn
            inplanes = out
    return sizes + [1000 * 2048, 1000]


@entry("optim", "SGD momentum+nesterov+wd (multi-tensor)", "ResNet-50's 161 tensors, 25.6M params")
def _sgd(ctx):
    full = _resnet50_sizes()
    budget = ctx.pick(200, sum(full))
    sizes = []  # the full list, or the real tensors that fit the smaller run's budget
    for k in full:
        if sum(sizes) + k <= budget:
            sizes.append(k)
    n = sum(sizes)
    ctx.scale = sum(full) / n
    p, g, buf = ([ctx.randn(k) for k in sizes] for _ in range(3))
    be = ctx.be

    def check():
        p0 = [ctx.host(a).astype(np.float64) for a in p]
        b0 = [ctx.host(a).astype(np.float64) for a in buf]
        be.sgd_update(p, g, buf, 0.1, 0.9, 0.0, 1e-4, True, False)
        for pk, gk, bk, p0k, b0k in zip(p, g, buf, p0, b0):
            d = ctx.host(gk) + 1e-4 * p0k
            b1 = 0.9 * b0k + d
            ctx.close(bk, b1, rtol=1e-5)
            ctx.close(pk, p0k - 0.1 * (d + 0.9 * b1), rtol=1e-5)

    def run():
        be.sgd_update(p, g, buf, 1e-6, 0.9, 0.0, 1e-4, True, False)
    tr = None
    if ctx.torch is not None:
        tp, tgrad, tbuf = ([ctx.t(a).clone() for a in arrays] for arrays in (p, g, buf))

        def tr():  # torch's foreach SGD ops over the same tensor list (unfused)
            ctx.torch._foreach_add_(tgrad, tp, alpha=1e-4)
            ctx.torch._foreach_mul_(tbuf, 0.9)
            ctx.torch._foreach_add_(tbuf, tgrad)
            ctx.torch._foreach_add_(tgrad, tbuf, alpha=0.9)
            ctx.torch._foreach_add_(tp, tgrad, alpha=-1e-6)
    return Case(run, bytes=5 * n * 4, torch_run=tr, check=check, notes="torch: unfused foreach ops")


# ================================================================ softmax family
def _ce_entry(n_rows, k):
    def make(ctx):
        n, kk = ctx.pick((5, 40), (n_rows, k))
        x = ctx.randn(n, kk, scale=3)
        labels = ctx.be.asarray(ctx.rng.integers(0, kk, n).astype(np.int64))
        g = ctx.be.full((n,), 1.0 / n, np.float32)
        be = ctx.be

        def check():
            loss, lp = be.cross_entropy_forward(x, labels, 0.1)
            try:
                ref_loss, ref_lp = ctx.cpu.cross_entropy_forward(ctx.host(x), ctx.host(labels), 0.1)
            except NotImplementedError:
                return
            ctx.close(lp, ref_lp)
            ctx.close(loss, ref_loss)

        def run():
            loss, lp = be.cross_entropy_forward(x, labels, 0.1)
            be.cross_entropy_backward(lp, labels, 0.1, g)
        tr = None
        if ctx.torch is not None:
            tx = ctx.t(x).clone().requires_grad_(True)
            tl = ctx.t(labels)

            def tr():
                loss = ctx.torch.nn.functional.cross_entropy(tx, tl, label_smoothing=0.1)
                ctx.torch.autograd.grad(loss, tx)
        return Case(run, bytes=4 * n * kk * 4, torch_run=tr, check=check, notes="fwd+bwd, smoothing 0.1")
    return make


entry("softmax", "softmax-CE fwd+bwd", "(256,1000)")(_ce_entry(256, 1000))
entry("softmax", "softmax-CE fwd+bwd", f"({B50},1000)")(_ce_entry(B50, 1000))
entry("softmax", "softmax-CE fwd+bwd (block/row)", "(256,21843)")(_ce_entry(256, 21843))


@entry("softmax", "log-softmax fwd+bwd", "(256,1000)")
def _lsm(ctx):
    n, k = ctx.pick((5, 40), (256, 1000))
    x, gy = ctx.randn(n, k, scale=3), ctx.randn(n, k)
    be = ctx.be

    def check():
        try:
            ref = ctx.cpu.softmax_forward(ctx.host(x), True)
        except NotImplementedError:
            return
        ctx.close(be.softmax_forward(x, True), ref)

    def run():
        y = be.softmax_forward(x, True)
        be.softmax_backward(y, gy, True)
    tr = None
    if ctx.torch is not None:
        tx, tg = ctx.t(x).clone().requires_grad_(True), ctx.t(gy)

        def tr():
            y = ctx.torch.log_softmax(tx, 1)
            ctx.torch.autograd.grad(y, tx, tg)
    return Case(run, bytes=5 * n * k * 4, torch_run=tr, check=check)


# ================================================================ batch norm
def _bn_entry(shape_full, relu=False, half=None):
    """``half``: bfloat16/float16 activations with float32 parameters and statistics
    (autocast's batch norm; PyTorch's side takes the same mix)."""
    def make(ctx):
        shape = ctx.pick((2, 3, 5, 5), shape_full)
        c = shape[1]
        data = np.float32 if half is None else minidl.dtypes.dtype(half)
        x, gy = ctx.randn(*shape, scale=2, dtype=data), ctx.randn(*shape, dtype=data)
        gamma, beta = ctx.uniform(0.5, 1.5, c), ctx.randn(c)
        running_mean, running_var = ctx.be.zeros((c,), np.float32), ctx.be.ones((c,), np.float32)
        be, n = ctx.be, int(np.prod(shape))
        rtol = 1e-4 if half is None else 2.0 ** -7

        def check():
            y, m, v = be.batch_norm_train_forward(x, gamma, beta, 1e-5, relu)
            xh = ctx.host(x).astype(np.float64)
            ctx.close(m, xh.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
            ctx.close(v, xh.var((0, 2, 3)), rtol=1e-4, atol=1e-5)
            ref = ctx.cpu.batch_norm_train_forward(xh.astype(np.float32), ctx.host(gamma), ctx.host(beta), 1e-5,
                                                   relu)[0]
            ctx.close(be.astype(y, np.float32), ref, rtol=rtol, atol=rtol)

        def run():
            y, m, v = be.batch_norm_train_forward(x, gamma, beta, 1e-5, relu, running_mean, running_var, 0.1)
            be.batch_norm_backward(x, gy, gamma, beta, m, v, 1e-5, relu)
        tr = None
        if ctx.torch is not None:
            tx = ctx.t(x).clone().requires_grad_(True)
            tgm = ctx.t(gamma).clone().requires_grad_(True)
            tbt = ctx.t(beta).clone().requires_grad_(True)
            trm, trv = ctx.t(running_mean).clone(), ctx.t(running_var).clone()
            tg = ctx.t(gy)
            functional = ctx.torch.nn.functional

            def tr():
                y = functional.batch_norm(tx, trm, trv, tgm, tbt, True, 0.1, 1e-5)
                if relu:
                    y = functional.relu(y)
                ctx.torch.autograd.grad(y, (tx, tgm, tbt), tg)
        # forward: the statistics read x, the map reads x and writes y; backward: the
        # reduction reads x and gy, the dx map reads them again and writes dx
        return Case(run, bytes=(3 + 5) * n * np.dtype(data).itemsize, torch_run=tr, check=check,
                    notes="fwd+bwd incl. running stats; bytes count the passes over the data our kernels make")
    return make


entry("batchnorm", "BN-train fwd+bwd", f"({B},64,112,112)")(_bn_entry((B, 64, 112, 112)))
entry("batchnorm", "BN-train fwd+bwd", f"({B50},256,56,56)")(_bn_entry((B50, 256, 56, 56)))
entry("batchnorm", "BN-train fwd+bwd", f"({B50},2048,7,7)")(_bn_entry((B50, 2048, 7, 7)))
entry("batchnorm", "BN+ReLU fwd+bwd (fused)", f"({B50},256,56,56)")(_bn_entry((B50, 256, 56, 56), relu=True))
entry("batchnorm", "BN+ReLU fwd+bwd bf16 (float32 params)", f"({B50},256,56,56)")(
    _bn_entry((B50, 256, 56, 56), relu=True, half="bfloat16"))


# ================================================================ conv helper: entries
# conv (3x3 64->64 @56, 1x1 256->64 @56, 7x7/2 stem, 3x3 512->512 @7), depthwise 3x3 144 @56,
# maxpool 3x3/2 (8,64,112,112), LRN 5 (8,96,55,55), and ResNet-50 layers at batch 64:
# register them here with @entry(...) (compute-bound ones set Case.flops).
# Every conv entry is timed with the default algorithm (implicit GEMM; 1x1 stride-1 goes
# to xp.matmul, depthwise to its own kernels) unless it names one.  PyTorch runs with
# cuDNN's TF32 off, so both sides compute in fp32 (our kernels are fp32 SIMT; the GEMM
# roofline above is bf16 tensor cores, so "of roofline" is low by construction).
def _torch_fp32(ctx):
    if ctx.torch is not None:
        ctx.torch.backends.cudnn.allow_tf32 = False
        ctx.torch.backends.cuda.matmul.allow_tf32 = False


def _close_scaled(ctx, got, want, rtol=1e-3, what=""):
    want = np.asarray(want)
    ctx.close(got, want, rtol=rtol, atol=rtol * max(float(np.abs(want).max()), 1.0), what=what)


def _conv_entry(n, c, hw, o, k, stride, pad, groups=1, mode="fwd", algo=None, tf32=False, half=None):
    """mode 'fwd' (y) or 'bwd' (dx and dw); square kernel k, symmetric pad.  ``tf32``:
    minidl.cuda.allow_tf32.conv on (the tensor-core kernel) and cuDNN's TF32 on.
    ``half`` ("float16" / "bfloat16"): the 16-bit tensor-core kernels against cuDNN on
    the same 16-bit inputs."""
    def make(ctx):
        _torch_fp32(ctx)
        if tf32 and ctx.torch is not None:
            ctx.torch.backends.cudnn.allow_tf32 = True
        nn_, cc, hh, oo, gg = n, c, hw, o, groups
        if ctx.size == "tiny":  # same kernel/stride/pad and layout kind, tiny sizes
            nn_, hh = 2, max(2 * k + 1, 9)
            cc, oo = (4, 4) if groups == c else (4, 6)
            gg = cc if groups == c else 1
        elif ctx.size == "profile":  # one image, a smaller plane, all channels (tensor cores: <= 64 a side)
            nn_, hh = 1, min(hw, 16)
            if tf32 or half:  # the emulated mma is slow; 64 fills the 64x64 tile (the conflicts are per tile)
                cc, oo = min(cc, 64), min(oo, 64)
            ctx.scale = n * hw * hw / (hh * hh)
        x, w = ctx.randn(nn_, cc, hh, hh), ctx.randn(oo, cc // gg, k, k, scale=(k * k * cc / gg) ** -0.5)
        st, pd, dl = (stride, stride), (pad, pad, pad, pad), (1, 1)
        be = ctx.be

        def geometry(images):
            return ConvGeometry.create((images, cc, hh, hh), w.shape, st, pd, dl, gg)
        g = geometry(nn_)
        ho = g.HO
        gy = ctx.randn(nn_, oo, ho, ho)
        flops = 2.0 * nn_ * oo * ho * ho * (cc // gg) * k * k * (1 if mode == "fwd" else 2)
        m = min(nn_, 2)  # the check runs on the first images (the CPU reference is slow)

        def call(fn):
            old = getattr(be, "conv_algo", None), minidl.cuda.allow_tf32.conv
            be.conv_algo = algo or old[0]
            minidl.cuda.allow_tf32.conv = tf32
            try:
                return fn()
            finally:
                be.conv_algo, minidl.cuda.allow_tf32.conv = old

        if half:  # 16-bit inputs; the float32 reference is computed from the same rounded values
            x, w, gy = (be.astype(a, minidl.dtypes.dtype(half)) for a in (x, w, gy))
        rtol = 2e-2 if half else 3e-3 if tf32 else 1e-3

        def f32(a):
            return be.astype(a, np.float32) if half else a

        def check():
            xh, wh, gh = (ctx.host(a).astype(np.float32) for a in (x[:m], w, gy[:m]))
            xs, ws, gs = (be.asarray(ctx.host(a)) for a in (x[:m], w, gy[:m]))
            if mode == "fwd":
                _close_scaled(ctx, f32(call(lambda: be.conv2d_forward(xs, ws, geometry(m)))),
                              ctx.cpu.conv2d_forward(xh, wh, geometry(m)), rtol=rtol, what="y")
            else:
                dx, dw = call(lambda: be.conv2d_backward(xs, ws, gs, geometry(m)))
                rdx, rdw = ctx.cpu.conv2d_backward(xh, wh, gh, geometry(m))
                _close_scaled(ctx, f32(dx), rdx, rtol=rtol, what="dx")
                _close_scaled(ctx, f32(dw), rdw, rtol=rtol, what="dw")

        if mode == "fwd":
            def run():
                return call(lambda: be.conv2d_forward(x, w, g))
        else:
            def run():
                return call(lambda: be.conv2d_backward(x, w, gy, g))
        tr = None
        if ctx.torch is not None:
            t = ctx.torch
            tx, tw, tg = ctx.t(x), ctx.t(w), ctx.t(gy)
            if half:
                tx, tw, tg = (a.to(getattr(t, half)) for a in (tx, tw, tg))
            if mode == "fwd":
                def tr():
                    return t.nn.functional.conv2d(tx, tw, None, stride, pad, 1, gg)
            else:
                def tr():
                    return t.ops.aten.convolution_backward(tg, tx, tw, None, [stride] * 2, [pad] * 2, [1, 1],
                                                           False, [0, 0], gg, [True, True, False])
        notes = ("dx+dw" if mode == "bwd" else "y") + (f", {algo}" if algo else "")
        torch_notes = f"; torch: cuDNN {half}" if half else ("; torch: cuDNN TF32" if tf32 else "; torch: cuDNN fp32")
        return Case(run, flops=flops, torch_run=tr, check=check, notes=notes + torch_notes)
    return make


for _n in (B, B50):
    for _args in ((64, 56, 64, 3, 1, 1), (256, 56, 64, 1, 1, 0), (3, 224, 64, 7, 2, 3), (512, 7, 512, 3, 1, 1)):
        _c, _hw, _o, _k, _s, _p = _args
        for _mode in ("fwd", "bwd"):
            entry("conv", f"conv {_k}x{_k}/{_s} {_c}->{_o} {_mode}", f"({_n},{_c},{_hw},{_hw})")(
                _conv_entry(_n, _c, _hw, _o, _k, _s, _p, mode=_mode))
for _args in ((64, 56, 64, 3, 1, 1), (256, 56, 64, 1, 1, 0), (3, 224, 64, 7, 2, 3), (512, 7, 512, 3, 1, 1),
              (128, 56, 128, 3, 2, 1)):  # the fallback path, for choosing between the two
    _c, _hw, _o, _k, _s, _p = _args
    for _mode in ("fwd", "bwd"):
        entry("conv", f"conv {_k}x{_k}/{_s} {_c}->{_o} {_mode} (im2col+cuBLAS)", f"({B},{_c},{_hw},{_hw})")(
            _conv_entry(B, _c, _hw, _o, _k, _s, _p, mode=_mode, algo="im2col"))
for _args in ((64, 56, 256, 1, 1, 0), (128, 56, 128, 3, 2, 1), (256, 14, 256, 3, 1, 1)):  # ResNet-50 layers
    _c, _hw, _o, _k, _s, _p = _args
    for _mode in ("fwd", "bwd"):
        entry("conv", f"conv {_k}x{_k}/{_s} {_c}->{_o} {_mode}", f"({B50},{_c},{_hw},{_hw})")(
            _conv_entry(B50, _c, _hw, _o, _k, _s, _p, mode=_mode))
for _args in ((64, 56, 64, 3, 1, 1), (128, 56, 128, 3, 2, 1), (256, 14, 256, 3, 1, 1), (512, 7, 512, 3, 1, 1),
              (3, 224, 64, 7, 2, 3)):  # the tensor-core kernels (kernels/conv_tc.cuh), ResNet-50's shapes
    _c, _hw, _o, _k, _s, _p = _args
    for _mode in ("fwd", "bwd"):
        entry("conv", f"conv {_k}x{_k}/{_s} {_c}->{_o} {_mode} TF32", f"({B50},{_c},{_hw},{_hw})", "tf32")(
            _conv_entry(B50, _c, _hw, _o, _k, _s, _p, mode=_mode, algo="igemm", tf32=True))
        for _half in ("float16", "bfloat16"):
            entry("conv", f"conv {_k}x{_k}/{_s} {_c}->{_o} {_mode} {_half}", f"({B50},{_c},{_hw},{_hw})", "16bit")(
                _conv_entry(B50, _c, _hw, _o, _k, _s, _p, mode=_mode, algo="igemm", half=_half))
for _n in (B, B50):
    for _mode in ("fwd", "bwd"):
        entry("depthwise", f"depthwise 3x3/1 144 {_mode}", f"({_n},144,56,56)")(
            _conv_entry(_n, 144, 56, 144, 3, 1, 1, groups=144, mode=_mode))


def _maxpool_entry(shape_full):
    def make(ctx):
        shape = ctx.pick((2, 3, 11, 11), shape_full)
        x = ctx.randn(*shape)
        be = ctx.be
        g = PoolGeometry.create(shape, (3, 3), (2, 2), (1, 1), False)
        y, am = be.max_pool2d_forward(x, g)
        gy = ctx.randn(*y.shape)

        def check():
            ry, ram = ctx.cpu.max_pool2d_forward(ctx.host(x), g)
            ctx.close(y, ry, what="y")
            np.testing.assert_array_equal(ctx.host(am), ram, err_msg="argmax")
            ctx.close(be.max_pool2d_backward(gy, am, g), ctx.cpu.max_pool2d_backward(ctx.host(gy), ram, g),
                      what="dx")

        def run():
            yy, aa = be.max_pool2d_forward(x, g)
            be.max_pool2d_backward(gy, aa, g)
        tr = None
        if ctx.torch is not None:
            tx, tg = ctx.t(x).clone().requires_grad_(True), ctx.t(gy)

            def tr():
                out = ctx.torch.nn.functional.max_pool2d(tx, 3, 2, 1)
                ctx.torch.autograd.grad(out, tx, tg)
        nx, ny = int(np.prod(shape)), int(np.prod(y.shape))
        # fwd: x -> y, argmax; bwd: gy, argmax -> dx
        return Case(run, bytes=(2 * nx + 4 * ny) * 4, torch_run=tr, check=check, notes="fwd+bwd, pad 1")
    return make


entry("pool", "maxpool 3x3/2 fwd+bwd", f"({B},64,112,112)")(_maxpool_entry((B, 64, 112, 112)))
entry("pool", "maxpool 3x3/2 fwd+bwd", f"({B50},64,112,112)")(_maxpool_entry((B50, 64, 112, 112)))


def _avgpool_entry(shape_full, kernel, stride, padding):
    def make(ctx):
        shape = ctx.pick((2, 3, 11, 11), shape_full)
        x = ctx.randn(*shape)
        be = ctx.be
        g = PoolGeometry.create(shape, (kernel,) * 2, (stride,) * 2, (padding,) * 2, False)
        gy = ctx.randn(*g.y_shape)

        def check():
            ctx.close(be.avg_pool2d_forward(x, g, True), ctx.cpu.avg_pool2d_forward(ctx.host(x), g, True), what="y")
            ctx.close(be.avg_pool2d_backward(gy, g, True), ctx.cpu.avg_pool2d_backward(ctx.host(gy), g, True),
                      what="dx")

        def run():
            be.avg_pool2d_forward(x, g, True)
            be.avg_pool2d_backward(gy, g, True)
        tr = None
        if ctx.torch is not None:
            tx, tg = ctx.t(x).clone().requires_grad_(True), ctx.t(gy)

            def tr():
                out = ctx.torch.nn.functional.avg_pool2d(tx, kernel, stride, padding)
                ctx.torch.autograd.grad(out, tx, tg)
        nx, ny = int(np.prod(shape)), int(np.prod(g.y_shape))
        # fwd: x -> y; bwd: gy -> dx
        return Case(run, bytes=(2 * nx + 2 * ny) * 4, torch_run=tr, check=check, notes="fwd+bwd")
    return make


# Inception-v3's 3x3/1 branch pooling at 35x35, DenseNet-121's 2x2/2 transition
entry("pool", "avgpool 3x3/1 pad 1 fwd+bwd", f"({B50},192,35,35)")(_avgpool_entry((B50, 192, 35, 35), 3, 1, 1))
entry("pool", "avgpool 2x2/2 fwd+bwd", f"({B50},128,56,56)")(_avgpool_entry((B50, 128, 56, 56), 2, 2, 0))


@entry("pool", "global avgpool fwd+bwd", f"({B50},2048,7,7)")
def _gap(ctx):
    shape = ctx.pick((2, 40, 5, 5), (B50, 2048, 7, 7))
    x, gy = ctx.randn(*shape), ctx.randn(shape[0], shape[1], 1, 1)
    be = ctx.be
    g = PoolGeometry.adaptive(shape, (1, 1))

    def check():
        ctx.close(be.adaptive_avg_pool2d_forward(x, g), ctx.cpu.adaptive_avg_pool2d_forward(ctx.host(x), g))
        ctx.close(be.adaptive_avg_pool2d_backward(gy, g), ctx.cpu.adaptive_avg_pool2d_backward(ctx.host(gy), g))

    def run():
        be.adaptive_avg_pool2d_forward(x, g)
        be.adaptive_avg_pool2d_backward(gy, g)
    tr = None
    if ctx.torch is not None:
        tx, tg = ctx.t(x).clone().requires_grad_(True), ctx.t(gy)

        def tr():
            out = ctx.torch.nn.functional.adaptive_avg_pool2d(tx, 1)
            ctx.torch.autograd.grad(out, tx, tg)
    n = int(np.prod(shape))
    return Case(run, bytes=2 * n * 4, torch_run=tr, check=check, notes="fwd+bwd")


@entry("lrn", "LRN size 5 fwd+bwd", f"({B},96,55,55)")
def _lrn(ctx):
    shape = ctx.pick((2, 7, 5, 6), (B, 96, 55, 55))
    x, gy = ctx.randn(*shape), ctx.randn(*shape)
    be, args = ctx.be, (5, 1e-4, 0.75, 2.0)
    y, s = be.lrn_forward(x, *args)

    def check():
        ry, rs = ctx.cpu.lrn_forward(ctx.host(x), *args)
        ctx.close(y, ry, what="y")
        ctx.close(s, rs, what="scale")
        ctx.close(be.lrn_backward(x, y, s, gy, *args),
                  ctx.cpu.lrn_backward(ctx.host(x), ry, rs, ctx.host(gy), *args), what="dx")

    def run():
        yy, ss = be.lrn_forward(x, *args)
        be.lrn_backward(x, yy, ss, gy, *args)
    tr = None
    if ctx.torch is not None:
        tx, tg = ctx.t(x).clone().requires_grad_(True), ctx.t(gy)

        def tr():
            out = ctx.torch.nn.functional.local_response_norm(tx, 5, 1e-4, 0.75, 2.0)
            ctx.torch.autograd.grad(out, tx, tg)
    n = int(np.prod(shape))
    # fwd: x -> y, scale; bwd: x, y, scale, gy -> dx
    return Case(run, bytes=8 * n * 4, torch_run=tr, check=check, notes="fwd+bwd; torch LRN is composite")
# ================================================================ end conv helper: entries


# ================================================================ timing
def _events_time(fn, iters, warmup=3):
    import cupy
    for _ in range(warmup):
        fn()
    cupy.cuda.get_current_stream().synchronize()
    times = []
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))  # ms
    return statistics.median(times)


def _torch_time(torch, fn, iters, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def measure_rooflines(ctx):
    import cupy
    n = 256 * 1024 * 1024 // 4  # 256 MiB of float32
    a = cupy.random.standard_normal(n, dtype=cupy.float32)
    b = cupy.empty_like(a)
    ms = _events_time(lambda: cupy.copyto(b, a), 10)
    copy_gbs = 2 * a.nbytes / (ms * 1e-3) / 1e9
    gemm_tflops, how = None, None
    m = 8192
    if ctx.torch is not None:
        t = ctx.torch
        x = t.randn(m, m, device="cuda", dtype=t.bfloat16)
        y = t.randn(m, m, device="cuda", dtype=t.bfloat16)
        ms = _torch_time(t, lambda: x @ y, 10)
        gemm_tflops, how = 2 * m ** 3 / (ms * 1e-3) / 1e12, "torch bf16 matmul"
    else:
        x = cupy.random.standard_normal((m, m), dtype=cupy.float32).astype(cupy.float16)
        ms = _events_time(lambda: cupy.matmul(x, x), 10)
        gemm_tflops, how = 2 * m ** 3 / (ms * 1e-3) / 1e12, "cupy fp16 matmul (no torch)"
    return dict(copy_GBps=copy_gbs, gemm_TFLOPs=gemm_tflops, gemm_how=how)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "emu"])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--only", default=None, help="substring of entry names")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--profile", action="store_true",
                    help="emu only: profile the memory-bound kernels (writes emu_profile.{md,json} into --out)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.profile:
        if args.device != "emu":
            ap.error(f"--profile needs --device emu, got --device {args.device}")
        import kernel_profile
        kernel_profile.run(ENTRIES, Ctx("emu", "profile"), args.out, args.only)
        return 0
    ctx = Ctx(args.device, "tiny" if args.device == "emu" else "full")
    meta = dict(device=args.device, python=platform.python_version(), minidl=minidl.__version__,
                time=time.strftime("%Y-%m-%d %H:%M:%S"))
    roof = None
    if args.device == "cuda":
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        meta["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        meta["torch"] = ctx.torch.__version__ if ctx.torch is not None else None
        roof = measure_rooflines(ctx)
        meta.update(roof)
        print(f"# {meta['gpu']}: copy {roof['copy_GBps']:.0f} GB/s, GEMM {roof['gemm_TFLOPs']:.0f} TFLOP/s "
              f"({roof['gemm_how']})", flush=True)
    rows = []
    for e in ENTRIES:
        label = f"{e['family']}: {e['name']} {e['shape']}"
        if args.only and args.only not in label:
            continue
        row = dict(family=e["family"], name=e["name"], shape=e["shape"])
        try:
            case = e["make"](ctx)
            row["notes"] = case.notes
            if case.check is not None:
                case.check()
            row["check"] = "ok"
            if args.device == "cuda":
                ms = _events_time(case.run, args.iters)
                row["ms"] = ms
                if case.flops:
                    row["TFLOPs"] = case.flops / (ms * 1e-3) / 1e12
                    row["frac_roofline"] = row["TFLOPs"] / roof["gemm_TFLOPs"]
                    peak = tensor_core_peak(meta.get("gpu"), e["tc_format"])
                    if peak:
                        row["frac_tensor_core_peak"] = row["TFLOPs"] / peak
                else:
                    row["GBps"] = case.bytes / (ms * 1e-3) / 1e9
                    row["frac_roofline"] = row["GBps"] / roof["copy_GBps"]
                if case.torch_run is not None:
                    tms = _torch_time(ctx.torch, case.torch_run, args.iters)
                    row["torch_ms"] = tms
                    row["ratio_vs_torch"] = ms / tms
        except Exception as ex:  # keep going: report the failure in the table
            row["check"] = f"FAILED: {type(ex).__name__}: {str(ex).splitlines()[0][:200]}"
        rows.append(row)
        print(_md_row(row, args.device), flush=True)
    with open(os.path.join(args.out, f"kernels_{args.device}.json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    with open(os.path.join(args.out, f"kernels_{args.device}.md"), "w") as f:
        f.write(f"# minidl kernels on {args.device}\n\n")
        f.write("".join(f"- {k}: {v}\n" for k, v in meta.items()))
        f.write("\n" + _md_header(args.device) + "\n")
        f.write("\n".join(_md_row(r, args.device) for r in rows) + "\n")
        if args.device == "emu":
            f.write("\nemu: correctness only (tiny shapes), no timings.\n")
    failed = [r for r in rows if r["check"] != "ok"]
    return 1 if failed else 0


# Dense tensor-core peaks from NVIDIA's datasheets, TFLOP/s: (TF32, FP16/BF16), by a
# substring of the device name (SXM parts; the PCIe H100 is slower).
TENSOR_CORE_PEAKS = (("H100 PCIe", (378.0, 756.0)), ("H200", (494.7, 989.4)), ("H100", (494.7, 989.4)),
                     ("A100", (156.0, 312.0)))


def tensor_core_peak(gpu_name, tc_format):
    """The card's dense tensor-core peak for an entry's tc_format ("tf32", "16bit"), or None."""
    for key, peaks in TENSOR_CORE_PEAKS:
        if tc_format is not None and key in (gpu_name or ""):
            return peaks[0 if tc_format == "tf32" else 1]
    return None


def _md_header(device):
    if device == "emu":
        return "| family | op | shape | check |\n|---|---|---|---|"
    return ("| family | op | shape | ms | GB/s or TFLOP/s | of roofline | torch ms | ratio vs torch | check |\n"
            "|---|---|---|---|---|---|---|---|---|")


def _md_row(r, device):
    if device == "emu":
        return f"| {r['family']} | {r['name']} | {r['shape']} (tiny on emu) | {r['check']} |"
    f = lambda v, p=3: "" if v is None else f"{v:.{p}g}"
    rate = f"{r['TFLOPs']:.1f} TFLOP/s" if "TFLOPs" in r else (f"{r['GBps']:.0f} GB/s" if "GBps" in r else "")
    frac = f"{100 * r['frac_roofline']:.0f}%" if "frac_roofline" in r else ""
    if "frac_tensor_core_peak" in r:
        frac += f" ({100 * r['frac_tensor_core_peak']:.0f}% of TC peak)"
    return (f"| {r['family']} | {r['name']} | {r['shape']} | {f(r.get('ms'))} | {rate} | {frac} | "
            f"{f(r.get('torch_ms'))} | {f(r.get('ratio_vs_torch'))} | {r['check']} |")


if __name__ == "__main__":
    sys.exit(main())
