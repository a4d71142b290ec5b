"""The 2x2 output tiles that both CPU Winograd variants, F(2x2, 3x3) (winograd.py) and
F(2x2, 5x5) (winograd5.py), write into the output and read from its gradient, and the
input tiles both gather from zero-padded planes on small maps.

Tile rows [r0, r1) of a chunk are counted over the whole batch (tile row r is tile
row r % tiles_h of image r // tiles_h); tile t of the chunk is (r - r0) * tiles_w + tx.
A tile's two output rows are held as even and odd columns: tiles[2 i + e, t] is row i,
column 2 tx + e of tile t.  Inlined into the transforms (unsigned offsets: parallel.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# The input transforms read maps of up to this many tiles a row from zero-padded planes
# (tile_planes, tiles_from_planes), larger ones row by row.  128 channels at batch 16,
# one chunk, row by row -> planes, F(2x2, 3x3): 7x7 0.43 -> 0.17 ms, 14x14 0.31 -> 0.18,
# 4x4 (batch 64, 256 channels) 1.56 -> 0.43; at 28x28 even, at 56x56 and up 1.3-1.8x
# slower (2-core AMD EPYC VM): there a tile row's loops are long enough.
PLANE_MAX_TILES_W = 8


def input_transform(from_planes, by_rows):
    """-> an input transform (x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl) that
    runs ``from_planes`` on maps of up to PLANE_MAX_TILES_W tiles a row, else ``by_rows``."""
    def transform(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl):
        kernel = from_planes if tiles_w <= PLANE_MAX_TILES_W else by_rows
        kernel(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl)
    return transform


@njit(cache=True, inline="always")
def tile_planes(like, size, r0, r1, tiles_h, tiles_w):
    """-> (planes, corner): zeroed planes of ``like``'s dtype, one (2 tiles_h + size - 2,
    2 tiles_w + size - 2) padded map per image of the chunk, and each tile's top-left
    offset in them."""
    pw, ph = 2 * tiles_w + size - 2, 2 * tiles_h + size - 2
    n_first = r0 // tiles_h
    planes = np.zeros(((r1 - 1) // tiles_h - n_first + 1) * ph * pw, dtype=like.dtype)
    corner = np.empty((r1 - r0) * tiles_w, dtype=np.uint64)
    for r in range(r0, r1):
        n = r // tiles_h
        for tx in range(tiles_w):
            corner[(r - r0) * tiles_w + tx] = ((n - n_first) * ph + 2 * (r - n * tiles_h)) * pw + 2 * tx
    return planes, corner


@njit(cache=True, inline="always")
def tiles_from_planes(x, c, planes, corner, runs, size, r0, r1, tiles_h, tiles_w, pt, pl):
    """runs[size * a + s, t] = input tile t's row a, column s, of channel c (zero in the
    padding): the rows the chunk reads copied into the planes (tile_planes; the padding
    stays zero), then one loop per tile value over all the chunk's tiles.  (Row by row,
    a 7x7 map's loops ran over tile rows of 4 tiles: PLANE_MAX_TILES_W.)"""
    height, width = x.shape[2], x.shape[3]
    pw, ph = 2 * tiles_w + size - 2, 2 * tiles_h + size - 2
    n_first = r0 // tiles_h
    j0, j1 = max(0, -pl), min(width, pw - pl)
    for n in range(n_first, (r1 - 1) // tiles_h + 1):
        ty0, ty1 = max(r0, n * tiles_h) - n * tiles_h, min(r1, (n + 1) * tiles_h) - n * tiles_h
        for ih in range(max(0, 2 * ty0 - pt), min(height, 2 * ty1 + size - 2 - pt)):
            at = np.uint64(((n - n_first) * ph + ih + pt) * pw + j0 + pl)
            for j in range(j1 - j0):
                planes[at + np.uint64(j)] = x[n, c, ih, np.uint64(j0 + j)]
    for a in range(size):
        for s in range(size):
            offset = np.uint64(a * pw + s)
            for t in range(corner.shape[0]):
                runs[size * a + s, t] = planes[corner[t] + offset]


@njit(cache=True, inline="always")
def scatter_output_tiles(tiles, y, o, r0, r1, tiles_h, tiles_w):
    """y[:, o] = the chunk's 2x2 tiles, the part inside the output map."""
    ho, wo = y.shape[2], y.shape[3]
    pairs = wo // 2
    for r in range(r0, r1):
        n = r // tiles_h
        top = 2 * (r - n * tiles_h)
        t0 = np.uint64((r - r0) * tiles_w)
        for i in range(min(2, ho - top)):
            for tx in range(pairs):
                y[n, o, top + i, 2 * tx] = tiles[2 * i, t0 + np.uint64(tx)]
                y[n, o, top + i, 2 * tx + 1] = tiles[2 * i + 1, t0 + np.uint64(tx)]
            if wo > 2 * pairs:
                y[n, o, top + i, wo - 1] = tiles[2 * i, t0 + np.uint64(pairs)]


@njit(cache=True, inline="always")
def gather_output_tiles(gy, o, tiles, r0, r1, tiles_h, tiles_w):
    """tiles = the chunk's 2x2 tiles of gy[:, o], zero outside the map (``tiles`` comes
    zeroed: the odd column past an odd-width map is never written)."""
    ho, wo = gy.shape[2], gy.shape[3]
    pairs = wo // 2
    for r in range(r0, r1):
        n = r // tiles_h
        top = 2 * (r - n * tiles_h)
        t0 = np.uint64((r - r0) * tiles_w)
        for i in range(2):
            if top + i < ho:
                for tx in range(pairs):
                    tiles[2 * i, t0 + np.uint64(tx)] = gy[n, o, top + i, 2 * tx]
                    tiles[2 * i + 1, t0 + np.uint64(tx)] = gy[n, o, top + i, 2 * tx + 1]
                if wo > 2 * pairs:
                    tiles[2 * i, t0 + np.uint64(pairs)] = gy[n, o, top + i, wo - 1]
            else:
                for e in range(2):
                    for tx in range(tiles_w):
                        tiles[2 * i + e, t0 + np.uint64(tx)] = 0
