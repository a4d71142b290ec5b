"""The training steps' loss and top-1 count, kept on the device between log points.

Reading a step's loss on the host (``loss.item()``) waits for the GPU to finish the
step, so the host cannot queue the next one while the GPU works.  minidl-train keeps
each step's loss and correct count as 0-d device tensors instead and reads them all
at once, in one transfer, every ``--log-interval`` steps and before anything that
needs them (a checkpoint, the end of the epoch, a stop).  The step where the loss first
became non-finite is still known exactly: it is the first non-finite value read.
"""
from __future__ import annotations

from dataclasses import dataclass

import minidl


@dataclass
class StepRecord:
    step: int
    epoch: float  # epochs done, fractional
    where: str  # "at step S (epoch E, batch B)", for messages
    lr: float
    images: int
    loss: float
    correct: float


class PendingSteps:
    """The steps run since the last read; :meth:`read` returns them as StepRecords."""

    def __init__(self):
        self._clear()

    def _clear(self):
        self._rows, self._losses, self._correct = [], [], []

    def add(self, step, epoch, where, lr, images, loss, correct):
        """``loss`` and ``correct`` are 0-d tensors on the device; nothing is read."""
        self._rows.append((step, epoch, where, lr, images))
        self._losses.append(loss.detach().double())
        self._correct.append(correct.detach().double())

    def read(self):
        if not self._rows:
            return []
        with minidl.no_grad():
            values = minidl.stack([minidl.stack(self._losses), minidl.stack(self._correct)]).numpy()
        records = [StepRecord(*row, float(loss), float(correct))
                   for row, loss, correct in zip(self._rows, values[0], values[1])]
        self._clear()
        return records
