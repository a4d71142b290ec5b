"""CPU op benchmark: minidl against PyTorch-CPU (optional) on layer shapes of the zoo's
models (ResNet, VGG, MobileNet convolutions, AlexNet LRN, ...; see CASES), or on every
convolution and linear layer of one zoo model (--model).

    python benchmarks/cpu_ops.py [--rounds 7] [--reps 3] [--only 'conv 3x3'] [--torch-python PY]
    python benchmarks/cpu_ops.py --split-backward          # the two gradients of each conv apart
    python benchmarks/cpu_ops.py --model alexnet_owt --batch 16   # that model's layers

Each op is timed forward and forward+backward at batch 8.  With --split-backward a
convolution is also timed as forward + input gradient (``fwd+dx``: the weight takes no
gradient) and forward + weight gradient (``fwd+dw``: the input takes none), as a
network's first layer is.  --model times each distinct convolution and linear layer
of a model (as its forward calls them, at --batch and --image-size) in those three
modes, and sums them over the layers, each times its number of uses.  PyTorch, when
it is installed, runs in a separate process (its OpenMP pool and NumPy's OpenBLAS
pool spin-wait and steal from each other when calls alternate in one process).
The two sides alternate in blocks: minidl block, torch block, minidl block, ...
and each reports the median over all its blocks.  Results go to
benchmarks/results/cpu_ops.json (--model: benchmarks/results/cpu/layers_<model>.json)
and a markdown table to stdout.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections import Counter

import numpy as np

N = 8


def _conv(c, o, hw, k, s, p, groups=1, n=N):
    """A square convolution's case spec (x and w shapes, stride, padding (t, b, l, r), ...)."""
    return ("conv", dict(x=(n, c, hw, hw), w=(o, c // groups, k, k), stride=(s, s), padding=(p,) * 4,
                         dilation=(1, 1), groups=groups))


# name -> (kind, spec)
CASES = {
    "conv 3x3 64->64 @56": _conv(64, 64, 56, 3, 1, 1),
    "conv 1x1 256->64 @56": _conv(256, 64, 56, 1, 1, 0),
    "7x7/2 stem 3->64 @224": _conv(3, 64, 224, 7, 2, 3),
    "conv 3x3 512->512 @7": _conv(512, 512, 7, 3, 1, 1),
    "depthwise 3x3 144 @56": _conv(144, 144, 56, 3, 1, 1, groups=144),
    "maxpool 3x3/2 (8,64,112,112)": ("maxpool", dict(c=64, hw=112)),
    "LRN 5 (8,96,55,55)": ("lrn", dict(c=96, hw=55)),
    "BN-train (8,64,112,112)": ("bn", dict(c=64, hw=112)),
    "BN-train (64,512,2,2)": ("bn", dict(c=512, hw=2, n=64)),  # (ResNet-18's last stage at 64 px)
    "softmax-CE (256,1000)": ("ce", dict(n=256, k=1000)),
}
# the modes of a case: forward, and forward + backward (all of its gradients, or one)
SPLIT_MODES = ("fwd+dx", "fwd+dw")


def model_cases(name, batch, image_size):
    """The distinct convolutions and linear layers of zoo model ``name`` as its forward
    calls them on a (batch, 3, image_size, image_size) input -> ({case name: (kind,
    spec)}, {case name: uses}).  Recorded by minidl.summary's trace of one shape-only
    forward at batch 1 (its per-module rules see each call's input), then given the batch."""
    import minidl
    from minidl import models
    from minidl.autograd.geometry import conv_geometry
    from minidl.nn import Conv2d, Linear
    from minidl.tools.summary import MAC_RULES

    calls = []

    def conv(module, args, out):
        g = conv_geometry(args[0].shape, module.weight.shape, module.stride, module.padding, module.dilation,
                          module.groups)
        calls.append(("conv", dict(x=(batch,) + tuple(g.x_shape[1:]), w=tuple(g.w_shape), stride=g.stride,
                                   padding=g.padding, dilation=g.dilation, groups=g.G)))
        return MAC_RULES[Conv2d](module, args, out)

    def linear(module, args, out):
        x = args[0]
        rows = batch * int(np.prod(x.shape[:-1], dtype=np.int64))
        calls.append(("linear", dict(x=(rows, x.shape[-1]), w=tuple(module.weight.shape))))
        return MAC_RULES[Linear](module, args, out)

    minidl.summary(models.create(name), (3, image_size, image_size), print_table=False, shape_only=True,
                   custom_macs={Conv2d: conv, Linear: linear})
    uses = Counter(_case_name(kind, spec) for kind, spec in calls)
    cases = {_case_name(kind, spec): (kind, spec) for kind, spec in calls}
    return cases, uses


def _case_name(kind, spec):
    if kind == "linear":
        return f"linear {spec['x'][1]}->{spec['w'][0]} ({spec['x'][0]} rows)"
    n, c, h, w = spec["x"]
    o, _, kh, kw = spec["w"]
    sh, sw = spec["stride"]
    pt, pb, pl, pr = spec["padding"]
    dh, dw = spec["dilation"]
    window = f"{kh}x{kw}" + (f"/{sh}" if sh == sw else f"/({sh},{sw})") * (sh * sw > 1)
    pad = f"p{pt}" if pt == pb == pl == pr else f"p({pt},{pb},{pl},{pr})"
    extra = (f" d{dh}" if dh * dw > 1 else "") + (f" g{spec['groups']}" if spec["groups"] > 1 else "")
    return f"conv {window} {c}->{o} @{h}x{w} {pad}{extra} b{n}"


def _inputs(kind, spec, seed=0):
    rng = np.random.default_rng(seed)
    f = np.float32
    if kind in ("conv", "linear"):
        x = rng.standard_normal(spec["x"]).astype(f)
        w = (rng.standard_normal(spec["w"]) * 0.1).astype(f)
        return dict(x=x, w=w)
    if kind in ("maxpool", "lrn", "bn"):
        return dict(x=rng.standard_normal((spec.get("n", N), spec["c"], spec["hw"], spec["hw"])).astype(f))
    return dict(x=rng.standard_normal((spec["n"], spec["k"])).astype(f),
                labels=rng.integers(0, spec["k"], spec["n"]))


class _Framework:
    """The few calls where minidl and PyTorch differ; the functional APIs match."""

    def __init__(self, name):
        self.name = name
        if name == "minidl":
            import minidl
            import minidl.functional as F
            self.F, self.no_grad = F, minidl.no_grad
            self.tensor = lambda a, grad=False: minidl.tensor(a, requires_grad=grad)
            self.ones = lambda c: minidl.ones(c, requires_grad=True)
            self.zeros = lambda c, grad=True: minidl.zeros(c, requires_grad=grad)
        else:
            import torch
            import torch.nn.functional as F
            self.F, self.no_grad = F, torch.no_grad
            self.tensor = lambda a, grad=False: torch.tensor(a, requires_grad=grad)
            self.ones = lambda c: torch.ones(c, requires_grad=True)
            self.zeros = lambda c, grad=True: torch.zeros(c, requires_grad=grad)


def _fns(framework, kind, spec):
    """-> {mode: closure} of one case in one framework: "fwd", "fwd+bwd", and for
    convolutions and linear layers "fwd+dx" and "fwd+dw"."""
    fw, F = framework, framework.F
    arrs = _inputs(kind, spec)
    x = fw.tensor(arrs["x"], grad=True)
    with_weight = kind in ("conv", "linear")
    if with_weight:
        w = fw.tensor(arrs["w"], grad=True)
        x_fixed, w_fixed = fw.tensor(arrs["x"]), fw.tensor(arrs["w"])
    if kind == "conv":
        op = _conv_op(fw, spec)
    elif kind == "linear":
        op = lambda xx, ww: F.linear(xx, ww)
    elif kind == "maxpool":
        op = lambda xx: F.max_pool2d(xx, 3, 2)
    elif kind == "lrn":
        op = lambda xx: F.local_response_norm(xx, 5, alpha=1e-4, beta=0.75, k=2.0)
    elif kind == "bn":
        gamma, beta = fw.ones(spec["c"]), fw.zeros(spec["c"])
        rm, rv = fw.zeros(spec["c"], grad=False), fw.ones(spec["c"]).detach()
        op = lambda xx: F.batch_norm(xx, rm, rv, gamma, beta, training=True)
    else:
        labels = fw.tensor(arrs["labels"])
        op = lambda xx: F.cross_entropy(xx, labels)
    inputs = {"fwd": (x, w) if with_weight else (x,)}
    inputs["fwd+bwd"] = inputs["fwd"]
    if with_weight:
        inputs.update({"fwd+dx": (x, w_fixed), "fwd+dw": (x_fixed, w)})
    with fw.no_grad():
        y0 = op(*inputs["fwd"])
    gy = fw.tensor(np.random.default_rng(1).standard_normal(tuple(y0.shape)).astype(np.float32))

    def fwd():
        with fw.no_grad():
            op(*inputs["fwd"])

    def backward_of(args):
        def run():
            for a in args:
                a.grad = None
            op(*args).backward(gy)
        return run

    fns = {mode: backward_of(args) for mode, args in inputs.items() if mode != "fwd"}
    fns["fwd"] = fwd
    return fns


def _conv_op(fw, spec):
    """The convolution of ``spec``; PyTorch takes asymmetric padding (TF-style "same"
    at stride 2) as an explicit pad before it."""
    pt, pb, pl, pr = spec["padding"]
    args = dict(stride=spec["stride"], dilation=spec["dilation"], groups=spec["groups"])
    if fw.name == "minidl" or (pt == pb and pl == pr):
        padding = spec["padding"] if fw.name == "minidl" else (pt, pl)
        return lambda xx, ww: fw.F.conv2d(xx, ww, None, padding=padding, **args)
    return lambda xx, ww: fw.F.conv2d(fw.F.pad(xx, (pl, pr, pt, pb)), ww, None, padding=0, **args)


def _time_block(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _torch_worker(conn, threads, same_malloc):
    if same_malloc:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from train_step import malloc_as_minidl
        malloc_as_minidl()
    import sysconfig
    for key in ("platlib", "purelib"):  # spawn copied the parent's sys.path: put this interpreter's first
        sys.path.insert(0, sysconfig.get_paths()[key])
    import torch
    torch.set_num_threads(threads)
    fns = {}
    framework = _Framework("torch")
    conn.send(("ready", str(torch.__version__)))  # (a TorchVersion would need torch to unpickle)
    while True:
        msg = conn.recv()
        if msg is None:
            return
        name, kind, spec, mode, reps = msg
        if name not in fns:
            fns[name] = _fns(framework, kind, spec)
            for f in fns[name].values():
                f()  # warm-up
        conn.send(_time_block(fns[name][mode], reps))


def _modes(kind, weighted_modes):
    """The modes of a case: ``weighted_modes`` for convolutions and linear layers."""
    return weighted_modes if kind in ("conv", "linear") else ("fwd", "fwd+bwd")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="alternating blocks per side")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per block")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None,
                    help="run only the cases whose name contains this text, case-insensitive")
    ap.add_argument("--split-backward", action="store_true",
                    help="also time each convolution's input and weight gradients apart (fwd+dx, fwd+dw)")
    ap.add_argument("--model", default=None,
                    help="instead of CASES, every distinct convolution and linear layer of this zoo model")
    ap.add_argument("--batch", type=int, default=16, help="with --model: the batch size")
    ap.add_argument("--image-size", type=int, default=224, help="with --model: the input's side")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-python", default=None,
                    help="interpreter with torch, for PyTorch's side (default: this one)")
    ap.add_argument("--torch-malloc", choices=("minidl", "default"), default="minidl",
                    help="PyTorch's glibc malloc: minidl's settings (default; train_step.malloc_as_minidl) or glibc's own")
    ap.add_argument("--out", default=None,
                    help="the JSON results (default benchmarks/results/cpu_ops.json; with --model "
                         "benchmarks/results/cpu/layers_<model>.json)")
    args = ap.parse_args(argv)
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    if args.out is None:
        args.out = (os.path.join(results, "cpu", f"layers_{args.model}.json") if args.model
                    else os.path.join(results, "cpu_ops.json"))
    if args.model is None:  # (selected before PyTorch starts: a typo fails at once)
        cases, uses, selected = CASES, None, _select(ap, args.only, CASES)
        weighted_modes = ("fwd", "fwd+bwd") + (SPLIT_MODES if args.split_backward else ())

    torch_conn = torch_version = None
    if not args.no_torch:
        try:
            import importlib.util
            if args.torch_python or importlib.util.find_spec("torch") is not None:
                ctx = mp.get_context("spawn")
                ctx.set_executable(args.torch_python or sys.executable)
                torch_conn, child = ctx.Pipe()
                proc = ctx.Process(target=_torch_worker, args=(child, args.threads, args.torch_malloc == "minidl"),
                                   daemon=True)
                proc.start()
                _, torch_version = torch_conn.recv()
        except Exception as e:  # the comparison is optional, never required
            print(f"# PyTorch comparison disabled: {e}", file=sys.stderr)
            torch_conn = None
    if torch_conn is None:
        print("# PyTorch is not installed: printing minidl times only", file=sys.stderr)

    os.environ["MINIDL_NUM_THREADS"] = str(args.threads)  # read when minidl is imported
    framework = _Framework("minidl")
    # (after minidl's import, which sets OMP_WAIT_POLICY for the pool this starts)
    import numba
    numba.set_num_threads(args.threads)
    if args.model:
        cases, uses = model_cases(args.model, args.batch, args.image_size)
        weighted_modes = ("fwd",) + SPLIT_MODES
        try:
            selected = _select(ap, args.only, cases)
        except SystemExit:
            if torch_conn is not None:
                torch_conn.send(None)
            raise
    rows = []
    for name in selected:
        kind, spec = cases[name]
        fns = _fns(framework, kind, spec)
        for f in fns.values():
            f()  # warm-up (and Numba compilation)
        for mode in _modes(kind, weighted_modes):
            ours, theirs = [], []
            for _ in range(args.rounds):
                time.sleep(0.02)  # (and the other side's)
                ours += _time_block(fns[mode], args.reps)
                if torch_conn is not None:
                    time.sleep(0.02)  # let OpenBLAS threads stop spinning
                    torch_conn.send((name, kind, spec, mode, args.reps))
                    theirs += torch_conn.recv()
            row = dict(op=name, mode=mode, minidl_ms=statistics.median(ours))
            if uses is not None:
                row["uses"] = uses[name]
            if theirs:
                row["torch_ms"] = statistics.median(theirs)
                row["ratio"] = row["minidl_ms"] / row["torch_ms"]
            rows.append(row)
            print(f"{name:32s} {mode:8s} minidl {row['minidl_ms']:9.2f} ms"
                  + (f"   torch {row['torch_ms']:9.2f} ms   ratio {row['ratio']:.2f}x" if theirs else ""),
                  flush=True)
    if torch_conn is not None:
        torch_conn.send(None)

    totals = _totals(rows) if uses is not None else None
    print(_table(rows, totals))
    result = dict(machine=dict(platform=platform.platform(), processor=platform.processor(),
                               cpus=os.cpu_count(), threads=args.threads),
                  numpy=np.__version__, torch=torch_version, torch_malloc=args.torch_malloc,
                  batch=args.batch if args.model else N, model=args.model, rounds=args.rounds, reps=args.reps,
                  statistic="median ms", rows=rows, date=time.strftime("%Y-%m-%d %H:%M:%S"))
    if totals is not None:
        result["totals"] = totals
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {args.out}")


def _select(ap, only, cases):
    selected = [name for name in cases if only is None or only.lower() in name.lower()]
    if not selected:
        ap.error(f"--only {only!r} matches no case; the cases: {'; '.join(cases)}")
    return selected


def _totals(rows):
    """Per mode, each side's time summed over the layers, each times its uses."""
    totals = {}
    for r in rows:
        t = totals.setdefault(r["mode"], dict(minidl_ms=0.0, torch_ms=0.0 if "torch_ms" in r else None))
        t["minidl_ms"] += r["uses"] * r["minidl_ms"]
        if t["torch_ms"] is not None and "torch_ms" in r:
            t["torch_ms"] += r["uses"] * r["torch_ms"]
    for t in totals.values():
        if t["torch_ms"]:
            t["ratio"] = t["minidl_ms"] / t["torch_ms"]
    return totals


def _table(rows, totals=None):
    """The rows as markdown; with a model's ``totals`` (_totals) a uses column and their table."""
    with_uses = totals is not None

    def cell(r, key, fmt):
        return fmt.format(r[key]) if r.get(key) is not None else "-"

    lines = ["", "| op | " + "uses | " * with_uses + "mode | minidl ms | torch ms | ratio |",
             "|---|" + "---:|" * with_uses + "---|---:|---:|---:|"]
    for r in rows:
        uses = f"{r['uses']} | " if with_uses else ""
        lines.append(f"| {r['op']} | {uses}{r['mode']} | {r['minidl_ms']:.2f} | "
                     f"{cell(r, 'torch_ms', '{:.2f}')} | {cell(r, 'ratio', '{:.2f}')} |")
    if with_uses:
        lines += ["", "Summed over the layers, each times its uses:", "",
                  "| mode | minidl ms | torch ms | ratio |", "|---|---:|---:|---:|"]
        for mode, t in totals.items():
            lines.append(f"| {mode} | {t['minidl_ms']:.1f} | {cell(t, 'torch_ms', '{:.1f}')} | "
                         f"{cell(t, 'ratio', '{:.2f}')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
