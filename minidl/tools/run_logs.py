"""The logs of a training run beside ``log.jsonl`` (one record per epoch): ``steps.csv``,
one row every ``--log-interval`` steps, and TensorBoard event files under
``--tensorboard DIR`` (with the optional ``tensorboardX``).

steps.csv columns: step, epoch (fractional: 1.5 is halfway through the second epoch),
loss (the mean over the steps since the previous row), lr, images_per_s (over the same
steps, data loading included) and time (UTC, ISO 8601).  A resumed run keeps the rows
up to its checkpoint's step and appends after them.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import os
import sys
import time
from datetime import datetime, timezone

from minidl import io as mio
from minidl.install import extra_hint
from minidl.tools.common import UsageError
from minidl.tools.run_folder import plot_curves

STEP_FIELDS = ("step", "epoch", "loss", "lr", "images_per_s", "time")


def utc_now():
    """The current time as an ISO 8601 UTC timestamp, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _kept_rows(path, completed_step):
    """The rows of an existing steps.csv up to ``completed_step`` (a row cut off by a kill
    or written after the checkpoint is dropped)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    kept = []
    for row in rows:
        try:
            if int(row["step"]) <= completed_step and row.get("time"):
                kept.append(row)
        except (KeyError, TypeError, ValueError):
            continue
    return kept


class StepLog:
    """steps.csv and the optional TensorBoard writer of one run."""

    def __init__(self, out, interval, tensorboard=None, completed_step=None):
        self.interval = int(interval)
        self.path = os.path.join(out, "steps.csv")
        if completed_step is None:
            rows = []
        else:
            rows = _kept_rows(self.path, completed_step)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, STEP_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row[k] for k in STEP_FIELDS} for row in rows)
        mio.atomic_write(self.path, buffer.getvalue())
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.board = _tensorboard_writer(tensorboard) if tensorboard else None
        self._reset()

    def _reset(self):
        self.losses, self.images, self.since = [], 0, time.perf_counter()

    def step(self, step, epoch, loss, lr, images):
        """Record one optimizer step (``epoch`` fractional); writes a row every ``interval``."""
        self.losses.append(loss)
        self.images += images
        if step % self.interval:
            return
        seconds = max(time.perf_counter() - self.since, 1e-9)
        mean = sum(self.losses) / len(self.losses)
        self.writer.writerow([step, f"{epoch:.4f}", f"{mean:.6g}", f"{lr:.6g}",
                              f"{self.images / seconds:.1f}", utc_now()])
        self.file.flush()
        if self.board is not None:
            self.board.add_scalar("train/loss", mean, step)
            self.board.add_scalar("train/lr", lr, step)
            self.board.add_scalar("train/images_per_s", self.images / seconds, step)
        self._reset()

    def epoch(self, record):
        """The epoch's record of log.jsonl, as TensorBoard scalars at its last step."""
        if self.board is None:
            return
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5"):
            if record.get(key) is not None:
                self.board.add_scalar(f"epoch/{key}", record[key], record["step"])
        self.board.flush()

    def close(self):
        self.file.close()
        if self.board is not None:
            self.board.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NoStepLog:
    """The step log of a process that writes none (ranks other than 0 of a distributed run)."""

    def step(self, *args):
        pass

    def epoch(self, record):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def draw_curves(out):
    """curves.png of the run in ``out`` from its log.jsonl; without matplotlib, one note
    saying so and how to install it.  Returns the path drawn, or None."""
    path = plot_curves(os.path.join(out, "log.jsonl"), os.path.join(out, "curves.png"))
    if path is None and importlib.util.find_spec("matplotlib") is None:
        print(f"minidl-train: curves.png not drawn: matplotlib is not installed ({extra_hint('plot')}); "
              f"then draw them with: minidl-plot {out}", file=sys.stderr)
    return path


def _tensorboard_writer(logdir):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UsageError(f"--tensorboard needs tensorboardX, an optional extra: "
                         f"{extra_hint('tensorboard')}") from None
    return SummaryWriter(logdir)
