"""DistributedDataParallel: every rank holds the whole model and a shard of the batch;
gradients are averaged over ranks during backward, bucket by bucket.

Buckets hold parameters in reverse registration order (roughly the order in which backward
produces their gradients), up to ``bucket_cap_mb`` each.  A post-accumulate-grad hook on
every parameter counts the gradients that are final; when a bucket is complete, its
gradients are flattened into one buffer and its all-reduce starts at once, while backward
goes on with earlier layers.  When the last bucket starts, backward has produced every
gradient: the hook then waits for all buckets and writes the averages back into ``.grad``,
so the gradients are synchronized before ``backward()`` returns and before
``optimizer.step()``.

(MPI progresses a non-blocking collective when the process calls into MPI; each hook call
tests the outstanding requests, and ``MPIR_CVAR_ASYNC_PROGRESS=1`` gives MPICH a progress
thread.  NCCL runs on its own CUDA stream.)
"""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np  # the host buffers MPI reduces

from ..autograd.function import no_grad
from ..nn.module import Module
from . import broadcast, group


class _Bucket:
    def __init__(self, index, params):
        self.index, self.params = index, params
        self.ready = 0
        self.work = self.buffer = None


class DistributedDataParallel(Module):
    """Wraps ``module``; call it as the module.  Parameters and buffers are broadcast from
    rank 0 at construction (``broadcast_buffers``: buffers again at every training forward,
    so batch-norm running statistics agree).  ``find_unused_parameters=True`` allows a
    forward that does not use every parameter (its gradient counts as zero on this rank)."""

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True, find_unused_parameters=False):
        super().__init__()
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: expected bucket_cap_mb > 0, got {bucket_cap_mb}")
        self.module = module
        self.group = group()
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self._check_same_model()
        with no_grad():
            for t in list(module.parameters()) + [b for b in module.buffers() if b is not None]:
                broadcast(t, 0)
        params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = self._make_buckets(params, bucket_cap_mb * 2**20)
        self._bucket_of = {}
        for bucket in self._buckets:
            for p in bucket.params:
                self._bucket_of[id(p)] = bucket
                p.register_post_accumulate_grad_hook(self._grad_ready)
        self._sync = True
        self._launched = 0
        self.launch_log = []  # (bucket index, parameters still pending in backward): for tests

    # ------------------------------------------------------------ construction
    def _check_same_model(self):
        entries = [(name, tuple(t.shape), str(t.dtype)) for name, t in self.module.state_dict().items()]
        digest = hashlib.sha256(repr(entries).encode()).hexdigest()[:16]
        n_params = sum(int(p.numel()) for p in self.module.parameters())
        signatures = self.group.all_gather_object((digest, n_params, len(entries)))
        if len(set(signatures)) > 1:
            ref = signatures[0]
            differ = [r for r, s in enumerate(signatures) if s != ref]
            raise ValueError(
                "DistributedDataParallel: the ranks built different models: rank 0 has "
                f"{ref[1]} parameters in {ref[2]} tensors, rank {differ[0]} has "
                f"{signatures[differ[0]][1]} in {signatures[differ[0]][2]} (ranks that differ from "
                f"rank 0: {differ})")

    @staticmethod
    def _make_buckets(params, cap_bytes):
        buckets, current, size = [], [], 0
        for p in reversed(params):
            nbytes = int(p.numel()) * p.data.dtype.itemsize
            if current and (size + nbytes > cap_bytes or p.dtype != current[0].dtype):
                buckets.append(_Bucket(len(buckets), current))
                current, size = [], 0
            current.append(p)
            size += nbytes
        if current:
            buckets.append(_Bucket(len(buckets), current))
        return buckets

    # ------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        self._check_previous_reduction()
        self.launch_log = []
        if self.training and self.broadcast_buffers and self.group.size > 1:
            with no_grad():
                for b in self.module.buffers():
                    if b is not None:
                        broadcast(b, 0)
        out = self.module(*args, **kwargs)
        if self.find_unused_parameters and self._sync and self.training:
            self._mark_unused(out)
        return out

    def _check_previous_reduction(self):
        pending = [b for b in self._buckets if b.ready]
        if pending and self._sync:
            names = {id(p): n for n, p in self.module.named_parameters()}
            waiting = [names.get(id(p), "?") for b in self._buckets for p in b.params]
            raise RuntimeError(
                "DistributedDataParallel: the previous backward did not produce a gradient for "
                f"every parameter, so its all-reduce never finished (buckets {[b.index for b in pending]}; "
                f"parameters include {waiting[:5]}); pass find_unused_parameters=True if the "
                "forward does not use every parameter")

    def _mark_unused(self, out):
        """Parameters the graph of ``out`` does not reach count as ready, with zero gradient."""
        from ..tensor import Tensor
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        reached, stack, seen = set(), [t._ctx for t in outputs if isinstance(t, Tensor) and t._ctx], set()
        while stack:
            fn = stack.pop()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            for t in fn.inputs:
                if t is None:
                    continue
                if t._ctx is None:
                    reached.add(id(t))
                else:
                    stack.append(t._ctx)
        for bucket in self._buckets:
            for p in bucket.params:
                if id(p) not in reached:
                    with no_grad():
                        if p.grad is None:
                            p.grad = Tensor._wrap(p.backend.zeros(p.shape, p.data.dtype), p.device)
                    self._grad_ready(p)

    # ------------------------------------------------------------ backward
    @contextlib.contextmanager
    def no_sync(self):
        """Accumulate gradients locally (no all-reduce) in the backward passes inside."""
        prev, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = prev

    def _grad_ready(self, p):
        if not self._sync:
            return
        bucket = self._bucket_of[id(p)]
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            self._launch(bucket)
        for b in self._buckets:  # let MPI progress the collectives in flight
            if b.work is not None:
                b.work.test()
        if self._launched == len(self._buckets):
            self._finish()

    def _launch(self, bucket):
        """Copy the bucket's gradients into its flat buffer (allocated once: host memory for
        MPI, device memory for NCCL) and start its all-reduce."""
        be = bucket.params[0].backend
        nccl = self.group.backend == "nccl"
        if bucket.buffer is None:
            n = sum(int(p.numel()) for p in bucket.params)
            dtype = bucket.params[0].data.dtype
            bucket.buffer = be.empty((n,), dtype) if nccl else np.empty(n, dtype)
        offset = 0
        for p in bucket.params:
            n = int(p.numel())
            grad = p.grad.data if nccl else be.to_numpy(p.grad.data)
            bucket.buffer[offset:offset + n] = grad.reshape(-1)
            offset += n
        bucket.work = self.group.all_reduce(bucket.buffer, "avg")
        self._launched += 1
        pending = sum(len(b.params) - b.ready for b in self._buckets)
        self.launch_log.append((bucket.index, pending))

    def _finish(self):
        """Wait for every bucket; the averaged gradients become views of the bucket buffers
        (copied to the device for cuda tensors reduced over MPI)."""
        for bucket in self._buckets:
            bucket.work.wait()
            be = bucket.params[0].backend
            offset = 0
            for p in bucket.params:
                n = int(p.numel())
                piece = bucket.buffer[offset:offset + n].reshape(p.shape)
                p.grad.data = be.asarray(piece, dtype=p.grad.data.dtype)
                offset += n
            bucket.ready, bucket.work = 0, None
        self._launched = 0

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict, strict=True):
        return self.module.load_state_dict(state_dict, strict)
