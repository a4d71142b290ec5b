"""Data pipeline benchmark: decoded + augmented ImageNet-style images per second at 224.

    python benchmarks/data_pipeline.py [--images 200] [--batch-size 32] [--epochs 3]

Generates ~200 photo-like 500x375 JPEGs (smooth multi-scale noise plus shapes, quality
90, ~50 KB each like ImageNet's) in a temporary folder, then times the training pipeline
(RandomResizedCrop(224) + flip + ToArray + Normalize) through minidl's DataLoader with
0, 1 and 2 worker processes (after one untimed epoch that starts the persistent
workers), and the cost of each stage for one image.  Prints a table
and writes benchmarks/results/data_pipeline.json, with the load average (the machine
may be shared, which lowers the numbers).
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minidl.data as D  # noqa: E402
from minidl.data import transforms as T  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "data_pipeline.json")


def photo_like(width, height, rng):
    img = np.zeros((height, width, 3), np.float32)
    for cell, amplitude in ((8, 120.0), (32, 60.0), (128, 30.0)):
        small = rng.integers(0, 256, (max(2, height // cell), max(2, width // cell), 3),
                             dtype=np.uint8)
        img += amplitude / 255 * np.asarray(
            Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), np.float32)
    img += rng.normal(0, 6, img.shape)
    pic = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pic)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x0, y0, x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 200))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return pic


def make_dataset(folder, n_images, classes=4):
    rng = np.random.default_rng(0)
    for i in range(n_images):
        sub = os.path.join(folder, f"class{i % classes}")
        os.makedirs(sub, exist_ok=True)
        photo_like(500, 375, rng).save(os.path.join(sub, f"img{i:04d}.JPEG"), quality=90)


def best_of(fn, n=30, reps=7):
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e3


def stage_costs(path):
    """Milliseconds per image for each stage (best of several runs)."""
    data = open(path, "rb").read()
    rrc, flip, norm = T.RandomResizedCrop(224), T.RandomHorizontalFlip(1.0), T.Normalize()
    rng = np.random.default_rng(0)
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    cropped = rrc(decoded, rng)
    arr = T.to_array(cropped)

    def decode():
        im = Image.open(io.BytesIO(data))
        im.load()

    def decode_draft_half():
        im = Image.open(io.BytesIO(data))
        im.draft("RGB", (im.size[0] // 2, im.size[1] // 2))
        im.load()

    costs = {
        "decode (Pillow)": best_of(decode),
        "decode at 1/2 (Pillow draft)": best_of(decode_draft_half),
        "RandomResizedCrop resize": best_of(lambda: rrc(decoded, rng)),
        "flip": best_of(lambda: flip(cropped, rng)),
        "ToArray": best_of(lambda: T.to_array(cropped)),
        "Normalize": best_of(lambda: norm(arr, rng)),
        "default_rng([seed, epoch, i])": best_of(lambda: D.sample_rng(0, 1, 2)),
        "whole sample (ds.get)": None,
    }
    try:
        import simplejpeg
        costs["decode (simplejpeg, accurate)"] = best_of(lambda: simplejpeg.decode_jpeg(data))
        costs["decode (simplejpeg, fastdct+fastupsample)"] = best_of(
            lambda: simplejpeg.decode_jpeg(data, fastdct=True, fastupsample=True))
    except ImportError:
        pass
    return costs


def _cpu_seconds():
    """CPU seconds of this process, its live children (the loader's persistent workers,
    read from /proc) and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    gone = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + gone.ru_utime + gone.ru_stime
    ticks = os.sysconf("SC_CLK_TCK")
    for child in mp.active_children():
        try:
            with open(f"/proc/{child.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def time_loader(ds, batch_size, workers, epochs):
    """Images/s per epoch (wall clock) and CPU milliseconds per image (all processes),
    after one untimed epoch that starts the workers."""
    loader = D.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, seed=0)
    for _ in loader:
        pass
    rates, cpu_ms = [], []
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        n = 0
        for images, labels in loader:
            n += len(labels)
        rates.append(n / (time.perf_counter() - start))
        cpu_ms.append((_cpu_seconds() - cpu_start) / n * 1e3)
    loader.close()
    return rates, cpu_ms, images.shape


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="epochs timed per configuration")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--output", default=RESULTS)
    args = ap.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="minidl-data-bench-") as folder:
        make_dataset(folder, args.images)
        ds = D.ImageFolder(folder, transform=D.train_transform(224))
        costs = stage_costs(ds.path(0))
        costs["whole sample (ds.get)"] = best_of(lambda: ds.get(0, 0, 0), n=20)
        sizes = [os.path.getsize(ds.path(i)) for i in range(len(ds))]
        runs = {}
        for workers in args.workers:
            rates, cpu_ms, shape = time_loader(ds, args.batch_size, workers, args.epochs)
            runs[workers] = {"images_per_s_median": statistics.median(rates),
                             "images_per_s_best": max(rates), "per_epoch": rates,
                             "cpu_ms_per_image": statistics.median(cpu_ms)}
    load_after = os.getloadavg()

    print(f"\n{len(ds)} JPEGs 500x375 (mean {np.mean(sizes) / 1024:.0f} KB), batches of "
          f"{args.batch_size} x {'x'.join(map(str, shape[1:]))}, RandomResizedCrop(224) + flip + ToArray + "
          f"Normalize, {os.cpu_count()} CPUs, load average before {load_before[0]:.2f} / "
          f"after {load_after[0]:.2f}\n")
    # CPU ms per image, summed over all processes, does not depend on what else runs
    # (much): the last column is what min(workers, CPUs) idle cores could sustain
    print("| workers | images/s (median) | images/s (best) | CPU ms/image | images/s if the "
          "cores were idle |")
    print("|---:|---:|---:|---:|---:|")
    for workers, r in runs.items():
        cores = min(max(workers, 1), os.cpu_count())
        r["images_per_s_idle_estimate"] = 1e3 * cores / r["cpu_ms_per_image"]
        print(f"| {workers} | {r['images_per_s_median']:.0f} | {r['images_per_s_best']:.0f} | "
              f"{r['cpu_ms_per_image']:.2f} | {r['images_per_s_idle_estimate']:.0f} |")
    print("\n| stage (one image) | ms |")
    print("|---|---:|")
    for name, ms in costs.items():
        print(f"| {name} | {ms:.3f} |")

    record = {
        "benchmark": "data_pipeline", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "pillow": Image.__version__,
                    "numpy": np.__version__},
        "load_average_before": load_before, "load_average_after": load_after,
        "dataset": {"images": len(ds), "size": [500, 375], "mean_bytes": float(np.mean(sizes))},
        "pipeline": "RandomResizedCrop(224) + RandomHorizontalFlip + ToArray + Normalize",
        "batch_size": args.batch_size, "epochs_timed": args.epochs,
        "workers": {str(k): v for k, v in runs.items()},
        "stage_ms": costs,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=2)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
