"""Scratch buffers of the CPU kernels, kept per thread and reused across calls.

Freshly mapped memory costs a page fault per 4 KiB: a new 58 MB column buffer per
convolution made the call several times slower than the im2col itself.
"""
from __future__ import annotations

import threading

import numpy as np

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
