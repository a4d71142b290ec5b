"""Winograd F(2x2, 3x3) convolution on the CPU (Lavin & Gray, 2016), forward and both backwards
(and the drivers of F(2x2, 5x5), winograd5.py).

A 3x3 stride-1 convolution is computed on 4x4 input tiles that overlap by two, each
giving a 2x2 output tile:

    Y = A^T [ sum_c (G w_oc G^T) (.) (B^T d_c B) ] A

so the 9 * 4 = 36 multiplications of a direct 2x2 output tile become 16: 2.25x fewer
flops.  The sum over input channels of each of the 16 tile positions xi is one GEMM,
``M[xi] = U[xi] @ V[xi]`` with U (16, O, C) the transformed weights and V (16, C, T) the
transformed input tiles, done by BLAS; the transforms (adds and subtracts only for B
and A) are Numba loops.  The tiles are cut into chunks of about CHUNK_BYTES, so that a
chunk's V and M stay in L2 from the input transform through the GEMMs to the output
transform; each thread takes a run of chunks (a whole-batch V and M, 25 MB each for
64 channels at 56x56 and batch 8, made the transforms memory-bound).

Backward:
  * input gradient: the same forward, on gy, with the weights transposed and rotated
    by 180 degrees and padding 2 - p (a stride-1 3x3 convolution's adjoint);
  * weight gradient: the adjoint of the forward's transforms, exactly:
    dU[xi] = dM[xi] @ V[xi]^T with dM = A dY A^T per tile, then dW = G^T dU G.

Accuracy: F(2x2, 3x3)'s transforms are exact in binary (coefficients 0, +-1, +-1/2);
its GEMMs sum C products where im2col's sum 9C, and its float32 error measured half of
im2col's (tests/test_winograd.py holds the bound).  F(4x4, 3x3) (2.25 products per
output instead of 4) was built and measured, forward and input gradient, and not
kept: 1.02-1.31x faster at 13x13 to 112x112 (0.53-0.60x at 7x7), for a float32 error
6-28x im2col's (2.5e-6 to 1.2e-5 of the largest output; coefficients 4, 5, 8, 1/6,
1/24); benchmarks/results/cpu/NOTES.md has the figures.

The same drivers (chunks, GEMMs, both backwards) run F(2x2, 5x5) for 5x5 convolutions
with winograd5.py's transforms (36 tile positions; ``_transforms`` picks the variant).

Layouts: V (16, C, T) and M (16, O, T) per chunk, xi = 4 * row + column of the tile
position.  Output gradients beyond the output map are zero; reads beyond the padded
input are zero.

Odd maps: the last tile of a row (or column) has one output inside the map, and its
last tile position column (row) reaches only the other output.  Where the input is
read from planes, the tiles are ordered so that those products are left out of the
GEMMs (winograd_tiles.boundary_order, _products): 12% fewer at 7x7, 7% at 13x13.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import as_strided

from . import winograd5
from .gemm import THREADS, in_threads, panels
from .parallel import parallel_kernel
from .winograd_tiles import (boundary_order, gather_output_tiles, input_transform, scatter_output_tiles,
                             tile_planes, tiles_from_planes, weight_transform)
from .workspace import workspace

# "auto" (wins): output maps of at least this many pixels, both sides at least MIN_CHANNELS;
# on smaller maps, with at least SMALL_MIN_IN_CHANNELS input channels, by the batch's
# tile count against SMALL_MIN_TILES (see wins).
MIN_PIXELS = 12 * 12
MIN_CHANNELS = 16
SMALL_MIN_IN_CHANNELS = 64
SMALL_MIN_TILES = 64
# A chunk's input tiles and products together: about half the 2 MB L2 per core of the Intel
# VM it was set on.  On the AMD VM (1 MB L2 per core) 256 KB-1 MB chunks measured even: 3x3
# convolutions at 56x56-8x8, forward and both gradients, both threads (NOTES.md).
CHUNK_BYTES = 1 << 20
# ... but at least this many tiles, so that its 16 GEMMs are not too thin for BLAS.
MIN_CHUNK_TILES = 128
# The boundary tiles' skipped products (boundary_order) from this many multiply-adds per
# tile position in a chunk (O x C x T): below it the three more GEMM calls and the
# zeroing cost more than the 12% they save (the 16 GEMMs of 128 tiles at 7x7, one
# thread: 128->32 149 -> 159 us; 128->128 696 -> 658 us; 256->256 2.73 -> 2.49 ms).
SKIP_MIN_MACS = 1 << 20
# Output channels per thread, at least, where a convolution's few tiles go to every
# thread and the threads split its output channels (_by_output_channels).
MIN_PANEL_CHANNELS = 64
# The weight gradient's GEMMs dM @ V^T read one operand transposed: OpenBLAS ran that
# "NT" product at 53-72 GFLOP/s for 64 channels and ~140 tiles of K, against 171 for
# "NN".  So the smaller of dM and V is copied tile-major first and the product is NN:
# dU^T = V @ dM^T where O <= C, else dU = dM @ V^T (one thread, batch 16, copy + GEMM
# against the NT product: 128->32 at 56x56 12.9 vs 26.0 ms, 256->256 at 14x14 14.2
# vs 20.8; the copy of V, the larger, cost 128->32 26.2).


def applies(g):
    """A 3x3 or 5x5 (winograd5.py) stride-1 undilated ungrouped convolution whose padding
    its input gradient's rotated convolution can take (0 <= p <= kernel - 1)."""
    return (g.KH == g.KW and g.KH in (3, 5) and g.stride == (1, 1) and g.dh == g.dw == 1 and g.G == 1
            and all(0 <= p <= g.KH - 1 for p in g.padding))


def wins(g, dtype, direction="forward"):
    """Where "auto" takes Winograd for ``direction`` ("forward", "input_grad" or
    "weight_grad"): float32 (float64 is the reference arithmetic and stays on im2col)
    with channels enough for the 16 GEMMs.  Maps of MIN_PIXELS and more always: at batch
    16, im2col / Winograd time (forward / input grad / weight grad; NOTES.md): 64->64 at
    56x56 1.98 / 1.93 / 1.46x, 256->256 at 14x14 1.31 / 1.34 / 1.24x, AlexNet's 13x13
    layers 1.35-1.41 / 1.13-1.16 / 1.08-1.12x, 3->64 at 112x112 0.48 / 0.39 / 0.45x.

    Smaller maps (2x2 to 11x11: ResNet's last stages, ResNet-18 at 64 px) by the number
    of tiles T in the batch.  Winograd's fixed costs grow with O * C (the 16 transformed
    weight matrices, and for the weight gradient one 16 x O x C sum per thread), its
    savings with T * O * C; on 2x2 and 4x4 maps it also skips the products with padding
    that im2col does.  Measured on a grid of 2x2 to 8x8 maps, 64 to 512 channels, batch
    8 / 16 / 64 (NOTES.md): the forward wins from T = 64 (1.25-3.9x; at T = 8 to 32 it
    lost with 512 channels, 0.50-0.90x); the input gradient from T = 64 where O <= C
    (0.97-2.8x), where O = 2 C from T = 256 (1.27x at 8x8; 0.90x at T = 64), and where
    O = 4 C it lost at every T (0.79-0.96x); the weight gradient where C >= 2 O from
    T = 64 (1.11-2.7x), else only from T = 256 and 256 tiles per 65536 of O * C (512->512
    at 4x4 to 7x7 lost 0.52-0.78x up to T = 256, won 1.16x at T = 1024).  Maps whose
    tiles cover over 1.5x their pixels (1x1, 3x3) stay on im2col."""
    if np.dtype(dtype) != np.float32 or min(g.C, g.O) < MIN_CHANNELS:
        return False
    if g.KH == 5:
        return _wins_5x5(g, direction)
    if g.HO * g.WO >= MIN_PIXELS:
        return True
    tiles_h, tiles_w = (g.HO + 1) // 2, (g.WO + 1) // 2
    tile_pixels = 4 * tiles_h * tiles_w
    if g.C < SMALL_MIN_IN_CHANNELS or 2 * tile_pixels > 3 * g.HO * g.WO:
        return False
    tiles = g.N * tiles_h * tiles_w
    if direction == "forward":
        return tiles >= SMALL_MIN_TILES
    if direction == "input_grad":
        return tiles >= (SMALL_MIN_TILES if g.O <= g.C else 4 * SMALL_MIN_TILES) and g.O <= 2 * g.C
    if g.C >= 2 * g.O:
        return tiles >= SMALL_MIN_TILES
    return tiles >= max(4 * SMALL_MIN_TILES, g.C * g.O // 256)


def _wins_5x5(g, direction):
    """F(2x2, 5x5) (winograd5.py) on maps of 7x7 and more.  Measured at batch 16 against
    im2col (forward / input grad / weight grad speed-up, NOTES.md): AlexNet's 64->192 at
    27x27 1.54 / 1.15 / 1.15x, Inception-v3's 48->64 at 35x35 1.66 / 2.08 / 1.31x,
    GoogLeNet's 16->32 and 32->96 at 28x28 1.65 / 1.15 / 0.88x and 1.30 / 0.56 / 1.60x,
    16->48 and 24->64 at 14x14 1.20 / 0.55 / 0.86x and 1.56 / 0.72 / 0.93x, 32->128 and
    48->128 at 7x7 1.22 / 0.48 / 0.83x and 1.28 / 0.77 / 1.02x.  So the forward always;
    the input gradient (a forward over O channels into C) where O <= 2 C; the weight
    gradient from 32 input channels on maps of MIN_PIXELS."""
    if g.HO * g.WO < 49:
        return False
    if direction == "forward":
        return True
    if direction == "input_grad":
        return g.O <= 2 * g.C
    return g.C >= 32 and g.HO * g.WO >= MIN_PIXELS


# ------------------------------------------------------------------ Numba transforms
# Each handles the tile rows [r0, r1) of a chunk, counted over the whole batch (tile row
# r is tile row r % tiles_h of image r // tiles_h); tile t of the chunk is
# (r - r0) * tiles_w + tx.  They run one per thread (nogil), the chunks split between
# threads by the drivers below.  A stack is passed as its (16, pitch) array ``s``, matrix
# xi at s[xi, :rows * cols], element (row, t) at s[xi, row * cols + t].
# They are written so that LLVM vectorizes them (parallel.py lists how; they ran scalar
# before, 1.2-3x slower): unsigned offsets, one array written per inner loop, no views
# in the loops, and the stride-2 columns of a tile split once into even and odd rows.
@njit(cache=True, inline="always")
def _bt_down_and_across(runs, rows, v, t0, tiles):
    """v[xi, t0 + t] = (B^T d B)[xi] of tile t, runs[4 * a + s, t] its row a, column s:
    B^T's rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3) down into ``rows``, then across,
    each a loop over all the tiles."""
    for s in range(4):
        for t in range(tiles):
            rows[s, t] = runs[s, t] - runs[8 + s, t]
        for t in range(tiles):
            rows[4 + s, t] = runs[4 + s, t] + runs[8 + s, t]
        for t in range(tiles):
            rows[8 + s, t] = runs[8 + s, t] - runs[4 + s, t]
        for t in range(tiles):
            rows[12 + s, t] = runs[4 + s, t] - runs[12 + s, t]
    for k in range(4):
        for t in range(tiles):
            v[4 * k, t0 + np.uint64(t)] = rows[4 * k, t] - rows[4 * k + 2, t]
        for t in range(tiles):
            v[4 * k + 1, t0 + np.uint64(t)] = rows[4 * k + 1, t] + rows[4 * k + 2, t]
        for t in range(tiles):
            v[4 * k + 2, t0 + np.uint64(t)] = rows[4 * k + 2, t] - rows[4 * k + 1, t]
        for t in range(tiles):
            v[4 * k + 3, t0 + np.uint64(t)] = rows[4 * k + 1, t] - rows[4 * k + 3, t]


@njit(cache=True, nogil=True, fastmath=True)
def _input_tiles_from_planes(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl, columns):
    """_input_tiles on small maps (winograd_tiles.tiles_from_planes)."""
    tiles = (r1 - r0) * tiles_w
    planes, corner = tile_planes(x, 4, r0, r1, tiles_h, tiles_w, columns)
    runs = np.empty((16, tiles), dtype=x.dtype)  # runs[4 * a + s, t]: tile t's row a, column s
    rows = np.empty((16, tiles), dtype=x.dtype)
    for c in range(x.shape[1]):
        tiles_from_planes(x, c, planes, corner, runs, 4, r0, r1, tiles_h, tiles_w, pt, pl)
        _bt_down_and_across(runs, rows, v, np.uint64(c * cols + first), tiles)


@njit(cache=True, nogil=True, fastmath=True)
def _input_tiles_by_rows(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl):
    """_input_tiles on larger maps.  Tile t's columns 2tx .. 2tx + 3 are, per input row,
    the even and odd columns at tx ("left") and tx + 1 ("right"): each of its 4 rows is
    split into those 4 runs over the chunk's tiles, and then B^T is applied down and
    across in loops over all of a channel's tiles at once (loops per tile row spent
    their time starting)."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    tiles = (r1 - r0) * tiles_w
    pw = 2 * tiles_w + 2
    d = np.zeros(pw, dtype=x.dtype)  # one input row, zero-padded
    # runs[4 * a + s, t]: tile t's row a, s = 0 even-left, 1 odd-left, 2 even-right, 3 odd-right
    runs = np.empty((16, tiles), dtype=x.dtype)
    rows = np.empty((16, tiles), dtype=x.dtype)  # B^T down: rows[4 * k + s, t]
    j0, j1 = max(0, -pl), min(width, pw - pl)
    dst = np.uint64(j0 + pl)
    for c in range(channels):
        for r in range(r0, r1):
            n = r // tiles_h
            top = 2 * (r - n * tiles_h) - pt
            at = np.uint64((r - r0) * tiles_w)
            for a in range(4):
                ih = top + a
                if ih < 0 or ih >= height:
                    for s in range(4):
                        for tx in range(tiles_w):
                            runs[4 * a + s, at + np.uint64(tx)] = 0
                    continue
                for j in range(j1 - j0):
                    d[dst + np.uint64(j)] = x[n, c, ih, np.uint64(j0 + j)]
                for tx in range(tiles_w):
                    runs[4 * a, at + np.uint64(tx)] = d[2 * tx]
                    runs[4 * a + 1, at + np.uint64(tx)] = d[2 * tx + 1]
                for tx in range(tiles_w):
                    runs[4 * a + 2, at + np.uint64(tx)] = d[2 * tx + 2]
                    runs[4 * a + 3, at + np.uint64(tx)] = d[2 * tx + 3]
        _bt_down_and_across(runs, rows, v, np.uint64(c * cols + first), tiles)


# v[xi, c * cols + first + t] = (B^T d B)[xi] for every 4x4 input tile d of the chunk:
# gathered from zero-padded planes on small maps, else row by row.
_input_tiles = input_transform(_input_tiles_from_planes, _input_tiles_by_rows)


@njit(cache=True, nogil=True, fastmath=True)
def _output_tiles(m, cols, y, o0, o1, r0, r1, tiles_h, tiles_w, columns):
    """y[:, o0:o1] = A^T M A for every tile of the chunk (the part inside the output
    map), M's element xi at m[xi, (o - o0) * cols + t].  A^T's rows are m0 + m1 + m2
    and m1 - m2 - m3: down each tile's columns, then across into its even and odd
    output columns, both over all the chunk's tiles at once (long vector loops), then
    interleaved per row."""
    tiles = (r1 - r0) * tiles_w
    s = np.empty((8, tiles), dtype=m.dtype)    # down: s[4 i + j, t], output row i, column j
    out = np.empty((4, tiles), dtype=m.dtype)  # across: out[2 i + e, t], e 0 even, 1 odd
    for o in range(o0, o1):
        base = np.uint64((o - o0) * cols)
        for j in range(4):
            for t in range(tiles):
                s[j, t] = m[j, base + np.uint64(t)] + m[4 + j, base + np.uint64(t)] + m[8 + j, base + np.uint64(t)]
            for t in range(tiles):
                s[4 + j, t] = m[4 + j, base + np.uint64(t)] - m[8 + j, base + np.uint64(t)] - m[12 + j, base + np.uint64(t)]
        for i in range(2):
            for t in range(tiles):
                out[2 * i, t] = s[4 * i, t] + s[4 * i + 1, t] + s[4 * i + 2, t]
            for t in range(tiles):
                out[2 * i + 1, t] = s[4 * i + 1, t] - s[4 * i + 2, t] - s[4 * i + 3, t]
        scatter_output_tiles(out, y, o, r0, r1, tiles_h, tiles_w, columns)


@njit(cache=True, nogil=True, fastmath=True)
def _output_tiles_adjoint(gy, dm, cols, r0, r1, tiles_h, tiles_w, columns):
    """dm[xi, o * cols + t] = (A dY A^T)[xi], dY each 2x2 output-gradient tile of the
    chunk (zero outside the map); A's rows are g0, g0 + g1, g0 - g1, -g1.  The output
    gradient's rows are split into each tile's even and odd columns per tile row, then
    A is applied down and across over all the chunk's tiles at once."""
    out_ch = gy.shape[1]
    tiles = (r1 - r0) * tiles_w
    g = np.zeros((4, tiles), dtype=gy.dtype)  # g[2 i + e, t]: tile t's row i, e 0 even, 1 odd column
    u = np.empty((8, tiles), dtype=gy.dtype)  # A dY: u[2 k + e, t]
    for o in range(out_ch):
        gather_output_tiles(gy, o, g, r0, r1, tiles_h, tiles_w, columns)
        for e in range(2):  # A down: g0, g0 + g1, g0 - g1, -g1
            for t in range(tiles):
                u[e, t] = g[e, t]
            for t in range(tiles):
                u[2 + e, t] = g[e, t] + g[2 + e, t]
            for t in range(tiles):
                u[4 + e, t] = g[e, t] - g[2 + e, t]
            for t in range(tiles):
                u[6 + e, t] = -g[2 + e, t]
        t0 = np.uint64(o * cols)
        for k in range(4):  # ... and across
            for t in range(tiles):
                dm[4 * k, t0 + np.uint64(t)] = u[2 * k, t]
            for t in range(tiles):
                dm[4 * k + 1, t0 + np.uint64(t)] = u[2 * k, t] + u[2 * k + 1, t]
            for t in range(tiles):
                dm[4 * k + 2, t0 + np.uint64(t)] = u[2 * k, t] - u[2 * k + 1, t]
            for t in range(tiles):
                dm[4 * k + 3, t0 + np.uint64(t)] = -u[2 * k + 1, t]


@njit(cache=True, inline="always")
def _g_transposed_times(a0, a1, a2, a3):
    """G^T (a0 a1 a2 a3)^T."""
    return a0 + 0.5 * (a1 + a2), 0.5 * (a1 - a2), 0.5 * (a1 + a2) + a3


@parallel_kernel(fastmath=True, nogil=True)  # (nogil: the serial twin runs in the few-tiles threads)
def _weight_tiles(w, u, adjoint, o0, o1):
    """u[4 i + j, o * C + c] = (G w[o, c] G^T)[i, j] for the output channels o0 <= o < o1,
    u a (16, pitch) stack; with ``adjoint`` the same of the input gradient's weights
    w[c, o, 2 - i, 2 - j] (O and C swapped), read in place of a rotated, transposed copy
    (4.3 ms for 512x512).  Each (o, c) in registers: its 9 taps, G down the columns, G^T
    across, 16 stores.  (Per output channel, the taps first copied into 9 rows over the
    input channels and G then applied in unit-stride loops over c: 512x512 2.6 ms, and
    1.7-2.3 in a second try, against 1.0-1.4 this way, both threads, 2-core AMD EPYC VM;
    scalar loops before that, 2.45 ms on the Xeon.)"""
    channels = w.shape[0] if adjoint else w.shape[1]
    half = w.dtype.type(0.5)
    for o in prange(o0, o1):
        base = np.uint64(o * channels)
        for c in range(channels):
            if adjoint:
                t00, t01, t02 = w[c, o, 2, 2], w[c, o, 2, 1], w[c, o, 2, 0]
                t10, t11, t12 = w[c, o, 1, 2], w[c, o, 1, 1], w[c, o, 1, 0]
                t20, t21, t22 = w[c, o, 0, 2], w[c, o, 0, 1], w[c, o, 0, 0]
            else:
                t00, t01, t02 = w[o, c, 0, 0], w[o, c, 0, 1], w[o, c, 0, 2]
                t10, t11, t12 = w[o, c, 1, 0], w[o, c, 1, 1], w[o, c, 1, 2]
                t20, t21, t22 = w[o, c, 2, 0], w[o, c, 2, 1], w[o, c, 2, 2]
            # G's rows: (1 0 0), (1/2 1/2 1/2), (1/2 -1/2 1/2), (0 0 1), down the columns ...
            g = ((t00, t01, t02),
                 (half * (t00 + t10 + t20), half * (t01 + t11 + t21), half * (t02 + t12 + t22)),
                 (half * (t00 - t10 + t20), half * (t01 - t11 + t21), half * (t02 - t12 + t22)),
                 (t20, t21, t22))
            at = base + np.uint64(c)
            for r in range(4):  # ... and across
                a0, a1, a2 = g[r]
                u[4 * r, at] = a0
                u[4 * r + 1, at] = half * (a0 + a1 + a2)
                u[4 * r + 2, at] = half * (a0 - a1 + a2)
                u[4 * r + 3, at] = a2


@parallel_kernel(fastmath=True)
def _weight_tiles_adjoint(du, dw):
    """dw[o, c] = G^T dU[o, c] G, the adjoint of _weight_tiles."""
    out_ch, channels = dw.shape[0], dw.shape[1]
    for task in prange(out_ch * channels):
        o = task // channels
        c = task - o * channels
        h00, h01, h02 = _g_transposed_times(du[0, o, c], du[1, o, c], du[2, o, c], du[3, o, c])  # dU G
        h10, h11, h12 = _g_transposed_times(du[4, o, c], du[5, o, c], du[6, o, c], du[7, o, c])
        h20, h21, h22 = _g_transposed_times(du[8, o, c], du[9, o, c], du[10, o, c], du[11, o, c])
        h30, h31, h32 = _g_transposed_times(du[12, o, c], du[13, o, c], du[14, o, c], du[15, o, c])
        dw[o, c, 0, 0], dw[o, c, 1, 0], dw[o, c, 2, 0] = _g_transposed_times(h00, h10, h20, h30)  # G^T (dU G)
        dw[o, c, 0, 1], dw[o, c, 1, 1], dw[o, c, 2, 1] = _g_transposed_times(h01, h11, h21, h31)
        dw[o, c, 0, 2], dw[o, c, 1, 2], dw[o, c, 2, 2] = _g_transposed_times(h02, h12, h22, h32)


# ------------------------------------------------------------------ drivers
class _Transforms3x3:
    """F(2x2, 3x3)'s tile transforms, this module's; winograd5.Transforms5x5 has the same
    interface for F(2x2, 5x5), and the drivers below take either (``_transforms``)."""
    kernel, positions = 3, 16  # (positions: the tile's, xi)

    input_tiles = staticmethod(_input_tiles)
    output_tiles = staticmethod(_output_tiles)
    output_tiles_adjoint = staticmethod(_output_tiles_adjoint)

    @staticmethod
    def weight_tiles(w, u, adjoint, outputs=None):
        """U of every output channel, or of the range ``outputs`` (o0, o1) on the
        calling thread (winograd_tiles.weight_transform)."""
        weight_transform(_weight_tiles, w, u, adjoint, outputs)

    @staticmethod
    def weight_tiles_adjoint(du, dw):
        _weight_tiles_adjoint.sized(du.size)(du, dw)


@functools.lru_cache(maxsize=None)
def _transforms(kernel, dtype):
    """The transforms of the variant for ``kernel`` (3 or 5), one instance per dtype."""
    return winograd5.Transforms5x5(np.dtype(dtype)) if kernel == 5 else _Transforms3x3()


def _stack(positions, rows, cols, dtype, slot=None):
    """A stack of ``positions`` (rows, cols) matrices as its (positions, pitch) array,
    whose rows start 64 bytes apart modulo 4 KiB: matrices a multiple of 4 KiB long put
    the 16 streams of a transform in one cache set (4K aliasing; the weight transform of
    512x512 channels ran 2.6x slower).  From this thread's workspace ``slot`` when
    given, else freshly allocated.  _matrices gives the (positions, rows, cols) view for
    the GEMMs."""
    pitch = rows * cols + 64 // np.dtype(dtype).itemsize
    flat = np.empty(positions * pitch, dtype) if slot is None else workspace(slot, positions * pitch, dtype)
    return flat[:positions * pitch].reshape(positions, pitch)


def _matrices(stack, rows, cols):
    return stack[:, :rows * cols].reshape(stack.shape[0], rows, cols)


def _grid(a, k):
    """The (k * k, rows, cols) stack of matrices ``a`` as its (k, k, rows, cols) view:
    [i, j] is tile position xi = k * i + j."""
    return as_strided(a, (k, k) + a.shape[1:], (k * a.strides[0],) + a.strides)


def _position_groups(positions, tiles, skip):
    """-> [(index into a (k, k, ...) grid, (first, end) of the tile columns it needs)]
    over all tile positions, for boundary_order's ``skip`` (right, interior, bottom)."""
    last = math.isqrt(positions) - 1
    right, interior, bottom = skip
    inner = slice(0, last)
    return [((inner, inner), (0, tiles)), ((inner, last), (right, right + interior + bottom)),
            ((last, inner), (0, right + interior)), ((last, last), (right, right + interior))]


def _products(u, v, m, skip):
    """m[xi] = u[xi] @ v[xi] over every tile position xi (u (P, O, C), v (P, C, T)).
    With boundary_order's ``skip`` the last position row and column are multiplied
    only over the tiles that need them, and are zero in the others (which the output
    transform reads into outputs beyond the map)."""
    if skip is None:
        np.matmul(u, v, out=m)
        return
    k = math.isqrt(u.shape[0])
    ug, vg, mg = _grid(u, k), _grid(v, k), _grid(m, k)
    for at, (first, end) in _position_groups(u.shape[0], v.shape[-1], skip):
        np.matmul(ug[at], vg[at][..., first:end], out=mg[at][..., first:end])
        mg[at][..., :first] = 0
        mg[at][..., end:] = 0


def _products_over_tiles(a, b, out, skip):
    """out[xi] = a[xi] @ b[xi], the sum over the tiles (a (P, ., T), b (P, T, .)), the
    weight gradient's.  With boundary_order's ``skip`` the last position row and column
    sum only the tiles where dM can be nonzero: elsewhere dM = A dY A^T there is made of
    output gradients beyond the map, zero."""
    if skip is None:
        return np.matmul(a, b, out=out)
    k = math.isqrt(a.shape[0])
    ag, bg, og = _grid(a, k), _grid(b, k), _grid(out, k)
    for at, (first, end) in _position_groups(a.shape[0], a.shape[-1], skip):
        np.matmul(ag[at][..., first:end], bg[at][..., first:end, :], out=og[at])
    return out


def _tile_major(a):
    """A contiguous copy of a (16, rows, T) stack, transposed to (16, T, rows), in this
    thread's workspace slot 4."""
    at = a.transpose(0, 2, 1)
    out = workspace(4, at.size, at.dtype)[:at.size].reshape(at.shape)
    np.copyto(out, at)
    return out


class _Chunks:
    """The output tiles of one convolution by the variant ``transforms``, cut into
    chunks of whole tile rows (across images for small maps) whose input tiles and
    products together stay near CHUNK_BYTES (L2-resident between transform, GEMM and
    back) with at least ``min_tiles`` tiles (default MIN_CHUNK_TILES), and dealt out to
    THREADS threads as contiguous runs."""

    def __init__(self, transforms, n_img, channels, out_ch, ho, wo, dtype, min_tiles=None):
        self.transforms, self.positions = transforms, transforms.positions
        self.channels, self.out_ch, self.dtype = channels, out_ch, np.dtype(dtype)
        self.ho, self.wo = ho, wo
        self.tiles_h, self.tiles_w = (ho + 1) // 2, (wo + 1) // 2
        per_row = self.positions * (channels + out_ch) * self.tiles_w * self.dtype.itemsize
        total = self.tile_rows = n_img * self.tiles_h
        min_tiles = MIN_CHUNK_TILES if min_tiles is None else min_tiles
        rows = max(1, CHUNK_BYTES // per_row, -(-min_tiles // self.tiles_w))
        # Then as many chunks as a multiple of THREADS allows, of near-equal size (chunks
        # of 37, 37, 37 and 1 tile rows left one thread half idle: 256->256 at 14x14,
        # weight gradient, batch 16, 15.2-17.1 ms against 11.8-12.9 balanced).
        chunks = panels(total, min(total, THREADS * -(-total // (rows * THREADS))))
        self.runs = [chunks[a:b] for a, b in panels(len(chunks), THREADS)]

    def tiles(self, r0, r1):
        return (r1 - r0) * self.tiles_w

    def order(self, r0, r1):
        """-> (columns, skip): the chunk's tile order (winograd_tiles.boundary_order), or
        (None, None) below SKIP_MIN_MACS."""
        if self.out_ch * self.channels * self.tiles(r0, r1) < SKIP_MIN_MACS:
            return None, None
        return boundary_order(r0, r1, self.tiles_h, self.tiles_w, self.ho, self.wo)

    def input_tiles(self, x, r0, r1, pt, pl, columns):
        """-> V (positions, C, tiles) of the chunk (a view of this thread's workspace)."""
        tiles = self.tiles(r0, r1)
        v = _stack(self.positions, self.channels, tiles, self.dtype, slot=2)
        self.transforms.input_tiles(x, v, tiles, 0, r0, r1, self.tiles_h, self.tiles_w, pt, pl, columns)
        return _matrices(v, self.channels, tiles)

    def products(self, r0, r1):
        """-> (the stack, its (positions, O, tiles) matrices) for the chunk's products."""
        m = _stack(self.positions, self.out_ch, self.tiles(r0, r1), self.dtype, slot=3)
        return m, _matrices(m, self.out_ch, self.tiles(r0, r1))

    def each_run(self, work):
        """work(run) for every run, concurrently -> their results."""
        return in_threads([functools.partial(work, run) for run in self.runs])


def _convolve(x, w, pt, pl, ho, wo, adjoint=False):
    """y (N, O, ho, wo) = the stride-1 3x3 or 5x5 cross-correlation of x, zero-padded
    by pt on top and pl on the left (and as far as needed at the bottom and right), with
    the weights w, or with ``adjoint`` those of w's input gradient (w transposed and
    rotated by 180 degrees)."""
    out_ch, channels = (w.shape[1], w.shape[0]) if adjoint else (w.shape[0], w.shape[1])
    f = _transforms(w.shape[2], x.dtype)
    u_stack = _stack(f.positions, out_ch, channels, w.dtype)
    chunks = _Chunks(f, x.shape[0], x.shape[1], out_ch, ho, wo, x.dtype)
    y = np.empty((x.shape[0], out_ch, ho, wo), dtype=x.dtype)
    if _by_output_channels(chunks):
        _convolve_by_output_channels(x, w, adjoint, u_stack, y, chunks, pt, pl)
        return y
    f.weight_tiles(w, u_stack, adjoint)
    u = _matrices(u_stack, out_ch, channels)

    def run(run_chunks):
        for r0, r1 in run_chunks:
            columns, skip = chunks.order(r0, r1)
            v = chunks.input_tiles(x, r0, r1, pt, pl, columns)
            m, m_matrices = chunks.products(r0, r1)
            _products(u, v, m_matrices, skip)
            f.output_tiles(m, chunks.tiles(r0, r1), y, 0, out_ch, r0, r1, chunks.tiles_h, chunks.tiles_w, columns)

    chunks.each_run(run)
    return y


def _by_output_channels(chunks):
    """Whether a convolution's tiles are too few to deal out: under MIN_CHUNK_TILES per
    thread, each thread's GEMMs would multiply all of U (16 x O x C, 16 MB at 512
    channels) by a thin V.  Then the threads split the output channels instead
    (_convolve_by_output_channels).  512->512 at 7x7, batch 8 (128 tiles), both
    threads: the 16 GEMMs 9.1 -> 7.4 ms (2-core AMD EPYC VM)."""
    tiles = chunks.tiles(0, chunks.tile_rows)
    return THREADS > 1 and tiles < THREADS * MIN_CHUNK_TILES and chunks.out_ch >= THREADS * MIN_PANEL_CHANNELS


def _convolve_by_output_channels(x, w, adjoint, u_stack, y, chunks, pt, pl):
    """_convolve's chunks as one.  Each thread first transforms a panel of the input
    channels (each channel's loops over all the tiles) into V of all the tiles, and a
    panel of the output channels' weights into U's stack; then, V complete, each
    thread's panel of output channels: its products with all the tiles and their
    output transform.  (The weight transform in these threads rather than in a parallel
    region of its own: 512->512 at 7x7, batch 8, 1-2% faster, one parallel region
    fewer.)"""
    f, rows, tiles = chunks.transforms, chunks.tile_rows, chunks.tiles(0, chunks.tile_rows)
    columns, skip = chunks.order(0, rows)
    v_stack = _stack(f.positions, chunks.channels, tiles, x.dtype)

    def transform(c0, c1, o0, o1):
        f.weight_tiles(w, u_stack, adjoint, (o0, o1))
        f.input_tiles(x[:, c0:c1], v_stack, tiles, c0 * tiles, 0, rows, chunks.tiles_h, chunks.tiles_w, pt, pl,
                      columns)

    in_threads([functools.partial(transform, *c, *o) for c, o in zip(panels(chunks.channels, THREADS),
                                                                   panels(chunks.out_ch, THREADS))])
    u, v = _matrices(u_stack, chunks.out_ch, chunks.channels), _matrices(v_stack, chunks.channels, tiles)

    def run(o0, o1):
        m = _stack(f.positions, o1 - o0, tiles, x.dtype, slot=3)
        _products(u[:, o0:o1], v, _matrices(m, o1 - o0, tiles), skip)
        f.output_tiles(m, tiles, y, o0, o1, 0, rows, chunks.tiles_h, chunks.tiles_w, columns)

    in_threads([functools.partial(run, o0, o1) for o0, o1 in panels(chunks.out_ch, THREADS)])


def _weight_grad_chunk_tiles(channels, out_ch):
    """Tiles per weight-gradient chunk.  Each chunk's dU (16 x O x C) is added into the
    thread's sum: 3 * 16 * O * C values moved per chunk, against 16 * (O + C) values of
    tile transforms per tile.  At 2 * O * C / (O + C) tiles the sum moves 1.5x what the
    transforms do (at the L2-sized 128 tiles, 512 channels: 6x; 512->512 at 7x7, batch
    64, took 82 ms that way, 58 ms this way, both threads).  Weight-gradient chunks are
    then larger than L2; the transforms' stores and the GEMMs' loads stream.  (Never
    below MIN_CHUNK_TILES.)"""
    return max(MIN_CHUNK_TILES, 2 * channels * out_ch // (channels + out_ch))


def conv2d_forward(x, w, g):
    return _convolve(x, w, g.pt, g.pl, g.HO, g.WO)


def conv2d_backward(x, w, gy, g, need_dx, need_dw):
    dx = dw = None
    if need_dx:  # the adjoint: rotated, transposed weights, padding kernel - 1 - p
        dx = _convolve(gy, w, g.KH - 1 - g.pt, g.KW - 1 - g.pl, g.H, g.W, adjoint=True)
    if need_dw:
        out_ch, channels = w.shape[:2]
        f = _transforms(g.KH, x.dtype)
        chunks = _Chunks(f, x.shape[0], channels, out_ch, g.HO, g.WO, x.dtype,
                         min_tiles=_weight_grad_chunk_tiles(channels, out_ch))
        transposed = out_ch <= channels  # (accumulate dU^T = V @ dM^T, (16, C, O))
        rows, cols = (channels, out_ch) if transposed else (out_ch, channels)

        def run(run_chunks):
            du = part = None
            for r0, r1 in run_chunks:
                columns, skip = chunks.order(r0, r1)
                v = chunks.input_tiles(x, r0, r1, g.pt, g.pl, columns)
                dm_stack, dm = chunks.products(r0, r1)
                f.output_tiles_adjoint(gy, dm_stack, chunks.tiles(r0, r1), r0, r1, chunks.tiles_h,
                                       chunks.tiles_w, columns)
                a, b = (v, _tile_major(dm)) if transposed else (dm, _tile_major(v))
                if du is None:
                    du = _products_over_tiles(a, b, _matrices(_stack(f.positions, rows, cols, w.dtype), rows, cols),
                                              skip)
                else:
                    part = _products_over_tiles(a, b, part if part is not None else np.empty_like(du), skip)
                    du += part
            return du

        du, *others = chunks.each_run(run)
        for other in others:
            du += other
        if transposed:
            du = du.transpose(0, 2, 1)
        dw = np.empty(w.shape, dtype=w.dtype)
        f.weight_tiles_adjoint(du, dw)
    return dx, dw
