"""Whole training steps of zoo models: minidl against PyTorch (optional), on the CPU or a GPU.

    python benchmarks/train_step.py --device cpu [--models resnet50,mobilenet_v2] [--batch-sizes 16]
    python benchmarks/train_step.py --device cuda            # batch 64 by default
    python benchmarks/train_step.py --device emu --models resnet18 --batch-sizes 2 --image-size 32
    python benchmarks/train_step.py --torch-python /path/to/venv/bin/python   # torch elsewhere

One step is what a training loop does: zero_grad, forward, cross-entropy with label
smoothing 0.1, backward, SGD (momentum 0.9, weight decay 1e-4), on synthetic data that
stays on the device.  Each framework runs in its own process (on a shared CPU, two
frameworks' thread pools in one process distort both), and the two alternate in rounds:
minidl round, torch round, minidl round, ...; each reports the median and best over all
its timed steps.  GPU steps are timed with CUDA events and a final synchronization, CPU
steps with the wall clock.

PyTorch is a comparison only: it needs torch and torchvision (torchvision's parameter
names are minidl's, so both start from the same weights).  Where they are missing the
script prints minidl alone and says why.  Torch modes: ``strict`` (fp32, TF32 off),
``default`` (cuDNN TF32 and ``cudnn.benchmark`` on; GPU only) and ``amp`` (autocast +
GradScaler + channels_last; GPU only); ``--amp fp16|bf16`` runs minidl's steps under
minidl.amp (autocast + GradScaler, as minidl-train --amp).  Before timing, one forward pass with dropout
and stochastic depth off checks that both frameworks' losses agree in strict fp32.

Reported per model and batch size: images/s (median, best), milliseconds per step,
host time per step (time to enqueue a step; on the CPU it is the step), peak memory
(CPU: the peak resident set of the model's own worker process; GPU: the memory pool's high-water mark)
and, where the backend counts them (cuda, emu), kernel launches and host-device
transfers per step.  ``emu`` runs the CUDA kernels through the host emulation: no
PyTorch comparison and no meaningful speed, but the same launches and transfers as on
a GPU (a smoke test).  Results: benchmarks/results/<device>/train_step.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "vgg16", "alexnet_owt")
# lr 0.01 (AlexNet's and VGG's): at 0.1 their random-init weights overflowed to inf/NaN within the
# timed steps of the CPU run, and steps through overflow and NaN are no training steps
LR, MOMENTUM, WEIGHT_DECAY, SMOOTHING = 0.01, 0.9, 1e-4, 0.1
SEED = 0


def synthetic_batch(batch, size, classes=1000):
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    return x, rng.integers(0, classes, batch).astype(np.int64)


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ------------------------------------------------------------------ the two sides
class MinidlSide:
    name = "minidl"

    def __init__(self, device, threads, amp="off"):
        os.environ.setdefault("MINIDL_NUM_THREADS", str(threads))
        import minidl
        import minidl.functional as F
        import minidl.models as models
        from minidl.tools.amp_training import AmpTraining
        self.minidl, self.F, self.models, self.device = minidl, F, models, device
        self.amp = AmpTraining(amp)
        if device == "cuda":
            import cupy
            self.cupy = cupy
        if device == "emu":  # count the implicit host reads a GPU would sync on, too
            from minidl.backend import get_backend
            get_backend("emu").watch_host_reads().__enter__()  # for the worker's life

    def version(self):
        return self.minidl.__version__

    def setup(self, model_name, batch, size, weights_path):
        mdl = self.minidl
        mdl.manual_seed(SEED)
        self.model = self.models.create(model_name).to(self.device)
        self.model.train()
        # state_dict holds backend arrays: NumPy, or CuPy (.get() copies to the host)
        state = {k: np.asarray(v.get() if hasattr(v, "get") else v) for k, v in self.model.state_dict().items()}
        np.savez(weights_path, **state)
        x, y = synthetic_batch(batch, size)
        self.x = mdl.tensor(x, device=self.device)
        self.y = mdl.tensor(y, device=self.device)
        self.opt = mdl.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM,
                                 weight_decay=WEIGHT_DECAY)

    def _loss(self):
        out = self.model(self.x)
        if isinstance(out, tuple):
            out = out[0]
        return self.F.cross_entropy(out, self.y, label_smoothing=SMOOTHING)

    def check_loss(self):
        saved = _disable_dropout(self.model, (self.minidl.nn.Dropout,), ("StochasticDepth",))
        loss = float(self._loss().item())
        _restore_dropout(saved)
        return loss

    def step(self):
        with self.amp.autocast():
            loss = self._loss()
        self.amp.backward_and_step(loss, self.opt)  # zero_grad, (scaled) backward, step

    def timer(self):
        return _CupyTimer(self.cupy) if self.device == "cuda" else _WallTimer()

    def peak_memory_mb(self):
        if self.device == "cuda":
            return self.cupy.get_default_memory_pool().total_bytes() / 2**20
        return peak_rss_mb()

    def counters(self):
        stats = getattr(self.x.backend, "stats", None)
        return dict(stats()) if callable(stats) else None


class TorchSide:
    name = "torch"

    def __init__(self, device, threads, mode):
        import torch
        import torchvision  # noqa: F401  (the models)
        self.torch, self.device, self.mode = torch, device, mode
        torch.set_num_threads(threads)
        if device == "cuda":
            strict = mode == "strict"
            torch.backends.cuda.matmul.allow_tf32 = not strict
            torch.backends.cudnn.allow_tf32 = not strict
            torch.backends.cudnn.benchmark = not strict
        self.scaler = torch.amp.GradScaler("cuda") if mode == "amp" else None

    def version(self):
        import torchvision
        return f"{self.torch.__version__} (torchvision {torchvision.__version__})"

    def setup(self, model_name, batch, size, weights_path):
        import torchvision.models as tvm
        torch = self.torch
        name = "alexnet" if model_name == "alexnet_owt" else model_name
        self.model = getattr(tvm, name)(weights=None)
        state = {k: torch.from_numpy(v) for k, v in np.load(weights_path).items()}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
            raise RuntimeError(f"torch {name}: weights do not map: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.model.to(self.device).train()
        x, y = synthetic_batch(batch, size)
        self.x = torch.from_numpy(x).to(self.device)
        self.y = torch.from_numpy(y).to(self.device)
        if self.mode == "amp":
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=SMOOTHING)

    def check_loss(self):
        from torchvision.ops import StochasticDepth
        saved = _disable_dropout(self.model, (self.torch.nn.Dropout, StochasticDepth), ())
        with self.torch.no_grad():
            loss = float(self.loss_fn(self.model(self.x), self.y))
        _restore_dropout(saved)
        return loss

    def step(self):
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                loss = self.loss_fn(self.model(self.x), self.y)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.loss_fn(self.model(self.x), self.y).backward()
            self.opt.step()

    def timer(self):
        return _TorchTimer(self.torch) if self.device == "cuda" else _WallTimer()

    def peak_memory_mb(self):
        if self.device == "cuda":
            return self.torch.cuda.max_memory_allocated() / 2**20
        return peak_rss_mb()

    def counters(self):
        return None


def _disable_dropout(model, classes, class_names):
    saved = []
    for m in model.modules():
        if isinstance(m, classes) or type(m).__name__ in class_names:
            saved.append((m, m.p))
            m.p = 0.0
    return saved


def _restore_dropout(saved):
    for m, p in saved:
        m.p = p


class _WallTimer:
    def start(self):
        self.t0 = time.perf_counter()

    def stop_ms(self):
        return (time.perf_counter() - self.t0) * 1e3


class _CupyTimer:
    def __init__(self, cupy):
        self.cupy = cupy

    def start(self):
        self.a, self.b = self.cupy.cuda.Event(), self.cupy.cuda.Event()
        self.a.record()

    def stop_ms(self):
        self.b.record()
        self.b.synchronize()
        return self.cupy.cuda.get_elapsed_time(self.a, self.b)


class _TorchTimer:
    def __init__(self, torch):
        self.torch = torch

    def start(self):
        self.a = self.torch.cuda.Event(enable_timing=True)
        self.b = self.torch.cuda.Event(enable_timing=True)
        self.a.record()

    def stop_ms(self):
        self.b.record()
        self.b.synchronize()
        return self.a.elapsed_time(self.b)


# ------------------------------------------------------------------ worker process
def malloc_as_minidl():
    """Give this process the malloc settings minidl gives its own: minidl's
    keep_freed_memory (minidl/backend/cpu/workspace.py; every array from the heap, the
    heap never trimmed; MINIDL_MALLOC_TUNING=0 turns it off there too), loaded from its
    file, since importing the minidl package would bring minidl's Numba and thread
    settings into PyTorch's process.  PyTorch's workers call it before importing torch
    unless --torch-malloc default.  Under glibc's defaults a PyTorch process maps large
    arrays afresh or reuses them depending on its allocation history: its 7x7/2 stem at
    batch 8 ran 17-21 ms (26 MB of output page-faulted every call) or 6.5-6.8 ms with
    these settings, which PyTorch's own tuning guide reaches with jemalloc or tcmalloc.
    So each side gets the allocator minidl has."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "minidl", "backend", "cpu",
                        "workspace.py")
    spec = importlib.util.spec_from_file_location("_minidl_workspace", path)
    workspace = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(workspace)
    workspace.keep_freed_memory()


def worker(conn, side_name, device, threads, mode, same_malloc=False):
    """Serves one framework: ('setup', ...) -> loss check; ('time', n) -> per-step timings."""
    if same_malloc:
        malloc_as_minidl()
    import sysconfig
    for key in ("platlib", "purelib"):  # spawn copied the parent's sys.path: put this interpreter's first
        sys.path.insert(0, sysconfig.get_paths()[key])
    try:
        side = MinidlSide(device, threads, mode) if side_name == "minidl" else TorchSide(device, threads, mode)
        conn.send(("ready", side.version()))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which carries on without it
        conn.send(("unavailable", f"{type(e).__name__}: {e}"))
        return
    while True:
        msg = conn.recv()
        if msg is None:
            return
        try:
            if msg[0] == "setup":
                side.setup(*msg[1:])
                conn.send(("ok", side.check_loss()))
            elif msg[0] == "time":
                steps_ms, host_ms = [], []
                timer = side.timer()
                before = side.counters()
                for _ in range(msg[1]):
                    timer.start()
                    t0 = time.perf_counter()
                    side.step()
                    host_ms.append((time.perf_counter() - t0) * 1e3)
                    steps_ms.append(timer.stop_ms())
                after = side.counters()
                per_step = {k: (after[k] - before[k]) / msg[1] for k in after} if after else None
                conn.send(("ok", dict(step_ms=steps_ms, host_ms=host_ms, peak_mb=side.peak_memory_mb(),
                                      counters=per_step)))
        except Exception as e:  # noqa: BLE001
            conn.send(("error", f"{type(e).__name__}: {e}"))


class Remote:
    """A framework in a process of its own (spawned; optionally another interpreter)."""

    def __init__(self, side_name, device, threads, mode=None, python=None, same_malloc=False):
        ctx = mp.get_context("spawn")
        ctx.set_executable(python or sys.executable)  # (the setting is the context's: reset it)
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child, side_name, device, threads, mode, same_malloc),
                                daemon=True)
        self.proc.start()
        status, self.info = self.conn.recv()
        self.ok = status == "ready"

    def call(self, *msg):
        self.conn.send(msg)
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(value)
        return value

    def close(self):
        self.conn.send(None)
        self.proc.join(10)


# ------------------------------------------------------------------ driver
def summarize(batch, timings):
    step_ms = [t for r in timings for t in r["step_ms"]]
    host_ms = [t for r in timings for t in r["host_ms"]]
    med = statistics.median(step_ms)
    out = dict(images_per_s_median=batch * 1e3 / med, images_per_s_best=batch * 1e3 / min(step_ms),
               step_ms_median=med, host_ms_median=statistics.median(host_ms),
               peak_memory_mb=max(r["peak_mb"] for r in timings))
    counters = timings[-1]["counters"]
    out["counters_per_step"] = counters
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "emu", "cuda"), default="cpu")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--batch-sizes", default=None, help="comma-separated (default: 64 on a GPU, 16 on the CPU)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model before the rounds")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per framework")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads per framework")
    ap.add_argument("--torch-modes", default=None, help="strict,default,amp (default: strict on the CPU, all on a GPU)")
    ap.add_argument("--amp", choices=("off", "fp16", "bf16"), default="off", help="minidl's mixed precision")
    ap.add_argument("--torch-python", default=None, help="interpreter with torch+torchvision (default: this one)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-malloc", choices=("minidl", "default"), default="minidl",
                    help="PyTorch's glibc malloc: minidl's settings (default; see malloc_as_minidl) or glibc's own")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)
    if min(args.steps, args.rounds, args.image_size) < 1 or args.warmup < 0:
        ap.error("--steps, --rounds and --image-size must be positive, --warmup non-negative")
    batches = [int(b) for b in (args.batch_sizes or {"cuda": "64", "emu": "2"}.get(args.device, "16")).split(",")]
    modes = (args.torch_modes or ("strict,default,amp" if args.device == "cuda" else "strict")).split(",")
    if args.device == "cpu" and set(modes) - {"strict"}:
        ap.error("on the CPU only the torch mode 'strict' exists (TF32 and AMP are GPU modes)")

    if not args.no_torch and args.device == "emu":
        print("# no PyTorch comparison on emu (an emulation, not a device PyTorch has)", file=sys.stderr)
    minidl_version = torch_version = None

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            # fresh processes per model: the peak resident set (CPU) is then the model's own
            ours, theirs = _start_sides(args, modes)
            minidl_version = ours.info
            torch_version = next(iter(theirs.values())).info if theirs else torch_version
            for batch in batches:
                weights = os.path.join(tmp, f"{model}.npz")
                row = dict(model=model, batch=batch, image_size=args.image_size)
                try:
                    row["minidl_check_loss"] = ours.call("setup", model, batch, args.image_size, weights)
                    for mode, r in theirs.items():
                        row[f"torch_{mode}_check_loss"] = r.call("setup", model, batch, args.image_size, weights)
                    if args.warmup:
                        ours.call("time", args.warmup)
                        for r in theirs.values():
                            r.call("time", args.warmup)
                    timings = {"minidl": []}
                    for _ in range(args.rounds):
                        timings["minidl"].append(ours.call("time", args.steps))
                        for mode, r in theirs.items():
                            time.sleep(0.05)  # let the other side's threads stop spinning
                            timings.setdefault(mode, []).append(r.call("time", args.steps))
                except RuntimeError as e:
                    row["error"] = str(e)
                    print(f"{model} batch {batch}: {e}", file=sys.stderr)
                    rows.append(row)
                    continue
                row["minidl"] = summarize(batch, timings["minidl"])
                for mode in theirs:
                    row[f"torch_{mode}"] = summarize(batch, timings[mode])
                    row[f"ratio_vs_{mode}"] = row["minidl"]["step_ms_median"] / row[f"torch_{mode}"]["step_ms_median"]
                if "strict" in theirs:
                    a, b = row["minidl_check_loss"], row["torch_strict_check_loss"]
                    row["loss_agrees"] = abs(a - b) <= 1e-3 * max(1.0, abs(b))
                rows.append(row)
                print(_line(row), flush=True)
            ours.close()
            for r in theirs.values():
                r.close()

    device_tag = args.device if args.device in ("cpu", "emu") else _gpu_tag()
    out_dir = args.out_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", device_tag)
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(machine=dict(platform=platform.platform(), processor=_cpu_name(), cpus=os.cpu_count(),
                             threads=args.threads, device=device_tag),
                minidl=minidl_version, minidl_amp=args.amp, torch=torch_version, torch_modes=list(theirs),
                torch_malloc=args.torch_malloc, warmup=args.warmup,
                steps=args.steps, rounds=args.rounds, image_size=args.image_size,
                step=f"zero_grad, forward, CE (label smoothing {SMOOTHING}), backward, "
                     f"SGD (lr {LR}, momentum {MOMENTUM}, wd {WEIGHT_DECAY})",
                date=time.strftime("%Y-%m-%d %H:%M:%S"), rows=rows)
    with open(os.path.join(out_dir, "train_step.json"), "w") as f:
        json.dump(meta, f, indent=1)
    table = _markdown(rows, list(theirs), meta)
    with open(os.path.join(out_dir, "train_step.md"), "w") as f:
        f.write(table)
    print("\n" + table)
    print(f"wrote {out_dir}/train_step.{{json,md}}")


def _start_sides(args, modes):
    """minidl's worker and one PyTorch worker per torch mode (none where torch is missing)."""
    ours = Remote("minidl", args.device, args.threads, args.amp)
    if not ours.ok:
        sys.exit(f"train_step: minidl could not start on {args.device}: {ours.info}")
    theirs = {}
    if args.no_torch or args.device == "emu":
        return ours, theirs
    for mode in modes:
        r = Remote("torch", args.device, args.threads, mode, args.torch_python, args.torch_malloc == "minidl")
        if not r.ok:
            print(f"# PyTorch comparison unavailable ({r.info}); minidl alone", file=sys.stderr)
            args.no_torch = True  # said once
            break
        theirs[mode] = r
    return ours, theirs


def _line(row):
    m = row["minidl"]
    s = f"{row['model']:16s} batch {row['batch']:3d}  minidl {m['images_per_s_median']:8.1f} img/s ({m['step_ms_median']:.0f} ms)"
    for key in row:
        if key.startswith("ratio_vs_"):
            s += f"  {key[9:]} {row['torch_' + key[9:]]['images_per_s_median']:8.1f} img/s  ratio {row[key]:.2f}x"
    return s


def _markdown(rows, modes, meta):
    head = ["model", "batch", "minidl img/s (median / best)", "minidl ms/step", "host ms/step", "peak MB"]
    for mode in modes:
        head += [f"torch {mode} img/s", f"time ratio vs {mode}", f"torch {mode} peak MB"]
    if "strict" in modes:
        head.append("first loss minidl / torch")
    lines = [f"Machine: {meta['machine']}; minidl {meta['minidl']}; torch {meta['torch']}; "
             f"{meta['rounds']} rounds x {meta['steps']} steps per side, alternating; "
             f"image size {meta['image_size']}; PyTorch's malloc: {meta['torch_malloc']}'s settings; "
             f"{meta['date']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['batch']} | error: {r['error']} |")
            continue
        m = r["minidl"]
        cells = [r["model"], str(r["batch"]), f"{m['images_per_s_median']:.1f} / {m['images_per_s_best']:.1f}",
                 f"{m['step_ms_median']:.1f}", f"{m['host_ms_median']:.1f}", f"{m['peak_memory_mb']:.0f}"]
        for mode in modes:
            t = r[f"torch_{mode}"]
            cells += [f"{t['images_per_s_median']:.1f}", f"{r[f'ratio_vs_{mode}']:.2f}x", f"{t['peak_memory_mb']:.0f}"]
        if "strict" in modes:
            cells.append(f"{r['minidl_check_loss']:.4f} / {r['torch_strict_check_loss']:.4f}"
                         + ("" if r["loss_agrees"] else " DIFFER"))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Time ratio = minidl step time / torch step time (below 1 is faster).")
    counted = [r for r in rows if r.get("minidl", {}).get("counters_per_step")]
    lines.append("Per minidl step: " + ("; ".join(
        f"{r['model']} batch {r['batch']}: {c['launches']:.0f} kernel launches, {c['host_to_device']:g} uploads, "
        f"{c['device_to_host']:g} device-to-host transfers" for r in counted for c in [r["minidl"]["counters_per_step"]])
        if counted else "kernel launches and transfers are not counted by this backend") + ".")
    return "\n".join(lines) + "\n"


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _gpu_tag():
    try:
        name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.splitlines()[0]
        return "gpu_" + name.lower().replace("nvidia", "").strip().split()[0].split("-")[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "gpu"


if __name__ == "__main__":
    main()
