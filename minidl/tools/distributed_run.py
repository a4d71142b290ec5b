"""minidl-train and minidl-eval under ``mpiexec``/``srun``: what a multi-process run adds.

World size > 1 is detected from the launcher's environment.  Then each process trains on
its shard of every global batch (``DistributedSampler``: the permutation a one-process run
would use, rank r taking positions r, r + W, ...), the model is wrapped in
``DistributedDataParallel`` (``--sync-bn`` first converts its batch norms), the step's loss
and the stop request are all-reduced so that every rank takes the same decisions, and
validation counts are summed over ranks.  Rank 0 alone prints, logs, plots and writes
checkpoints; every rank reads the same checkpoint on ``--resume``.
"""
from __future__ import annotations

import contextlib
import io
import sys

import numpy as np


class Ranks:
    """The process's place in the job; a one-process run is ``Ranks()`` (world 1)."""

    def __init__(self, group=None):
        self.group = group
        self.rank = group.rank if group is not None else 0
        self.world = group.size if group is not None else 1
        self.main = self.rank == 0

    @classmethod
    def start(cls, device):
        from minidl import distributed as dist
        if not dist.launched_under_mpi():
            return cls()
        return cls(dist.init_process_group("auto", device=device))

    # ------------------------------------------------------------ data and model
    def sampler(self, dataset_len, seed, train):
        if self.world == 1:
            return None
        from minidl.distributed import DistributedSampler
        return DistributedSampler(dataset_len, self.world, self.rank, shuffle=train, seed=seed, pad=train)

    def wrap(self, model, sync_bn):
        if self.world == 1:
            return model
        from minidl import distributed as dist
        if sync_bn:
            model = dist.convert_sync_batchnorm(model)
        return dist.DistributedDataParallel(model)

    # ------------------------------------------------------------ agreement
    def step_outcome(self, loss_value, images, stop):
        """-> (the global batch's mean loss, any rank asked to stop), one all-reduce."""
        if self.world == 1:
            return loss_value, stop
        buf = np.array([loss_value * images, images, 1.0 if stop else 0.0])
        self.group.all_reduce(buf, "sum").wait()
        return float(buf[0] / buf[1]), bool(buf[2])

    def reduce_metrics(self, result):
        """Sum one evaluation's correct counts, loss and samples over ranks (no padding:
        every sample was evaluated by exactly one rank)."""
        if self.world == 1 or result is None:
            return result
        keys = sorted(k for k in result if k.startswith("top") and result[k] is not None)
        seen = result["samples"]
        buf = np.array([round(result[k] * seen) for k in keys] + [result["loss"] * seen, seen], np.float64)
        self.group.all_reduce(buf, "sum").wait()
        total = buf[-1]
        out = dict(result, samples=int(total), loss=float(buf[-2] / total))
        out.update({k: float(buf[i] / total) for i, k in enumerate(keys)})
        return out

    def any(self, flag):
        if self.world == 1:
            return bool(flag)
        buf = np.array([1.0 if flag else 0.0])
        self.group.all_reduce(buf, "max").wait()
        return bool(buf[0])

    def fail(self, code):
        """A rank that ends with an error ends the job, so no other rank waits for it."""
        if self.world > 1 and code not in (0, None):
            print(f"minidl: rank {self.rank} of {self.world} stopped with status {code}; ending every rank",
                  file=sys.stderr, flush=True)
            self.group.abort(code)
        return code

    @contextlib.contextmanager
    def quiet_unless_main(self):
        """Other ranks' stdout (progress lines, tables) is dropped; errors still reach stderr."""
        if self.main:
            yield
            return
        with contextlib.redirect_stdout(io.StringIO()):
            yield

    def resume_position(self, progress, saved_world, batch_size, steps_per_epoch):
        """The batch to continue from when a checkpoint of ``saved_world`` ranks resumes on
        this many: the same epoch and the same number of samples seen in it."""
        if saved_world == self.world:
            return progress["batch"]
        seen = progress["batch"] * batch_size * saved_world
        batch = min(seen // (batch_size * self.world), steps_per_epoch)
        if self.main:
            print(f"minidl-train: warning: the checkpoint was written by {saved_world} process(es), this run "
                  f"has {self.world}: continuing epoch {progress['epoch'] + 1} after {seen} samples (batch "
                  f"{batch} of {steps_per_epoch}); the remaining batches differ from an uninterrupted run",
                  file=sys.stderr)
        return batch
