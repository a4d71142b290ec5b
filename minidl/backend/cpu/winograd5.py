"""The tile transforms of Winograd F(2x2, 5x5) on the CPU; winograd.py drives them
(chunks, GEMMs, both backwards) exactly as it drives its own F(2x2, 3x3).

A 5x5 stride-1 convolution on 6x6 input tiles that overlap by four, each giving a 2x2
output tile:  Y = A^T [ sum_c (G w_oc G^T) (.) (B^T d_c B) ] A,  36 multiplications per
tile and input channel where a direct 2x2 output tile takes 100: 2.78x fewer flops.
The matrices are Toom-Cook's for the points 0, 1, -1, 2, -2 and infinity (Lavin &
Gray, 2016; B^T is the one F(4x4, 3x3) uses).  B^T and A^T are integers, exact in
binary; G holds 1/4, 1/6, 1/12, 1/24, so the weight transform rounds.

Accuracy, float32 against float64 on the same inputs (tests/test_winograd.py holds
it below 2e-5): at AlexNet's, Inception-v3's and GoogLeNet's 5x5 layers, batch 16, the
largest error of the forward and both gradients is 2.9e-6 to 8.4e-6 of the largest
value, 10-30x im2col's (2.3e-7 to 5.0e-7: its BLAS sums in blocks).  F(4x4, 3x3), on
the same points, measured alike (2.5e-6 to 1.2e-5) and was not adopted for a speed-up
of 1.02-1.31x; this one is 1.2-1.7x faster in the forward (winograd._wins_5x5).  Where
that error matters, conv_algo = "im2col" keeps every convolution on im2col.

Layouts as in winograd.py, with 36 tile positions: V (36, C, T) and M (36, O, T) per
chunk, xi = 6 * row + column.  Each transform is applied row by row, each output row
one loop over all of a chunk's tiles that LLVM vectorizes: B^T and A^T written out
with their shared sums, G (weights only) from its matrix, zeros skipped.  (From the
matrices, the output transform ran 1.37x slower and the input transform 1.0-1.16x; B
applied once per input row, shared by its three tile rows, ran 1.6x slower: loops
over one tile row's 7-28 tiles.)
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .parallel import parallel_kernel
from .winograd_tiles import (gather_output_tiles, input_transform, scatter_output_tiles, tile_planes,
                             tiles_from_planes, weight_transform)

_BT = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 1]], dtype=np.float64)
_G = np.array([[1 / 4, 0, 0, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3],
               [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3],
               [0, 0, 0, 0, 1]], dtype=np.float64)
ZERO, ONE, TWO, SIX = np.uint64(0), np.uint64(1), np.uint64(2), np.uint64(6)


@njit(cache=True, inline="always")
def _combine(coef, k, src, src_rows, src_off, dst, dst_row, dst_off, length):
    """dst[dst_row, dst_off + t] = sum_a coef[k, a] * src[src_rows[a], src_off + t] for
    t < length (rows and offsets unsigned: parallel.py)."""
    out = np.uint64(dst_row)
    for t in range(length):
        dst[out, dst_off + np.uint64(t)] = 0
    for a in range(coef.shape[1]):
        c = coef[k, a]
        if c != 0:
            row = np.uint64(src_rows[a])
            for t in range(length):
                dst[out, dst_off + np.uint64(t)] += c * src[row, src_off + np.uint64(t)]


@njit(cache=True, inline="always")
def _bt_rows(src, s0, step, src_off, dst, d0, dstep, dst_off, length):
    """dst rows d0 + k * dstep (k = 0..5) = B^T applied to src rows s0 + a * step
    (a = 0..5), over ``length`` elements from the offsets; one pass per output row,
    B^T's rows written out with their shared sums."""
    a0, a1, a2, a3, a4, a5 = s0, s0 + step, s0 + 2 * step, s0 + 3 * step, s0 + 4 * step, s0 + 5 * step
    o = d0
    for t in range(length):  # 4 d0 - 5 d2 + d4
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = 4 * src[a0, i] - 5 * src[a2, i] + src[a4, i]
    o += dstep
    for t in range(length):  # (d3 + d4) - 4 (d1 + d2)
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a3, i] + src[a4, i] - 4 * (src[a1, i] + src[a2, i])
    o += dstep
    for t in range(length):  # (d4 - d3) + 4 (d1 - d2)
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a4, i] - src[a3, i] + 4 * (src[a1, i] - src[a2, i])
    o += dstep
    for t in range(length):  # (d4 - d2) + 2 (d3 - d1)
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a4, i] - src[a2, i] + 2 * (src[a3, i] - src[a1, i])
    o += dstep
    for t in range(length):  # (d4 - d2) - 2 (d3 - d1)
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a4, i] - src[a2, i] - 2 * (src[a3, i] - src[a1, i])
    o += dstep
    for t in range(length):  # 4 d1 - 5 d3 + d5
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = 4 * src[a1, i] - 5 * src[a3, i] + src[a5, i]


@njit(cache=True, inline="always")
def _at_rows(src, s0, step, src_off, dst, d0, dstep, dst_off, length):
    """The two rows of A^T applied to src rows s0 + a * step (a = 0..5), as _bt_rows."""
    a0, a1, a2, a3, a4, a5 = s0, s0 + step, s0 + 2 * step, s0 + 3 * step, s0 + 4 * step, s0 + 5 * step
    for t in range(length):  # m0 + m1 + m2 + m3 + m4
        i = src_off + np.uint64(t)
        dst[d0, dst_off + np.uint64(t)] = src[a0, i] + src[a1, i] + src[a2, i] + src[a3, i] + src[a4, i]
    o = d0 + dstep
    for t in range(length):  # m1 - m2 + 2 (m3 - m4) + m5
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a1, i] - src[a2, i] + 2 * (src[a3, i] - src[a4, i]) + src[a5, i]


@njit(cache=True, inline="always")
def _a_rows(src, s0, step, src_off, dst, d0, dstep, dst_off, length):
    """The six rows of A (A^T's transpose: g0, g0 + g1, g0 - g1, g0 + 2 g1, g0 - 2 g1,
    g1) applied to src rows s0 and s0 + step, as _bt_rows."""
    a0, a1 = s0, s0 + step
    o = d0
    for t in range(length):
        dst[o, dst_off + np.uint64(t)] = src[a0, src_off + np.uint64(t)]
    o += dstep
    for t in range(length):
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a0, i] + src[a1, i]
    o += dstep
    for t in range(length):
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a0, i] - src[a1, i]
    o += dstep
    for t in range(length):
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a0, i] + 2 * src[a1, i]
    o += dstep
    for t in range(length):
        i = src_off + np.uint64(t)
        dst[o, dst_off + np.uint64(t)] = src[a0, i] - 2 * src[a1, i]
    o += dstep
    for t in range(length):
        dst[o, dst_off + np.uint64(t)] = src[a1, src_off + np.uint64(t)]


@njit(cache=True, inline="always")
def _bt_down_and_across(runs, down, v, t0, tiles):
    """v[6 i + j, t0 + t] = (B^T d B)[i, j] of tile t, runs[6 a + s, t] its row a,
    column s: B^T down each tile's columns into ``down``, then across its rows."""
    for s in range(6):
        _bt_rows(runs, np.uint64(s), SIX, ZERO, down, np.uint64(s), SIX, ZERO, tiles)
    for i in range(6):
        _bt_rows(down, np.uint64(6 * i), ONE, ZERO, v, np.uint64(6 * i), ONE, t0, tiles)


@njit(cache=True, nogil=True, fastmath=True)
def _input_tiles_from_planes(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl, columns):
    """input_tiles on small maps (winograd_tiles.tiles_from_planes)."""
    tiles = (r1 - r0) * tiles_w
    planes, corner = tile_planes(x, 6, r0, r1, tiles_h, tiles_w, columns)
    runs = np.empty((36, tiles), dtype=x.dtype)  # runs[6 a + s, t]: tile t's row a, column s
    down = np.empty((36, tiles), dtype=x.dtype)
    for c in range(x.shape[1]):
        tiles_from_planes(x, c, planes, corner, runs, 6, r0, r1, tiles_h, tiles_w, pt, pl)
        _bt_down_and_across(runs, down, v, np.uint64(c * cols + first), tiles)


@njit(cache=True, nogil=True, fastmath=True)
def _input_tiles_by_rows(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl):
    """input_tiles on larger maps.  Each input row is split into its even and odd columns once; tile t's
    column s is then the even or odd column tx + s // 2 (unit-stride loops).  Then B^T
    down and across, each over all the chunk's tiles at once.  (B applied across each
    input row once, shared by the row's three tile rows, ran 1.6x slower: loops of one
    tile row, 7-28 tiles, cost more to start than they saved.  The gather is
    winograd._input_tiles' in shape, but one shared loop cost either variant: reading
    even-odd pairs of the row, as that one does, made this one 1.15-1.2x slower, and
    the split rows made that one 1.35x slower.)"""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    tiles = (r1 - r0) * tiles_w
    pw = 2 * tiles_w + 4
    d = np.zeros(pw, dtype=x.dtype)  # one input row, zero-padded
    half = np.empty((2, tiles_w + 2), dtype=x.dtype)  # its even and odd columns
    runs = np.empty((36, tiles), dtype=x.dtype)  # runs[6 a + s, t]: tile t's row a, column s
    down = np.empty((36, tiles), dtype=x.dtype)  # (B^T d)[i, s] at down[6 i + s, t]
    j0, j1 = max(0, -pl), min(width, pw - pl)
    dst = np.uint64(j0 + pl)
    for c in range(channels):
        for r in range(r0, r1):
            n = r // tiles_h
            top = 2 * (r - n * tiles_h) - pt
            at = np.uint64((r - r0) * tiles_w)
            for a in range(6):
                ih = top + a
                if ih < 0 or ih >= height:
                    for s in range(6):
                        for tx in range(tiles_w):
                            runs[6 * a + s, at + np.uint64(tx)] = 0
                    continue
                for j in range(j1 - j0):
                    d[dst + np.uint64(j)] = x[n, c, ih, np.uint64(j0 + j)]
                for k in range(tiles_w + 2):
                    half[0, k] = d[2 * k]
                for k in range(tiles_w + 2):
                    half[1, k] = d[2 * k + 1]
                for s in range(6):
                    row, parity, shift = np.uint64(6 * a + s), np.uint64(s % 2), np.uint64(s // 2)
                    for tx in range(tiles_w):
                        runs[row, at + np.uint64(tx)] = half[parity, shift + np.uint64(tx)]
        _bt_down_and_across(runs, down, v, np.uint64(c * cols + first), tiles)


# v[6 i + j, c * cols + first + t] = (B^T d B)[i, j] for every 6x6 input tile d of the
# chunk: gathered from zero-padded planes on small maps, else row by row.
input_tiles = input_transform(_input_tiles_from_planes, _input_tiles_by_rows)


@njit(cache=True, nogil=True, fastmath=True)
def output_tiles(m, cols, y, o0, o1, r0, r1, tiles_h, tiles_w, columns):
    """y[:, o0:o1] = A^T M A for every tile of the chunk (the part inside the output
    map), M's element xi at m[xi, (o - o0) * cols + t]."""
    tiles = (r1 - r0) * tiles_w
    s = np.empty((12, tiles), dtype=m.dtype)   # A^T M: s[6 p + j, t]
    out = np.empty((4, tiles), dtype=m.dtype)  # A^T M A: out[2 p + q, t], q 0 even, 1 odd column
    for o in range(o0, o1):
        base = np.uint64((o - o0) * cols)
        for j in range(6):  # A^T down ...
            _at_rows(m, np.uint64(j), SIX, base, s, np.uint64(j), SIX, ZERO, tiles)
        for p in range(2):  # ... and across
            _at_rows(s, np.uint64(6 * p), ONE, ZERO, out, np.uint64(2 * p), ONE, ZERO, tiles)
        scatter_output_tiles(out, y, o, r0, r1, tiles_h, tiles_w, columns)


@njit(cache=True, nogil=True, fastmath=True)
def output_tiles_adjoint(gy, dm, cols, r0, r1, tiles_h, tiles_w, columns):
    """dm[xi, o * cols + t] = (A dY A^T)[xi], dY each 2x2 output-gradient tile of the
    chunk (zero outside the map)."""
    out_ch = gy.shape[1]
    tiles = (r1 - r0) * tiles_w
    g = np.zeros((4, tiles), dtype=gy.dtype)   # g[2 p + q, t]: tile t's dY[p, q]
    u = np.empty((12, tiles), dtype=gy.dtype)  # A dY: u[2 i + q, t]
    for o in range(out_ch):
        gather_output_tiles(gy, o, g, r0, r1, tiles_h, tiles_w, columns)
        for q in range(2):  # A down ...
            _a_rows(g, np.uint64(q), TWO, ZERO, u, np.uint64(q), TWO, ZERO, tiles)
        base = np.uint64(o * cols)
        for i in range(6):  # ... and across
            _a_rows(u, np.uint64(2 * i), ONE, ZERO, dm, np.uint64(6 * i), ONE, base, tiles)


@parallel_kernel(fastmath=True, nogil=True)  # (nogil: as winograd._weight_tiles)
def weight_tiles(w, u, adjoint, gm, o0, o1):
    """u[6 i + j, o * C + c] = (G w[o, c] G^T)[i, j] for the output channels o0 <= o < o1,
    u a (36, pitch) stack; with ``adjoint`` the same of the input gradient's weights
    w[c, o, 4 - k, 4 - l] (O and C swapped).  The taps copied into rows over the input
    channels, then G applied in loops over them (25 taps in registers would not fit)."""
    channels = w.shape[0] if adjoint else w.shape[1]
    for o in prange(o0, o1):
        taps = np.empty((25, channels), dtype=w.dtype)  # taps[5 k + l, c] = w[o, c, k, l]
        gw = np.empty((30, channels), dtype=w.dtype)    # (G w)[i, l] at gw[5 i + l, c]
        rows = np.empty(6, dtype=np.int64)
        for c in range(channels):
            for k in range(25):
                if adjoint:
                    taps[k, c] = w[c, o, 4 - k // 5, 4 - k % 5]
                else:
                    taps[k, c] = w[o, c, k // 5, k % 5]
        for l in range(5):
            for k in range(5):
                rows[k] = 5 * k + l
            for i in range(6):
                _combine(gm, i, taps, rows, ZERO, gw, 5 * i + l, ZERO, channels)
        base = np.uint64(o * channels)
        for i in range(6):
            for l in range(5):
                rows[l] = 5 * i + l
            for j in range(6):
                _combine(gm, j, gw, rows, ZERO, u, 6 * i + j, base, channels)


@parallel_kernel(fastmath=True)
def weight_tiles_adjoint(du, dw, gm):
    """dw[o, c] = G^T dU[o, c] G, the adjoint of weight_tiles (du (36, O, C))."""
    out_ch, channels = dw.shape[0], dw.shape[1]
    for o in prange(out_ch):
        h = np.empty((30, channels), dtype=dw.dtype)  # (dU G)[i, l] at h[5 i + l, c]
        for i in range(6):
            for l in range(5):
                for c in range(channels):
                    h[5 * i + l, c] = 0
                for j in range(6):
                    coef = gm[j, l]
                    if coef != 0:
                        for c in range(channels):
                            h[5 * i + l, c] += coef * du[6 * i + j, o, c]
        for k in range(5):
            for l in range(5):
                for c in range(channels):
                    total = 0.0
                    for i in range(6):
                        total += gm[i, k] * h[5 * i + l, c]
                    dw[o, c, k, l] = total


class Transforms5x5:
    """The transforms behind winograd.py's drivers (the interface of its
    _Transforms3x3), with G in the data's dtype: the weight transforms multiply in the
    data's precision.  B^T and A^T are written out in _bt_rows, _at_rows and _a_rows;
    tests check them against _BT and _AT."""
    kernel, positions = 5, 36

    def __init__(self, dtype):
        self.g = _G.astype(dtype)

    input_tiles = staticmethod(input_tiles)
    output_tiles = staticmethod(output_tiles)
    output_tiles_adjoint = staticmethod(output_tiles_adjoint)

    def weight_tiles(self, w, u, adjoint, outputs=None):
        weight_transform(weight_tiles, w, u, adjoint, outputs, self.g)

    def weight_tiles_adjoint(self, du, dw):
        weight_tiles_adjoint.sized(du.size)(du, dw, self.g)
