"""Convolution on tiny maps as one GEMM per kernel tap, forward and both backwards.

On a map of a few pixels most of a window's taps fall on the padding: a 3x3 window
with padding 1 reads padding in 20 of its 36 taps over a 2x2 map and in 8 of 9 over a
1x1 map, and im2col multiplies those zeros like the rest (Winograd's tiles cover a 1x1
map 16 times over).  Here each tap (i, j) of the window is one GEMM over just the
output pixels whose input under that tap lies inside the map, a rectangle of them
(``taps``): the products of a direct convolution and no more.

    y[:, :, rect]  += W_ij (O, C) @ X_ij (C, N * rect)          forward
    dx[:, :, rect'] += W_ij^T (C, O) @ dY_ij (O, N * rect)        input gradient
    dW_ij (O, C)    = dY_ij (O, N * rect) @ X_ij^T (N * rect, C)  weight gradient

rect' being the inputs under the tap.  The maps are copied channels-major, (C, N, H, W)
(tiny: 2 MB for 512 channels at 2x2, batch 64), so that a tap's inputs are one matrix;
the weights tap-major, (taps, O, C), by _weights_of_taps.  Where "auto" takes it:
``wins``.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import prange

from .gemm import THREADS, in_threads, matmul
from .im2col import valid_range
from .parallel import parallel_kernel

# "auto" (wins) takes a direction when the share of its window's products that a direct
# convolution keeps (``kept``) is at most this.  512->512 3x3 at batch 64, im2col or
# Winograd (what "auto" took before) against this, both threads: 1x1 maps (kept 1/9)
# forward 2.5-2.6 -> 0.53-0.58 ms, input grad 2.0-2.1 -> 0.56-0.62, weight grad 3.4-3.6
# -> 0.58-0.98; 2x2 maps (kept 4/9) forward 5.2-6.3 against 6.2-6.7, input grad 5.9-7.1
# against 6.8-7.3, weight grad 9.2-9.4 -> 5.4-6.5; 256->256 at 3x3 maps (kept 49/81)
# slower.
MAX_KEPT = {"forward": 0.25, "input_grad": 0.25, "weight_grad": 0.5}


def applies(g):
    """Ungrouped convolutions (depthwise has its own loops, depthwise.py)."""
    return g.G == 1


@functools.lru_cache(maxsize=256)
def taps(g):
    """-> ((i, j, (oh0, oh1), (ow0, ow1), (ih0, iw0)), ...): each window tap that reads
    inside the map for some output, its output rectangle, and the input under its first
    output (inputs then step by the stride).  Cached per geometry: "auto" asks for each
    direction, and the path again."""
    rows = [(i,) + _reach(i * g.dh - g.pt, g.sh, g.H, g.HO) for i in range(g.KH)]
    cols = [(j,) + _reach(j * g.dw - g.pl, g.sw, g.W, g.WO) for j in range(g.KW)]
    return tuple((i, j, (oh0, oh1), (ow0, ow1), (ih0, iw0))
                 for i, oh0, oh1, ih0 in rows if oh1 > oh0 for j, ow0, ow1, iw0 in cols if ow1 > ow0)


def _reach(offset, stride, size, out_size):
    """-> (o0, o1, i0): the outputs o in [o0, o1) whose input o * stride + offset lies in
    [0, size) (im2col.valid_range), and the first one's input."""
    o0, o1 = valid_range(offset, stride, size, out_size)
    return o0, o1, o0 * stride + offset


def kept(g):
    """The share of im2col's window products that taps() keeps."""
    return sum((oh1 - oh0) * (ow1 - ow0) for _, _, (oh0, oh1), (ow0, ow1), _ in taps(g)) / (
        g.HO * g.WO * g.KH * g.KW)


def wins(g, direction):
    """Whether "auto" runs ``direction`` ("forward", "input_grad", "weight_grad") here:
    tiny maps whose windows read mostly padding (MAX_KEPT; a window without padding,
    such as a 1x1 convolution's, keeps all its products and never qualifies)."""
    return applies(g) and g.HO * g.WO <= 4 and kept(g) <= MAX_KEPT[direction]


@parallel_kernel(fastmath=True)
def _weights_of_taps(w, out, tap_rows, tap_cols):
    """out[k, o, c] = w[o, c, tap_rows[k], tap_cols[k]]."""
    for o in prange(w.shape[0]):
        for k in range(tap_rows.shape[0]):
            i, j = tap_rows[k], tap_cols[k]
            for c in range(w.shape[1]):
                out[k, o, c] = w[o, c, i, j]


@parallel_kernel(fastmath=True)
def _weights_from_taps(dw_taps, dw, tap_rows, tap_cols):
    """dw[o, c, tap_rows[k], tap_cols[k]] = dw_taps[k, o, c], zero at the taps not listed
    (they read only padding)."""
    for o in prange(dw.shape[0]):
        for c in range(dw.shape[1]):
            for i in range(dw.shape[2]):
                for j in range(dw.shape[3]):
                    dw[o, c, i, j] = 0
        for k in range(tap_rows.shape[0]):
            i, j = tap_rows[k], tap_cols[k]
            for c in range(dw.shape[1]):
                dw[o, c, i, j] = dw_taps[k, o, c]


def _tap_indices(plan):
    """-> (rows, cols): the plan's taps (i, j) as two arrays, for the Numba loops."""
    return tuple(np.array([tap[n] for tap in plan], dtype=np.int64) for n in (0, 1))


def _taps_and_weights(w, g):
    plan = taps(g)
    w_taps = np.empty((len(plan), g.O, g.C), dtype=w.dtype)
    _weights_of_taps.sized(w_taps.size)(w, w_taps, *_tap_indices(plan))
    return plan, w_taps


def _under(g, oh, ow, start):
    """-> (row slice, column slice) of the inputs under a tap's outputs."""
    (ih0, iw0), rh, rw = start, oh[1] - oh[0], ow[1] - ow[0]
    return slice(ih0, ih0 + (rh - 1) * g.sh + 1, g.sh), slice(iw0, iw0 + (rw - 1) * g.sw + 1, g.sw)


def _matrix(block, rows):
    """A block of channels-major maps as a contiguous (rows, N * pixels) matrix."""
    return np.ascontiguousarray(block).reshape(rows, -1)


def _channels_major(a):
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3))


def conv2d_forward(x, w, g):
    plan, w_taps = _taps_and_weights(w, g)
    xc = _channels_major(x)
    acc = np.zeros((g.O, g.N, g.HO, g.WO), dtype=x.dtype)
    for k, (_, _, oh, ow, start) in enumerate(plan):
        rows, cols = _under(g, oh, ow, start)
        outputs = acc[:, :, oh[0]:oh[1], ow[0]:ow[1]]
        outputs += matmul(w_taps[k], _matrix(xc[:, :, rows, cols], g.C)).reshape(outputs.shape)
    return _channels_major(acc)


def _balanced(plan, parts):
    """The taps' indices dealt into ``parts`` lists of near-equal output area (the
    largest first, each to the lightest list): a fixed deal, so the results never
    depend on the threads' timing."""
    lists, loads = [[] for _ in range(parts)], [0] * parts
    areas = [(oh[1] - oh[0]) * (ow[1] - ow[0]) for _, _, oh, ow, _ in plan]
    for k in sorted(range(len(plan)), key=lambda k: (-areas[k], k)):
        lightest = loads.index(min(loads))
        lists[lightest].append(k)
        loads[lightest] += areas[k]
    return [sorted(part) for part in lists if part]


def _tap_grads(gyc, g, oh, ow):
    return _matrix(gyc[:, :, oh[0]:oh[1], ow[0]:ow[1]], g.O)


def conv2d_backward(x, w, gy, g, need_dx, need_dw):
    plan, w_taps = _taps_and_weights(w, g) if need_dx else (taps(g), None)
    gyc = _channels_major(gy)
    dw = None
    if need_dw:
        # (the weight gradient reads x channels-last, (N, H, W, C): X_ij^T is then a plain
        # matrix; with X_ij transposed, 512->512 at 2x2, batch 64, its copies and products
        # took 5.2-5.3 ms against 4.5-4.7)
        xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        dw_taps = np.empty((len(plan), g.O, g.C), dtype=w.dtype)

        def weight_grads(ks, product=np.matmul):
            for k in ks:
                _, _, oh, ow, start = plan[k]
                rows, cols = _under(g, oh, ow, start)
                product(_tap_grads(gyc, g, oh, ow), np.ascontiguousarray(xl[:, rows, cols]).reshape(-1, g.C),
                        out=dw_taps[k])

        if len(plan) < THREADS:  # (a 1x1 map's one tap: its GEMM split over the threads)
            weight_grads(range(len(plan)), product=matmul)
        else:
            # The taps dealt to the threads, each copying its own operands and running
            # whole GEMMs: one hand-off instead of one per tap, and the copies in
            # parallel.  512->512 at 2x2, batch 64, both threads, the medians of nine
            # alternating blocks each: 5.5 -> 4.4 ms (7.5 -> 6.0 in a noisier run).
            in_threads([functools.partial(weight_grads, ks) for ks in _balanced(plan, THREADS)])
        dw = np.empty(w.shape, dtype=w.dtype)
        _weights_from_taps.sized(dw.size)(dw_taps, dw, *_tap_indices(plan))
    dxc = None
    if need_dx:
        dxc = np.zeros((g.C, g.N, g.H, g.W), dtype=x.dtype)
        for k, (_, _, oh, ow, start) in enumerate(plan):
            rows, cols = _under(g, oh, ow, start)
            under = dxc[:, :, rows, cols]
            under += matmul(w_taps[k].T, _tap_grads(gyc, g, oh, ow)).reshape(under.shape)
    return (_channels_major(dxc) if need_dx else None), dw
