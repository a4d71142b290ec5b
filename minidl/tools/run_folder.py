"""A training run's folder: what marks one, how a new run refuses or replaces an old one,
how a resumed run continues its log, how its checkpoint state is put in words, and the
curves drawn from its log.

    last.json, best.json   checkpoints (minidl/tools/checkpoint.py), with their .safetensors
    log.jsonl              one JSON record per epoch
    results.json           the final metrics
    steps.csv              one row every --log-interval steps (minidl/tools/run_logs.py)
    curves.png             loss, accuracy and lr per epoch (with matplotlib; minidl-plot)
    eval.json              minidl-eval's results for the run's weights
"""
from __future__ import annotations

import json
import os

from minidl import io as mio
from minidl.tools.checkpoint import remove_stale_files
from minidl.tools.common import UsageError

# files that mark a folder as holding a run, and what --overwrite removes besides the checkpoints
RUN_MARKERS = ("last.json", "best.json", "results.json", "log.jsonl")
RUN_FILES = RUN_MARKERS + ("curves.png", "eval.json", "steps.csv")


def prepare_run_folder(out, overwrite=False, resumed_from=None):
    """Refuse an ``out`` that is a file, or a folder holding another run unless
    ``overwrite``, which removes that run's files.  The folder of the checkpoint
    ``resumed_from`` is the resumed run's own."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--output {out} is a file, expected a run folder")
    if not os.path.isdir(out):
        return
    if resumed_from is not None and os.path.samefile(out, os.path.dirname(os.path.abspath(resumed_from))):
        return
    previous = [name for name in RUN_MARKERS if os.path.isfile(os.path.join(out, name))
                and os.path.getsize(os.path.join(out, name)) > 0]
    if not previous:
        return
    if not overwrite:
        raise UsageError(f"--output {out} holds a previous run ({', '.join(previous)}); continue it with "
                         f"--resume {out} or replace it with --overwrite")
    for name in RUN_FILES:
        if os.path.isfile(os.path.join(out, name)):
            os.unlink(os.path.join(out, name))
    remove_stale_files(out)  # the removed manifests' array files are now named by none


def open_log(out, completed_epochs=None):
    """log.jsonl for appending.  A new run (``completed_epochs`` None) starts it; a resumed
    run keeps the records of the epochs its checkpoint completed (a record written after
    that checkpoint is written again, and a line cut off by a kill is dropped)."""
    path = os.path.join(out, "log.jsonl")
    if completed_epochs is None:
        return open(path, "w")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    kept = [line for line in lines if _epoch_of(line) is not None and _epoch_of(line) <= completed_epochs]
    if kept != lines:
        mio.atomic_write(path, "".join(line + "\n" for line in kept))
    return open(path, "a")


def _epoch_of(line):
    """The epoch of a log.jsonl line, None for a line that is not a whole record."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    epoch = record.get("epoch") if isinstance(record, dict) else None
    return epoch if isinstance(epoch, int) else None


def describe_checkpoint(path, progress):
    """Where a run can continue from, in words, for messages."""
    if progress["batch"] == 0 and progress["epoch"] > 0:
        where = f"after epoch {progress['epoch']}, step {progress['step']}"
    else:
        where = f"epoch {progress['epoch'] + 1}, batch {progress['batch']}, step {progress['step']}"
    return f"the latest complete checkpoint is {path} ({where})"


def plot_curves(log_path, png_path):
    """Panels of loss, top-1/top-5 and lr per epoch (integer ticks) from log.jsonl.
    Returns ``png_path``, or None without matplotlib or without records."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    with open(log_path) as f:
        records = [r for r in (_record(line) for line in f) if r is not None]
    if not records:
        return None
    epochs = [r["epoch"] for r in records]

    def series(key, scale=1.0):
        return [None if r.get(key) is None else scale * r[key] for r in records]

    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    ax_loss.plot(epochs, series("train_loss"), "o-", label="train")
    ax_loss.plot(epochs, series("val_loss"), "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for key, label in (("train_top1", "train top-1"), ("val_top1", "val top-1"), ("val_top5", "val top-5")):
        if any(r.get(key) is not None for r in records):
            ax_acc.plot(epochs, series(key, 100.0), "o-", label=label)
    ax_acc.set(xlabel="epoch", ylabel="%", title="accuracy")
    ax_lr.plot(epochs, series("lr"), "o-", label="lr at the epoch's end")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def _record(line):
    """A log.jsonl line as a dict, None for a line that is not a whole record."""
    return json.loads(line) if _epoch_of(line) is not None else None
