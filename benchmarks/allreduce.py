"""All-reduce cost of data-parallel training: DDP's bucketed gradient all-reduce against a
raw all-reduce of the same bytes, and a resnet18 training step on 1 rank against N ranks.

    python benchmarks/allreduce.py [--ranks 2] [--rounds 3] [--batch 8] [--image-size 64]

The driver starts ``mpiexec -n 1`` and ``mpiexec -n N`` workers of this script in
alternating rounds and reports medians.  On a machine with fewer cores than ranks x
threads (this project's 2-core CI machine) the ranks share cores, so the step times do not
show a speed-up; what they show is the share of a step spent in communication.
Results: benchmarks/results/<device>/allreduce.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np


def worker(args):
    import minidl
    import minidl.distributed as dist
    import minidl.functional as F
    import minidl.models as models
    g = dist.init_process_group("auto", device=args.device)
    rank, world = g.rank, g.size
    minidl.manual_seed(0)
    model = models.create("resnet18").to(args.device)
    params = [p for p in model.parameters()]
    nbytes = sum(int(p.numel()) * 4 for p in params)
    out = dict(world=world, gradient_mb=nbytes / 2**20)

    # raw all-reduce of one buffer with the gradients' bytes
    buf = np.ones(nbytes // 4, np.float32)
    times = []
    for _ in range(args.reps + 1):
        g.barrier()
        t0 = time.perf_counter()
        g.all_reduce(buf, "sum").wait()
        times.append(time.perf_counter() - t0)
    out["raw_allreduce_ms"] = statistics.median(times[1:]) * 1e3

    # DDP's bucketed reduction of the same gradients, driven through its hooks
    ddp = dist.DistributedDataParallel(model)
    times = []
    for _ in range(args.reps + 1):
        for p in params:
            p.grad = minidl.ones(*p.shape, device=args.device)
        g.barrier()
        t0 = time.perf_counter()
        for p in reversed(params):
            ddp._grad_ready(p)
        times.append(time.perf_counter() - t0)
    out["ddp_buckets"] = len(ddp._buckets)
    out["ddp_allreduce_ms"] = statistics.median(times[1:]) * 1e3

    # whole training steps, per-rank batch args.batch
    rng = np.random.default_rng(rank)
    x = minidl.tensor(rng.standard_normal((args.batch, 3, args.image_size, args.image_size)).astype(np.float32),
                      device=args.device)
    y = minidl.tensor(rng.integers(0, 1000, args.batch), device=args.device)
    opt = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for _ in range(args.reps + 1):
        g.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    out["step_ms"] = statistics.median(times[1:]) * 1e3
    if rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per worker (after one warm-up)")
    ap.add_argument("--batch", type=int, default=8, help="per-rank batch of the training step")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = here if os.access(here, os.X_OK) else shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("allreduce: mpiexec not found (pip install -e '.[distributed]')")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--reps", str(args.reps), "--batch",
           str(args.batch), "--image-size", str(args.image_size), "--device", args.device]
    threads = max(1, (os.cpu_count() or 1) // args.ranks)
    runs = {1: [], args.ranks: []}
    for _ in range(args.rounds):
        for n in (1, args.ranks):
            env = dict(os.environ, MINIDL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
            proc = subprocess.run([mpiexec, "-n", str(n)] + cmd, capture_output=True, text=True, env=env)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                sys.exit(f"allreduce: the {n}-rank worker failed:\n{proc.stdout}\n{proc.stderr}")
            runs[n].append(json.loads(line[7:]))
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    one, many = med[1], med[args.ranks]
    mb = many["gradient_mb"]
    bus = 2 * (args.ranks - 1) / args.ranks
    rows = [
        ("gradient bytes (resnet18, float32)", f"{mb:.1f} MB in {int(many['ddp_buckets'])} buckets of <= 25 MB"),
        (f"raw all-reduce, {args.ranks} ranks", f"{many['raw_allreduce_ms']:.1f} ms "
         f"({mb / 1024 / (many['raw_allreduce_ms'] / 1e3):.2f} GB/s algorithm, "
         f"{bus * mb / 1024 / (many['raw_allreduce_ms'] / 1e3):.2f} GB/s bus)"),
        (f"DDP bucketed all-reduce, {args.ranks} ranks", f"{many['ddp_allreduce_ms']:.1f} ms "
         f"({many['ddp_allreduce_ms'] / many['raw_allreduce_ms']:.2f}x the raw all-reduce)"),
        (f"resnet18 step at {args.image_size} px, batch {args.batch}/rank, 1 rank", f"{one['step_ms']:.0f} ms"),
        (f"same, {args.ranks} ranks", f"{many['step_ms']:.0f} ms"),
        ("communication share of the N-rank step", f"{many['ddp_allreduce_ms'] / many['step_ms']:.1%} "
         "(bucketed all-reduce time / step time, an upper bound: part of it overlaps backward)"),
    ]
    device = "cpu" if args.device == "cpu" else "gpu"
    out_dir = args.out_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", device)
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(machine=dict(platform=platform.platform(), cpus=os.cpu_count(), threads_per_rank=threads),
                ranks=args.ranks, rounds=args.rounds, reps=args.reps, medians={str(k): v for k, v in med.items()},
                date=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(os.path.join(out_dir, "allreduce.json"), "w") as f:
        json.dump(meta, f, indent=1)
    table = "\n".join([f"Machine: {meta['machine']}; MPI ranks on one machine; median of {args.rounds} "
                       f"alternating rounds; {meta['date']}.", "", "| what | measured |", "|---|---|"]
                      + [f"| {a} | {b} |" for a, b in rows]) + "\n"
    with open(os.path.join(out_dir, "allreduce.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
