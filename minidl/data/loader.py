"""DataLoader: batches of (images, labels) NumPy arrays, decoded by worker processes into
shared memory.

Design:
* Every sample is drawn with ``dataset.get(index, seed, epoch)``, i.e. with the generator
  ``default_rng([seed, epoch, index])``, and the shuffled order comes from
  ``(seed, epoch)`` alone, so batches are bit-identical for any ``num_workers``.
* ``num_workers > 0``: the first iteration starts that many processes (the 'fork'
  context by default on Linux: nothing is pickled and start-up is cheap; pass
  ``mp_context="spawn"`` for a picklable dataset where forking is unsafe).  They persist
  across epochs (``close()``, garbage collection or exit stops them), so they keep the
  dataset as it was at the first iteration.  They take batch tasks from a queue and write
  the decoded samples straight into a ring of ``num_workers * prefetch`` batch buffers in
  one ``multiprocessing.shared_memory`` block, also kept across epochs (first-touching
  fresh memory is slow on VMs); only slot numbers, labels and skip reports travel through
  the result queue.  The loader yields batches in order and copies each out of its slot
  (so a batch stays valid however long the caller keeps it) before reusing the slot.
  Leaving an epoch early is fine: the next one first collects the batches still in flight.
* Workers ignore SIGINT, so Ctrl-C reaches only the training process; an exception
  (Ctrl-C included) inside an epoch stops them, and they exit on their own when the
  parent process disappears.
* A worker that dies is noticed within ~0.1 s (queue gets time out and the workers'
  ``is_alive()`` is checked) and raises RuntimeError naming the worker and exit code.
* A sample whose image cannot be decoded (CorruptImageError) is skipped: its batch is
  just smaller (batches are never refilled from other batches, which keeps them
  independent of ``num_workers``; a batch whose samples are all bad is left out).  Each
  skip is counted in ``skipped`` (this epoch) and ``skipped_total``, and each bad path is
  logged once per process (logger "minidl.data") and kept in ``bad_files``.
* Global ``random``/``np.random`` in a worker are seeded from (seed, epoch, worker id) for
  user transforms that use them; minidl's transforms use only the per-sample generator.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import pickle
import queue
import random
import signal
import sys
import time
import traceback
import weakref
from multiprocessing import shared_memory

import numpy as np

from .folder import CorruptImageError, logger

__all__ = ["DataLoader"]

_POLL_S = 0.1
_logged_bad_files = set()


def _log_bad_file(where, reason):
    if where not in _logged_bad_files:
        _logged_bad_files.add(where)
        logger.warning("skipping unreadable sample %s (%s)", where, reason)


def _fetch(dataset, index, seed, epoch):
    if hasattr(dataset, "get"):
        return dataset.get(index, seed, epoch)
    return dataset[index]  # any indexable (image, label) dataset, unseeded


def _describe(dataset, index):
    describe = getattr(dataset, "describe", None)
    return describe(index) if describe is not None else f"{type(dataset).__name__}[{index}]"


def _fill(dataset, indices, out, seed, epoch):
    """Decode ``indices`` into ``out[0:n]`` (bad samples skipped); returns (n, labels,
    skipped) where skipped is [(index, path, reason)]."""
    labels, skipped = [], []
    n = 0
    for index in indices:
        try:
            image, label = _fetch(dataset, int(index), seed, epoch)
        except CorruptImageError as e:
            skipped.append((int(index), e.path, e.reason))
            continue
        image = np.asarray(image)
        if image.shape != out.shape[1:]:
            raise ValueError(
                f"DataLoader: sample {int(index)} ({_describe(dataset, int(index))}) has shape "
                f"{image.shape} but the batch holds {out.shape[1:]} (the first sample's); give "
                f"the dataset a transform that makes every image the same size, e.g. "
                f"Resize + CenterCrop or RandomResizedCrop")
        out[n] = image
        labels.append(int(label))
        n += 1
    return n, np.asarray(labels, dtype=np.int64), skipped


def _worker_loop(worker_id, dataset, tasks, results, shm, ring_shape, dtype, seed, parent_pid):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # a SIGTERM handler inherited through fork (say, "save a checkpoint") is not ours
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ring = np.ndarray(ring_shape, dtype=dtype, buffer=shm.buf)
    seeded_epoch = None
    try:
        while True:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent_pid:  # the training process is gone
                    return
                continue
            if task is None:
                return
            generation, batch_no, slot, indices, epoch = task
            if epoch != seeded_epoch:  # for user code drawing from the global generators
                seq = np.random.SeedSequence([int(seed), int(epoch)], spawn_key=(2, worker_id))
                np.random.seed(seq.generate_state(4))
                random.seed(int(seq.generate_state(1)[0]))
                seeded_epoch = epoch
            try:
                n, labels, skipped = _fill(dataset, indices, ring[slot], seed, epoch)
                results.put(("ok", generation, batch_no, slot, n, labels, skipped))
            except Exception as e:
                tb = traceback.format_exc()
                try:
                    pickle.dumps(e)
                except Exception:
                    e = RuntimeError(f"{type(e).__name__}: {e}")
                results.put(("error", generation, batch_no, slot, worker_id, e, tb))
    finally:
        del ring


def _exit_description(code):
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _WorkerPool:
    """Worker processes and the shared ring of batch slots they fill; kept across epochs
    (starting processes and first-touching fresh shared memory is slow, ~0.3 s for a
    77 MB ring on this VM).  Knows which slots are in flight, so an epoch abandoned
    midway can be drained before the next one reuses its slots."""

    def __init__(self, dataset, num_workers, num_slots, sample_shape, dtype, batch_size,
                 seed, ctx):
        self.ring_shape = (num_slots, batch_size) + tuple(sample_shape)
        self.dtype = np.dtype(dtype)
        nbytes = int(np.prod(self.ring_shape, dtype=np.int64)) * self.dtype.itemsize
        self.shm = shared_memory.SharedMemory(create=True, size=max(nbytes, 1))
        self.ring = np.ndarray(self.ring_shape, dtype=self.dtype, buffer=self.shm.buf)
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        self.free_slots = list(range(num_slots))
        self.in_flight = set()  # slots whose result has not come back
        self.workers = []
        self.closed = False
        try:
            for worker_id in range(num_workers):
                w = ctx.Process(target=_worker_loop, name=f"minidl-data-worker-{worker_id}",
                                args=(worker_id, dataset, self.tasks, self.results, self.shm,
                                      self.ring_shape, self.dtype, seed, os.getpid()),
                                daemon=True)
                w.start()
                self.workers.append(w)
        except BaseException:
            self.close()
            raise

    def submit(self, generation, batch_no, indices, epoch):
        slot = self.free_slots.pop()
        self.in_flight.add(slot)
        self.tasks.put((generation, batch_no, slot, indices, epoch))

    def release(self, slot):
        self.free_slots.append(slot)

    def next_result(self, timeout, waiting_for):
        """The next message from any worker; RuntimeError if a worker has died or nothing
        came within ``timeout`` seconds."""
        start = time.monotonic()
        while True:
            try:
                msg = self.results.get(timeout=_POLL_S)
            except queue.Empty:
                msg = None
            if msg is not None:
                self.in_flight.discard(msg[3])
                return msg
            for worker_id, w in enumerate(self.workers):
                if not w.is_alive():
                    raise RuntimeError(
                        f"DataLoader worker {worker_id} (pid {w.pid}) died unexpectedly "
                        f"({_exit_description(w.exitcode)}) while {waiting_for} was awaited; "
                        f"if it was killed for memory (SIGKILL), lower batch_size or num_workers")
            if timeout is not None and time.monotonic() - start > timeout:
                raise RuntimeError(f"DataLoader: nothing from the {len(self.workers)} workers "
                                   f"in {timeout} s (waiting for {waiting_for})")

    def drain(self, timeout):
        """Collect and drop the results of an abandoned epoch, freeing their slots."""
        while self.in_flight:
            msg = self.next_result(timeout, "the rest of an abandoned epoch")
            self.release(msg[3])

    def close(self):
        if self.closed:
            return
        self.closed = True
        for w in self.workers:
            if w.is_alive():
                self.tasks.put(None)
        deadline = time.monotonic() + 2.0
        for w in self.workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        for w in self.workers:
            if w.is_alive():
                w.terminate()
                w.join(timeout=1.0)
        for q in (self.tasks, self.results):
            q.cancel_join_thread()
            q.close()
        del self.ring
        self.shm.close()
        self.shm.unlink()


class DataLoader:
    """Iterate ``dataset`` in batches of ``(images, labels)``: float32 N x ... arrays
    (whatever per-sample shape the transform gives, e.g. N x C x H x W) and int64 N.

    ``len(loader)`` is the number of batches (a batch whose samples were all unreadable is
    left out, so an epoch can yield fewer).  Call ``set_epoch(e)`` before each epoch to
    reshuffle and re-seed the augmentation.  ``prefetch`` is the number of batches in
    flight per worker; ``timeout`` (seconds, None = no limit) bounds the wait for one
    batch.  A dataset with a ``get_batch(indices)`` method that returns a batch (IDX data
    without a transform) is read whole batches at a time in this process, without workers.
    ``close()`` (or ``with DataLoader(...) as loader:``) stops the workers.
    ``sampler`` (e.g. ``minidl.distributed.DistributedSampler``): an object with
    ``indices()``, ``__len__`` and ``set_epoch(e)`` that chooses the samples of each epoch
    in place of ``shuffle``.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, num_workers=0, seed=0,
                 drop_last=False, prefetch=2, timeout=None, mp_context=None, sampler=None):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if int(num_workers) < 0:
            raise ValueError(f"DataLoader: num_workers must be >= 0, got {num_workers}")
        if int(prefetch) < 1:
            raise ValueError(f"DataLoader: prefetch must be >= 1, got {prefetch}")
        try:
            len(dataset)
        except TypeError:
            raise TypeError(f"DataLoader: dataset must have a length, got "
                            f"{type(dataset).__name__}") from None
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: give shuffle=True or a sampler, not both (the sampler shuffles)")
        if mp_context is None:
            mp_context = "fork" if sys.platform.startswith("linux") else "spawn"
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.prefetch = int(prefetch)
        self.timeout = timeout
        self.mp_context = mp_context
        self.epoch = 0
        self.skipped = 0
        self.skipped_total = 0
        self.bad_files = {}
        self._pool = None
        self._finalizer = None
        self._generation = 0
        self._active = None

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch=None):
        """The sample indices of ``epoch`` (default: the current one) in iteration order."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            return np.asarray(self.sampler.indices(), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        # spawn_key keeps this stream apart from the per-sample ones [seed, epoch, index]
        seq = np.random.SeedSequence([self.seed, epoch], spawn_key=(1,))
        return np.random.default_rng(seq).permutation(n)

    def _batches(self):
        order = self.order()
        return [order[i:i + self.batch_size] for i in range(0, len(self) * self.batch_size,
                                                             self.batch_size)]

    def _note_skipped(self, skipped):
        for index, path, reason in skipped:
            self.skipped += 1
            self.skipped_total += 1
            self.bad_files[path] = reason
            _log_bad_file(path, reason)

    def __iter__(self):
        self.skipped = 0
        epoch = self.epoch  # fixed now, even if set_epoch is called before the first batch
        batches = self._batches()
        if not batches:
            return iter(())
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None and get_batch(batches[0][:1]) is not None:
            return self._iter_whole_batches(batches, get_batch)
        if self.num_workers == 0:
            return self._iter_in_process(batches, epoch)
        previous = self._active() if self._active is not None else None
        if previous is not None:  # one epoch at a time: give back the slots it holds
            previous.close()
        iterator = self._iter_workers(batches, epoch)
        self._active = weakref.ref(iterator)
        return iterator

    def _iter_whole_batches(self, batches, get_batch):
        for indices in batches:
            images, labels = get_batch(indices)
            yield images, np.asarray(labels, dtype=np.int64)

    def _probe(self, batches, epoch):
        """A first decodable sample, whose shape and dtype every sample must share."""
        for indices in batches:
            for index in indices:
                try:
                    image, _ = _fetch(self.dataset, int(index), self.seed, epoch)
                except CorruptImageError as e:
                    _log_bad_file(e.path, e.reason)
                    continue
                image = np.asarray(image)
                dtype = np.float32 if image.dtype == np.float64 else image.dtype
                return image.shape, dtype
        raise RuntimeError(f"DataLoader: none of the {len(self.dataset)} samples of "
                           f"{type(self.dataset).__name__} could be decoded")

    def _iter_in_process(self, batches, epoch):
        shape, dtype = self._probe(batches, epoch)
        for indices in batches:
            out = np.empty((len(indices),) + shape, dtype)
            n, labels, skipped = _fill(self.dataset, indices, out, self.seed, epoch)
            self._note_skipped(skipped)
            if n:
                yield (out if n == len(out) else out[:n].copy()), labels

    def _iter_workers(self, batches, epoch):
        shape, dtype = self._probe(batches, epoch)
        pool = self._pool
        if pool is not None and (pool.ring_shape[1:] != (self.batch_size,) + tuple(shape)
                                 or pool.dtype != dtype):
            self.close()  # the samples changed shape: a new ring
            pool = None
        if pool is None:
            num_workers = min(self.num_workers, len(batches))
            num_slots = min(num_workers * self.prefetch, len(batches))
            pool = _WorkerPool(self.dataset, num_workers, num_slots, shape, dtype,
                               self.batch_size, self.seed, mp.get_context(self.mp_context))
            self._pool = pool
            self._finalizer = weakref.finalize(self, pool.close)
        self._generation += 1
        generation = self._generation
        pool.drain(self.timeout)
        sent = 0
        ready = {}
        try:
            for batch_no in range(len(batches)):
                while pool.free_slots and sent < len(batches):
                    pool.submit(generation, sent, batches[sent], epoch)
                    sent += 1
                while batch_no not in ready:
                    msg = pool.next_result(self.timeout, f"batch {batch_no}")
                    if msg[1] != generation:  # left over from an abandoned epoch
                        pool.release(msg[3])
                    elif msg[0] == "error":
                        _, _, bad_batch, slot, worker_id, exc, tb = msg
                        pool.release(slot)
                        exc.add_note(f"(raised in DataLoader worker {worker_id} on batch "
                                     f"{bad_batch}; worker traceback:\n{tb.rstrip()})")
                        raise exc
                    else:
                        ready[msg[2]] = msg[3:]
                slot, n, labels, skipped = ready.pop(batch_no)
                self._note_skipped(skipped)
                images = pool.ring[slot, :n].copy()
                pool.release(slot)
                if n:
                    yield images, labels
        except GeneratorExit:  # the caller left the epoch early: drain at the next start
            for slot, *_ in ready.values():
                pool.release(slot)
            raise
        except BaseException:  # a dead worker, an error, Ctrl-C: start afresh next time
            self.close()
            raise

    def close(self):
        """Stop the worker processes and free the shared memory (also done when the loader
        is garbage-collected and at exit).  The next iteration starts new workers."""
        pool, self._pool = self._pool, None
        if pool is not None:
            self._finalizer.detach()
            pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, num_workers={self.num_workers}, seed={self.seed})")
