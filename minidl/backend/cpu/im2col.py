"""The column loops of the CPU convolution's im2col path (conv.py): the input's windows
copied into GEMM columns, and the columns' gradients added back.

Columns are one row per (input channel, kernel tap), r = (c * KH + i) * KW + j, and per
image and output row a run of WO values; where each image's, each row's run starts is
the caller's (``stride_b``, ``stride_r``: conv._Im2col's two layouts).  Every element of
a block of columns is written, zeros on the padding included; the add-backs accumulate
into dx (+=), one thread per input channel, so that they never race.

* ``by_rows``: a loop per output row of each tap, unit or stride-2 reads;
* ``by_phase_rows``: strided windows, each input row split once into its phases;
* ``by_taps``: tiny maps, a whole image's pixels through a table of each tap's input
  offsets (``tap_table``).

Each has its serial twin (parallel.py) for the threads of conv's L2 blocks, hence
``nogil``.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from .parallel import parallel_kernel


@njit(cache=True, inline="always")
def valid_range(offset, stride, size, out_size):
    """Output indices o in [lo, hi) with 0 <= o * stride + offset < size (lo == hi where
    there are none).  Inlined into the loops here; tapwise.taps calls it too."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    last = size - 1 - offset
    hi = 0
    if last >= 0:
        hi = last // stride + 1
    if hi > out_size:
        hi = out_size
    if lo > hi:
        lo = hi
    return lo, hi


@njit(cache=True, inline="always")
def split_phases(x, b, c, ih, padded, phases, at, pitch, phase_len, sw, pl, copied):
    """phases[at + e * pitch + q] = row ih of x[b, c], zero-padded by ``pl`` on the left,
    at column q * sw + e, for each phase e < sw and q < phase_len (zeros where ih is
    outside the map).  ``padded`` (at least sw * phase_len values) is zero outside
    [pl, pl + copied), the ``copied`` input columns that the phases hold; callers
    allocate it once with np.zeros.  Inlined into by_phase_rows and direct._forward."""
    if ih < 0 or ih >= x.shape[2]:
        for q in range(sw * pitch):
            phases[np.uint64(at + q)] = 0
        return
    for q in range(copied):
        padded[np.uint64(pl + q)] = x[b, c, ih, np.uint64(q)]
    if sw == 2:  # (a constant stride: permutes)
        for q in range(phase_len):
            phases[np.uint64(at + q)] = padded[np.uint64(2 * q)]
        for q in range(phase_len):
            phases[np.uint64(at + pitch + q)] = padded[np.uint64(2 * q + 1)]
    else:
        for e in range(sw):
            for q in range(phase_len):
                phases[np.uint64(at + e * pitch + q)] = padded[np.uint64(q * sw + e)]


@parallel_kernel(nogil=True)  # (nogil: the serial twin runs in the row-block threads)
def by_rows(x, cols, n0, nb, oh0, rows, kh, kw, sh, sw, pt, pl, dh, dw, wo, stride_b, stride_r):
    """cols[b * stride_b + r * stride_r + (oh - oh0) * wo + ow] = padded x of image n0 + b,
    with r = (c * kh + i) * kw + j; every element of the block is written (zeros included).
    Offsets are unsigned and strides 1 and 2 have loops of their own, so that the row
    copies vectorize (parallel.py says why): 2-3x faster than with signed offsets."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    kk = kh * kw
    for r in prange(channels * kk):  # (images inside: a task per image cost 2-3x on 2x2-8x8 maps)
        c = r // kk
        k = r - c * kk
        i = k // kw
        j = k - i * kw
        off_w = j * dw - pl
        lo, hi = valid_range(off_w, sw, width, wo)
        for b in range(nb):
            base = b * stride_b + r * stride_r
            for rr in range(rows):
                ih = (oh0 + rr) * sh + i * dh - pt
                row = np.uint64(base + rr * wo)
                if ih < 0 or ih >= height:
                    for ow in range(wo):
                        cols[row + np.uint64(ow)] = 0
                    continue
                for ow in range(lo):
                    cols[row + np.uint64(ow)] = 0
                src = np.uint64(lo * sw + off_w)
                dst = row + np.uint64(lo)
                if sw == 1:
                    for q in range(hi - lo):
                        cols[dst + np.uint64(q)] = x[n0 + b, c, ih, src + np.uint64(q)]
                elif sw == 2:
                    for q in range(hi - lo):
                        cols[dst + np.uint64(q)] = x[n0 + b, c, ih, src + np.uint64(2 * q)]
                else:
                    for q in range(hi - lo):
                        cols[dst + np.uint64(q)] = x[n0 + b, c, ih, src + np.uint64(q * sw)]
                for ow in range(hi, wo):
                    cols[row + np.uint64(ow)] = 0


@parallel_kernel(nogil=True)
def by_phase_rows(x, cols, n0, nb, oh0, rows, kh, kw, sh, sw, pt, pl, dh, dw, wo, stride_b, stride_r):
    """by_rows (same arguments, same columns) for strided windows (taken at stride 2
    from conv.PHASE_ROWS_MIN_KW columns): each input row the block reads is copied
    once into a zero-padded row and split into its sw phases (padded column p goes to
    phase p % sw at p // sw), and then every tap j of a kernel row is one unit-stride
    copy of WO values from phase (j dw) % sw, per output row.  The split is shared by
    all the taps that read the row; by_rows reads each tap at stride sw.  (Split per
    kernel row and output row instead, once per tap row: the stem's columns at batch 8
    took 2.8-2.9 ms on one thread, against 1.7-1.9 this way.)"""
    channels, width = x.shape[1], x.shape[3]
    phase_len = wo + ((kw - 1) * dw) // sw + 1
    pitch = (phase_len + 15) // 16 * 16 + 16  # (one phase row; 16 values apart measured 10% faster than 0)
    span = (rows - 1) * sh + (kh - 1) * dh + 1  # the input rows the block reads, from ``top``
    top = oh0 * sh - pt
    copied = max(0, min(width, sw * phase_len - pl))
    for task in prange(channels * nb):
        c = task // nb
        b = task - c * nb
        padded = np.zeros(sw * phase_len, dtype=x.dtype)  # (zeros right of the row stay)
        phases = np.empty(span * sw * pitch, dtype=x.dtype)  # row s's phase e at (s sw + e) pitch
        for s in range(span):
            split_phases(x, n0 + b, c, top + s, padded, phases, s * sw * pitch, pitch, phase_len, sw, pl, copied)
        for i in range(kh):
            for j in range(kw):
                e = (j * dw) % sw
                row = np.uint64(b * stride_b + ((c * kh + i) * kw + j) * stride_r)
                for rr in range(rows):
                    src = np.uint64(((rr * sh + i * dh) * sw + e) * pitch + (j * dw) // sw)
                    dst = row + np.uint64(rr * wo)
                    for ow in range(wo):
                        cols[dst + np.uint64(ow)] = phases[src + np.uint64(ow)]


@parallel_kernel(nogil=True)
def by_taps(x, cols, n0, nb, taps, p0, pixels, stride_b, stride_r):
    """by_rows of batch-inner tiny maps (same columns, output pixels p0 <= p < p0 +
    pixels of each image) through a table: taps[k, p] = ih * W + iw under tap k of output
    pixel p, or -1 on the padding (tap_table).  One loop over a whole image's pixels,
    instead of by_rows's loop per output row of WO values and its zero runs: on 2x2 to
    8x8 maps those rows are 2-8 values.  One thread, batch 64: 3x3/2 at 4x4 outputs 3.8
    -> 1.2 ms, 2x2 5.3 -> 0.9, 8x8 1.8 -> 1.6; 1x1/2 0.2-0.3 -> 0.06-0.17; batch 16,
    7x7 4.6 -> 2.4 (3x3/2) and 3.3 -> 2.0 (3x3/1).  At 14x14, 3x3/1 was 10% slower."""
    channels = x.shape[1]
    plane = x.shape[2] * x.shape[3]
    flat = x.reshape(-1)
    kk = taps.shape[0]
    zero = x.dtype.type(0)
    for r in prange(channels * kk):
        c = r // kk
        k = r - c * kk
        for b in range(nb):
            src = np.uint64(((n0 + b) * channels + c) * plane)
            dst = np.uint64(b * stride_b + r * stride_r)
            for q in range(pixels):
                at = taps[k, p0 + q]
                cols[dst + np.uint64(q)] = flat[src + np.uint64(max(at, 0))] if at >= 0 else zero


@parallel_kernel(nogil=True)
def add_back_by_taps(cols, dx, n0, nb, taps, p0, pixels, stride_b, stride_r):
    """add_back_by_rows through by_taps's table (its inverse: one thread a channel)."""
    channels = dx.shape[1]
    plane = dx.shape[2] * dx.shape[3]
    flat = dx.reshape(-1)
    kk = taps.shape[0]
    for c in prange(channels):
        for k in range(kk):
            r = c * kk + k
            for b in range(nb):
                base = np.uint64(((n0 + b) * channels + c) * plane)
                src = np.uint64(b * stride_b + r * stride_r)
                for q in range(pixels):
                    at = taps[k, p0 + q]
                    if at >= 0:
                        flat[base + np.uint64(at)] += cols[src + np.uint64(q)]


@parallel_kernel(nogil=True)  # (nogil: the serial twin runs in the block threads)
def add_back_by_rows(cols, dx, n0, nb, oh0, rows, kh, kw, sh, sw, pt, pl, dh, dw, wo, stride_b, stride_r):
    """dx[n0 + b] += the column gradients scattered back (inverse layout of by_rows).
    One thread owns a channel's planes, so the additions never race.  (Unsigned
    offsets, as in by_rows.)"""
    channels, height, width = dx.shape[1], dx.shape[2], dx.shape[3]
    kk = kh * kw
    for c in prange(channels):  # (images inside, as in by_rows)
        for i in range(kh):
            for j in range(kw):
                off_w = j * dw - pl
                lo, hi = valid_range(off_w, sw, width, wo)
                for b in range(nb):
                    base = b * stride_b + (c * kk + i * kw + j) * stride_r
                    for rr in range(rows):
                        ih = (oh0 + rr) * sh + i * dh - pt
                        if ih < 0 or ih >= height:
                            continue
                        src = np.uint64(base + rr * wo + lo)
                        dst = np.uint64(lo * sw + off_w)
                        if sw == 1:
                            for q in range(hi - lo):
                                dx[n0 + b, c, ih, dst + np.uint64(q)] += cols[src + np.uint64(q)]
                        else:
                            for q in range(hi - lo):
                                dx[n0 + b, c, ih, dst + np.uint64(q * sw)] += cols[src + np.uint64(q)]


@functools.lru_cache(maxsize=256)
def tap_table(g):
    """(KH * KW, HO * WO) int64: ih * W + iw of the input under tap (i, j) of output pixel
    (oh, ow), or -1 where that is padding (by_taps)."""
    ih = np.arange(g.HO)[None, :] * g.sh + np.arange(g.KH)[:, None] * g.dh - g.pt  # (KH, HO)
    iw = np.arange(g.WO)[None, :] * g.sw + np.arange(g.KW)[:, None] * g.dw - g.pl  # (KW, WO)
    rows_in = (ih >= 0) & (ih < g.H)
    cols_in = (iw >= 0) & (iw < g.W)
    table = ih[:, None, :, None] * g.W + iw[None, :, None, :]  # (KH, KW, HO, WO)
    inside = rows_in[:, None, :, None] & cols_in[None, :, None, :]
    return np.where(inside, table, -1).reshape(g.KH * g.KW, g.HO * g.WO).astype(np.int64)
