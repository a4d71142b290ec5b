"""Matrix multiply for the CPU backend: single-threaded BLAS, split across our own threads.

OpenBLAS's thread pool spin-waits between calls and needs all of its threads
scheduled at once.  Interleaved with Numba's parallel loops (and, in training,
with data-loader processes) on two cores, a 2-thread GEMM regularly waited a
scheduler time slice: whole training steps ran 4-6x slower than with one BLAS
thread.  So BLAS runs on one thread, and a large product is cut into row (or
column) panels, or a stack of products into runs of whole ones, that a small pool
of Python threads multiplies concurrently (NumPy releases the GIL inside BLAS; idle
pool threads sleep, they never spin).  ``in_threads`` lends the same pool to other
work that releases the GIL (the Winograd convolution's chunks).

``MINIDL_NUM_THREADS`` sets the number of threads (default: the usable cores).
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many flops one thread does the whole product (a hand-off costs ~20-50 us).
SPLIT_MIN_FLOPS = 1 << 23


def _thread_count():
    env = os.environ.get("MINIDL_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


THREADS = _thread_count()
_pool = ThreadPoolExecutor(max_workers=THREADS - 1, thread_name_prefix="minidl-gemm") if THREADS > 1 else None


def limit_blas_threads():
    """Pin NumPy's BLAS to one thread (process-wide: documented in the README)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api="blas")


def panels(length, parts):
    """[start, stop) ranges cutting range(length) into at most ``parts`` near-equal pieces."""
    bounds = [length * i // parts for i in range(parts + 1)]  # (integers: np.linspace took ~10 us a call)
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` with large products split over THREADS threads."""
    if a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b, out=out)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if _few_rows_times_transposed(a, b, m, n, batch):  # (b^T a^T)^T, the faster product
        product = matmul(b.T, a.T)
        if out is None:
            return np.ascontiguousarray(product.T)
        out[...] = product.T
        return out
    if out is None:
        out = np.empty(batch + (m, n), dtype=np.result_type(a.dtype, b.dtype))
    flops = 2 * m * n * k * int(np.prod(batch, dtype=np.int64))
    if _pool is None or flops < SPLIT_MIN_FLOPS or max(m, n) < 2 * THREADS:
        return np.matmul(a, b, out=out)
    jobs = []
    if len(batch) and batch[0] >= THREADS and a.shape[:1] == b.shape[:1] == batch[:1]:
        for i0, i1 in panels(batch[0], THREADS):  # whole products of a stack, per thread
            jobs.append((a[i0:i1], b[i0:i1], out[i0:i1]))
    elif m >= n:   # row panels of a and out
        for r0, r1 in panels(m, THREADS):
            jobs.append((a[..., r0:r1, :], b, out[..., r0:r1, :]))
    else:        # column panels of b and out
        for c0, c1 in panels(n, THREADS):
            jobs.append((a, b[..., c0:c1], out[..., c0:c1]))
    in_threads([functools.partial(np.matmul, pa, pb, out=po) for pa, pb, po in jobs])
    return out


def _few_rows_times_transposed(a, b, m, n, batch):
    """A linear layer's forward at a small batch: rows x W^T with W (n, k) stored row-major.
    OpenBLAS took 1.15-1.95x longer for it than for W @ rows^T at 8-64 rows (k 1280-9216,
    n 1000-4096, two threads; AlexNet's fc6 at batch 16 21.7 -> 13.0 ms); from 256 rows
    the plain product wins by ~10%.  The transposed result is copied back, at most
    64 x n floats, so that callers get C-order as ever."""
    return (not batch and m <= 64 and n >= 4 * m and b.flags.f_contiguous and not b.flags.c_contiguous
            and a.flags.c_contiguous)


def in_threads(calls):
    """Run the callables concurrently, the first on this thread, and return their results.
    They must not call in_threads themselves (a pool thread would wait on itself): use
    np.matmul, not matmul, inside them."""
    if _pool is None or len(calls) == 1:
        return [call() for call in calls]
    futures = [_pool.submit(call) for call in calls[1:]]
    first = calls[0]()
    return [first] + [f.result() for f in futures]
