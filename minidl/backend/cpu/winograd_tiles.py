"""The 2x2 output tiles that both CPU Winograd variants, F(2x2, 3x3) (winograd.py) and
F(2x2, 5x5) (winograd5.py), write into the output and read from its gradient.

Tile rows [r0, r1) of a chunk are counted over the whole batch (tile row r is tile
row r % tiles_h of image r // tiles_h); tile t of the chunk is (r - r0) * tiles_w + tx.
A tile's two output rows are held as even and odd columns: tiles[2 i + e, t] is row i,
column 2 tx + e of tile t.  Inlined into the transforms (unsigned offsets: parallel.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit


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
