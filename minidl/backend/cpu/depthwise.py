"""Depthwise convolution on the CPU (groups == C > 1, O = C * multiplier), forward and
both backwards, direct: Numba loops over zero-padded phase planes of each input plane.
Each plane's weight-gradient partial goes to its own slot and the slots are summed
afterwards, so there are no races.  conv.py routes depthwise convolutions here.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .parallel import parallel_kernel

# Depthwise: each (image, channel) plane is copied into zero-padded "phase" planes,
# one per (row, column) offset modulo the stride (one plane for stride 1): there, the
# inputs under window tap (i, j) for all outputs are a single flat run of ho * PW
# values, so every tap is one long unit-stride loop, even on 7x7 maps and strided,
# with no bounds per row (the per-row bounds and views cost more than the arithmetic
# on small maps).  The input gradient is the exact adjoint: the taps accumulate into
# phase planes, which are then copied back.  Tasks go in DEPTHWISE_CHUNKS chunks, each
# with its own phase planes.
DEPTHWISE_CHUNKS = 64
DEPTHWISE_RUN_ALIGN = 16


@njit(cache=True, inline="always")
def _phase_shape(ho, wo, kh, kw, sh, sw, dh, dw):
    """(PH, PW) of each phase plane; one row more than the windows need, where the last
    tap's flat run ends."""
    return ho + (kh - 1) * dh // sh + 1, wo + (kw - 1) * dw // sw


@njit(cache=True, inline="always")
def _depthwise_plan(x, w, ho, wo, sh, sw, dh, dw):
    """-> (channel multiplier, phase plane rows and width, run length, tasks (image,
    channel planes), chunks) of a depthwise convolution.  The run is rounded up to
    DEPTHWISE_RUN_ALIGN values (the phase planes have as many more), so that its loops
    have no scalar remainder."""
    kh, kw = w.shape[2], w.shape[3]
    ph, pw = _phase_shape(ho, wo, kh, kw, sh, sw, dh, dw)
    tasks = x.shape[0] * x.shape[1]
    run = -(-(ho * pw) // DEPTHWISE_RUN_ALIGN) * DEPTHWISE_RUN_ALIGN
    return w.shape[0] // x.shape[1], ph, pw, run, tasks, min(tasks, DEPTHWISE_CHUNKS)


@njit(cache=True, inline="always")
def _taps(kh, kw, sh, sw, dh, dw, pw):
    """(phase rows, starts) of every tap (i, j) at i * kw + j (_tap), worked out once:
    inside the tasks its divisions by the stride cost more than a 7x7 map's products."""
    rows = np.empty(kh * kw, dtype=np.int64)
    starts = np.empty(kh * kw, dtype=np.uint64)
    for i in range(kh):
        for j in range(kw):
            rows[i * kw + j], starts[i * kw + j] = _tap(i, j, sh, sw, dh, dw, pw)
    return rows, starts


@njit(cache=True, inline="always")
def _phase_slices(a, b, height, width, sh, sw, pt, pl, ph, pw):
    """Input rows ih0::sh and columns iw0::sw (nr x nc of them) land in phase (a, b)
    at rows r0.. and columns c0..; nr or nc may be 0."""
    ih0, iw0 = (a - pt) % sh, (b - pl) % sw
    r0, c0 = (ih0 + pt) // sh, (iw0 + pl) // sw
    nr = max(0, min((height - ih0 + sh - 1) // sh, ph - r0))
    nc = max(0, min((width - iw0 + sw - 1) // sw, pw - c0))
    return ih0, iw0, r0, c0, nr, nc


@njit(cache=True)
def _phase_copy(x, n, c, phases, into_phases, sh, sw, pt, pl, ph, pw):
    """Copy plane x[n, c] into its phase planes (into_phases; phases (sh * sw, ph * pw),
    phase (a, b) being row a * sw + b, a plane row-major), or back: the adjoint, where
    plane entries no phase holds become zero.  (Indices, not views: parallel.py.)"""
    height, width = x.shape[2], x.shape[3]
    if not into_phases:
        for h in range(height):
            for k in range(width):
                x[n, c, h, k] = 0
    for a in range(sh):
        for b in range(sw):
            ih0, iw0, r0, c0, nr, nc = _phase_slices(a, b, height, width, sh, sw, pt, pl, ph, pw)
            p = a * sw + b
            for r in range(nr):
                at = np.uint64((r0 + r) * pw + c0)
                ih = ih0 + r * sh
                src = np.uint64(iw0)
                if into_phases:
                    if sw == 1:
                        for k in range(nc):
                            phases[p, at + np.uint64(k)] = x[n, c, ih, src + np.uint64(k)]
                    else:
                        for k in range(nc):
                            phases[p, at + np.uint64(k)] = x[n, c, ih, src + np.uint64(k * sw)]
                elif sw == 1:
                    for k in range(nc):
                        x[n, c, ih, src + np.uint64(k)] = phases[p, at + np.uint64(k)]
                else:
                    for k in range(nc):
                        x[n, c, ih, src + np.uint64(k * sw)] = phases[p, at + np.uint64(k)]


@njit(cache=True, inline="always")
def _tap(i, j, sh, sw, dh, dw, pw):
    """(phase row, start): the flat run phases[row, start:start + run] holds the values
    under tap (i, j) for every output (row-major at the phase width; columns past wo are
    padding).  The start is unsigned: the loops over the run then vectorize."""
    start = (i * dh // sh) * pw + j * dw // sw
    return (i * dh) % sh * sw + (j * dw) % sw, np.uint64(start)


@parallel_kernel(fastmath=True)
def _depthwise_conv2d_forward(x, w, y, sh, sw, pt, pl, dh, dw):
    channels, kh, kw = x.shape[1], w.shape[2], w.shape[3]
    ho, wo = y.shape[2], y.shape[3]
    mult, ph, pw, run, tasks, n_chunks = _depthwise_plan(x, w, ho, wo, sh, sw, dh, dw)
    tap_rows, tap_starts = _taps(kh, kw, sh, sw, dh, dw, pw)
    w_taps = w.reshape(w.shape[0], kh * kw)
    n_taps = kh * kw
    for chunk in prange(n_chunks):
        phases = np.zeros((sh * sw, ph * pw + DEPTHWISE_RUN_ALIGN), dtype=x.dtype)
        acc = np.empty(run, dtype=y.dtype)
        for task in range(chunk * tasks // n_chunks, (chunk + 1) * tasks // n_chunks):
            n = task // channels
            c = task - n * channels
            _phase_copy(x, n, c, phases, True, sh, sw, pt, pl, ph, pw)
            for m in range(mult):
                o = c * mult + m
                # Three taps a pass over acc (one tap a pass: 144 channels at 56x56, batch 8,
                # 2.0-2.5 -> 1.6 ms; 5x5 at 14x14 -25%; stride 2 even).
                for k in range(0, n_taps - 2, 3):
                    wa, wb, wc = w_taps[o, k], w_taps[o, k + 1], w_taps[o, k + 2]
                    pa, pb, pc = tap_rows[k], tap_rows[k + 1], tap_rows[k + 2]
                    sa, sb, sc = tap_starts[k], tap_starts[k + 1], tap_starts[k + 2]
                    if k == 0:
                        for q in range(run):
                            acc[q] = (wa * phases[pa, sa + np.uint64(q)] + wb * phases[pb, sb + np.uint64(q)]
                                      + wc * phases[pc, sc + np.uint64(q)])
                    else:
                        for q in range(run):
                            acc[q] += (wa * phases[pa, sa + np.uint64(q)] + wb * phases[pb, sb + np.uint64(q)]
                                       + wc * phases[pc, sc + np.uint64(q)])
                for k in range(n_taps - n_taps % 3, n_taps):
                    wv, p, start = w_taps[o, k], tap_rows[k], tap_starts[k]
                    if k == 0:
                        for q in range(run):
                            acc[q] = wv * phases[p, start + np.uint64(q)]
                    else:
                        for q in range(run):
                            acc[q] += wv * phases[p, start + np.uint64(q)]
                for oh in range(ho):  # (element by element: a slice per row is a view)
                    for ow in range(wo):
                        y[n, o, oh, ow] = acc[np.uint64(oh * pw + ow)]


@parallel_kernel(fastmath=True)
def _depthwise_conv2d_backward(x, w, gy, dx, dw_parts, need_dx, need_dw, sh, sw, pt, pl, dh, dw):
    """dx (when need_dx) and dw_parts[n, o] = the weight gradient from image n alone
    (when need_dw), both through the phase planes: dw a dot product of gy with each
    tap's run, dx the runs' adjoint."""
    channels, kh, kw = x.shape[1], w.shape[2], w.shape[3]
    ho, wo = gy.shape[2], gy.shape[3]
    mult, ph, pw, run, tasks, n_chunks = _depthwise_plan(x, w, ho, wo, sh, sw, dh, dw)
    tap_rows, tap_starts = _taps(kh, kw, sh, sw, dh, dw, pw)
    w_taps = w.reshape(w.shape[0], kh * kw)
    for chunk in prange(n_chunks):
        phases = np.zeros((sh * sw, ph * pw + DEPTHWISE_RUN_ALIGN), dtype=x.dtype)
        d_phases = np.zeros((sh * sw, ph * pw + DEPTHWISE_RUN_ALIGN), dtype=x.dtype)
        g_run = np.zeros(run, dtype=gy.dtype)  # gy at the phase width: zero past wo and ho
        for task in range(chunk * tasks // n_chunks, (chunk + 1) * tasks // n_chunks):
            n = task // channels
            c = task - n * channels
            if need_dw:
                _phase_copy(x, n, c, phases, True, sh, sw, pt, pl, ph, pw)
            if need_dx:
                d_phases[:] = 0
            for m in range(mult):
                o = c * mult + m
                for oh in range(ho):
                    for ow in range(wo):
                        g_run[np.uint64(oh * pw + ow)] = gy[n, o, oh, ow]
                for k in range(kh * kw):
                    p, start = tap_rows[k], tap_starts[k]
                    if need_dw:
                        total = 0.0
                        for q in range(run):
                            total += g_run[q] * phases[p, start + np.uint64(q)]
                        dw_parts[n, o, k // kw, k % kw] = total
                    if need_dx:
                        wv = w_taps[o, k]
                        for q in range(run):
                            d_phases[p, start + np.uint64(q)] += wv * g_run[q]
            if need_dx:
                _phase_copy(dx, n, c, d_phases, False, sh, sw, pt, pl, ph, pw)


def conv2d_forward(x, w, g):
    """-> y (N, O, HO, WO) of a depthwise convolution of geometry ``g``."""
    y = np.empty(g.y_shape, dtype=x.dtype)
    _depthwise_conv2d_forward.sized(y.size)(x, w, y, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw)
    return y


def conv2d_backward(x, w, gy, g, need_dx, need_dw):
    """-> (dx or None, dw or None) of a depthwise convolution of geometry ``g``."""
    n_img = x.shape[0]
    dx = np.empty_like(x) if need_dx else np.empty((1, 1, 1, 1), dtype=x.dtype)
    parts = (np.empty((n_img,) + w.shape[:1] + w.shape[2:], dtype=w.dtype) if need_dw
             else np.empty((1, 1, 1, 1), dtype=w.dtype))
    _depthwise_conv2d_backward.sized(x.size)(x, w, gy, dx, parts, need_dx, need_dw, g.sh, g.sw, g.pt, g.pl,
                                             g.dh, g.dw)
    dw = parts.sum(axis=0).reshape(w.shape) if need_dw else None
    return (dx if need_dx else None), dw
