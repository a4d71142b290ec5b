"""Scratch buffers of the CPU kernels, kept per thread and reused across calls, and
the process's malloc settings.

Freshly mapped memory costs a page fault per 4 KiB: a new 58 MB column buffer per
convolution made the call several times slower than the im2col itself.
"""
from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4

_buffers = threading.local()


def workspace(slot, size, dtype):
    """A reusable flat buffer of at least ``size`` elements; each caller owns its slot
    (conv.py: 0 columns, 1 their gradient; winograd.py: 2 input tiles, 3 products,
    4 input tiles tile-major)."""
    key = (slot, np.dtype(dtype).str)
    store = getattr(_buffers, "store", None)
    if store is None:
        store = _buffers.store = {}
    buf = store.get(key)
    if buf is None or buf.size < size:
        buf = store[key] = np.empty(size, dtype=dtype)
    return buf


def keep_freed_memory():
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the OS
    (process-wide, once; set MINIDL_MALLOC_TUNING=0 to leave malloc alone; documented
    in the README).  A training step frees and allocates the same activation-,
    gradient- and column-sized arrays every step.  By default glibc maps large arrays
    freshly and trims the heap's free top, so they came back as new pages, each
    faulted in and zeroed by the kernel: DenseNet-121 at batch 16 took 17,000-110,000
    page faults per step, AlexNet 1,200 (2 MB pages, its 151 MB fc6 gradient among
    them).  With every array from the heap and the heap never trimmed: 0-50, AlexNet's
    step 445 -> 412-424 ms; the peak resident size is unchanged (resnet50 2412 / 2398
    MB, vgg16 3830 / 3830): the heap holds what the step's peak held.  A no-op off
    glibc."""
    if os.environ.get("MINIDL_MALLOC_TUNING", "1") == "0":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # (the process's own symbols: libc's, no library search)
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
