"""CPU op benchmark: minidl against PyTorch-CPU (optional) on layer shapes of the zoo's
models (ResNet, VGG, MobileNet convolutions, AlexNet LRN, ...; see CASES).

    python benchmarks/cpu_ops.py [--rounds 7] [--reps 3] [--only 'conv 3x3'] [--torch-python PY]

Each op is timed forward and forward+backward at batch 8.  PyTorch, when it is
installed, runs in a separate process (its OpenMP pool and NumPy's OpenBLAS
pool spin-wait and steal from each other when calls alternate in one process).
The two sides alternate in blocks: minidl block, torch block, minidl block, ...
and each reports the median over all its blocks.  Results go to
benchmarks/results/cpu_ops.json and a markdown table to stdout.
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

import numpy as np

N = 8
# name -> (kind, spec)
CASES = {
    "conv 3x3 64->64 @56": ("conv", dict(c=64, o=64, hw=56, k=3, s=1, p=1, groups=1)),
    "conv 1x1 256->64 @56": ("conv", dict(c=256, o=64, hw=56, k=1, s=1, p=0, groups=1)),
    "7x7/2 stem 3->64 @224": ("conv", dict(c=3, o=64, hw=224, k=7, s=2, p=3, groups=1)),
    "conv 3x3 512->512 @7": ("conv", dict(c=512, o=512, hw=7, k=3, s=1, p=1, groups=1)),
    "depthwise 3x3 144 @56": ("conv", dict(c=144, o=144, hw=56, k=3, s=1, p=1, groups=144)),
    "maxpool 3x3/2 (8,64,112,112)": ("maxpool", dict(c=64, hw=112)),
    "LRN 5 (8,96,55,55)": ("lrn", dict(c=96, hw=55)),
    "BN-train (8,64,112,112)": ("bn", dict(c=64, hw=112)),
    "softmax-CE (256,1000)": ("ce", dict(n=256, k=1000)),
}


def _inputs(kind, spec, seed=0):
    rng = np.random.default_rng(seed)
    f = np.float32
    if kind == "conv":
        x = rng.standard_normal((N, spec["c"], spec["hw"], spec["hw"])).astype(f)
        w = (rng.standard_normal((spec["o"], spec["c"] // spec["groups"], spec["k"], spec["k"])) * 0.1).astype(f)
        return dict(x=x, w=w)
    if kind in ("maxpool", "lrn", "bn"):
        return dict(x=rng.standard_normal((N, spec["c"], spec["hw"], spec["hw"])).astype(f))
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
    """-> (forward, forward+backward) closures of one case in one framework."""
    fw, F = framework, framework.F
    arrs = _inputs(kind, spec)
    x = fw.tensor(arrs["x"], grad=True)
    if kind == "conv":
        w = fw.tensor(arrs["w"], grad=True)
        op = lambda: F.conv2d(x, w, None, stride=spec["s"], padding=spec["p"], groups=spec["groups"])
    elif kind == "maxpool":
        op = lambda: F.max_pool2d(x, 3, 2)
    elif kind == "lrn":
        op = lambda: F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=2.0)
    elif kind == "bn":
        gamma, beta = fw.ones(spec["c"]), fw.zeros(spec["c"])
        rm, rv = fw.zeros(spec["c"], grad=False), fw.ones(spec["c"]).detach()
        op = lambda: F.batch_norm(x, rm, rv, gamma, beta, training=True)
    else:
        labels = fw.tensor(arrs["labels"])
        op = lambda: F.cross_entropy(x, labels)
    with fw.no_grad():
        y0 = op()
    gy = fw.tensor(np.random.default_rng(1).standard_normal(tuple(y0.shape)).astype(np.float32))

    def fwd():
        with fw.no_grad():
            op()

    def fwd_bwd():
        x.grad = None
        op().backward(gy)

    return fwd, fwd_bwd


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
        name, mode, reps = msg
        if name not in fns:
            fns[name] = _fns(framework, *CASES[name])
            for f in fns[name]:
                f()  # warm-up
        conn.send(_time_block(fns[name][0 if mode == "fwd" else 1], reps))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="alternating blocks per side")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per block")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None,
                    help="run only the cases whose name contains this text, case-insensitive")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-python", default=None,
                    help="interpreter with torch, for PyTorch's side (default: this one)")
    ap.add_argument("--torch-malloc", choices=("minidl", "default"), default="minidl",
                    help="PyTorch's glibc malloc: minidl's settings (default; train_step.malloc_as_minidl) or glibc's own")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "cpu_ops.json"))
    args = ap.parse_args(argv)
    selected = [name for name in CASES if args.only is None or args.only.lower() in name.lower()]
    if not selected:
        ap.error(f"--only {args.only!r} matches no case; the cases: {'; '.join(CASES)}")

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
    rows = []
    for name in selected:
        kind, spec = CASES[name]
        fns = _fns(framework, kind, spec)
        for f in fns:
            f()  # warm-up (and Numba compilation)
        for mode, fn in (("fwd", fns[0]), ("fwd+bwd", fns[1])):
            ours, theirs = [], []
            for _ in range(args.rounds):
                time.sleep(0.02)  # (and the other side's)
                ours += _time_block(fn, args.reps)
                if torch_conn is not None:
                    time.sleep(0.02)  # let OpenBLAS threads stop spinning
                    torch_conn.send((name, mode, args.reps))
                    theirs += torch_conn.recv()
            row = dict(op=name, mode=mode, minidl_ms=statistics.median(ours))
            if theirs:
                row["torch_ms"] = statistics.median(theirs)
                row["ratio"] = row["minidl_ms"] / row["torch_ms"]
            rows.append(row)
            print(f"{name:32s} {mode:8s} minidl {row['minidl_ms']:9.2f} ms"
                  + (f"   torch {row['torch_ms']:9.2f} ms   ratio {row['ratio']:.2f}x" if theirs else ""),
                  flush=True)
    if torch_conn is not None:
        torch_conn.send(None)

    print("\n| op | mode | minidl ms | torch ms | ratio |\n|---|---|---:|---:|---:|")
    for r in rows:
        t = f"{r['torch_ms']:.2f}" if "torch_ms" in r else "-"
        q = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        print(f"| {r['op']} | {r['mode']} | {r['minidl_ms']:.2f} | {t} | {q} |")
    result = dict(machine=dict(platform=platform.platform(), processor=platform.processor(),
                               cpus=os.cpu_count(), threads=args.threads),
                  numpy=np.__version__, torch=torch_version, torch_malloc=args.torch_malloc, batch=N,
                  rounds=args.rounds, reps=args.reps, statistic="median ms", rows=rows,
                  date=time.strftime("%Y-%m-%d %H:%M:%S"))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
