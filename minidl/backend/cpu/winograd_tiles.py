"""The 2x2 output tiles that both CPU Winograd variants, F(2x2, 3x3) (winograd.py) and
F(2x2, 5x5) (winograd5.py), write into the output and read from its gradient, and the
input tiles both gather from zero-padded planes on small maps; and how both run their
transforms (``weight_transform``, ``input_transform``).

Tile rows [r0, r1) of a chunk are counted over the whole batch (tile row r is tile
row r % tiles_h of image r // tiles_h); tile (r, tx) of the chunk is its column
(r - r0) * tiles_w + tx of V and M, or with a ``columns`` array (boundary_order) column
columns[(r - r0) * tiles_w + tx].  A tile's two output rows are held as even and odd
columns: tiles[2 i + e, t] is row i, column 2 tx + e of tile t.  Inlined into the
transforms (unsigned offsets: parallel.py).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

# The input transforms read maps of up to this many tiles a row from zero-padded planes
# (tile_planes, tiles_from_planes), larger ones row by row.  128 channels at batch 16,
# one chunk, row by row -> planes, F(2x2, 3x3): 7x7 0.43 -> 0.17 ms, 14x14 0.31 -> 0.18,
# 4x4 (batch 64, 256 channels) 1.56 -> 0.43; at 28x28 even, at 56x56 and up 1.3-1.8x
# slower (2-core AMD EPYC VM): there a tile row's loops are long enough.
PLANE_MAX_TILES_W = 8


def boundary_order(r0, r1, tiles_h, tiles_w, ho, wo):
    """-> (columns, (right, interior, bottom)) for the tile rows [r0, r1) of an ho x wo
    output map, or (None, None).  On an odd-width map the last tile of each row has
    one output column inside the map, and A^T's last column (0, 1) makes the last tile
    position column xi = (i, last) reach only the tile's second output column: its
    products there are discarded.  Likewise the last tile row of an odd-height map and
    the last position row.  So the tiles are put in the order right column, interior,
    bottom row, corner (each by its natural index): the last position column then
    needs the columns [right, right + interior + bottom) of V, the last position row
    [0, right + interior), both [right, right + interior), every other position all.
    512->512 at 7x7: 12% fewer products.  Only where the input transform reads planes
    (the row-by-row one writes the natural order), else (None, None)."""
    if tiles_w > PLANE_MAX_TILES_W or (ho % 2 == 0 and wo % 2 == 0):
        return None, None
    return _boundary_order(r0, r1, tiles_h, tiles_w, ho % 2 == 1, wo % 2 == 1)


@functools.lru_cache(maxsize=256)
def _boundary_order(r0, r1, tiles_h, tiles_w, odd_h, odd_w):
    rows = np.arange(r0, r1)
    bottom = odd_h & (rows % tiles_h == tiles_h - 1)
    right = odd_w & (np.arange(tiles_w) == tiles_w - 1)
    # 0 right column, 1 interior, 2 bottom row, 3 corner; by natural index (r - r0) * tiles_w + tx
    kind = np.where(right[None, :], 3 * bottom[:, None], 1 + bottom[:, None]).ravel()
    columns = np.empty(kind.size, dtype=np.uint64)
    columns[np.argsort(kind, kind="stable")] = np.arange(kind.size, dtype=np.uint64)
    columns.flags.writeable = False
    counts = np.bincount(kind, minlength=4)
    return columns, (int(counts[0]), int(counts[1]), int(counts[2]))


@njit(cache=True, inline="always")
def column(columns, t):
    """Tile t's column in V and M: t in the natural order (``columns`` None), else columns[t]."""
    if columns is None:
        return t
    return columns[t]


def weight_transform(kernel, w, u, adjoint, outputs, *consts):
    """A variant's weight transform kernel(w, u, adjoint, *consts, o0, o1) over every
    output channel (its parallel loop where large) or, given ``outputs`` (o0, o1), over
    those on the calling thread (its serial twin, for the few-tiles threads)."""
    if outputs is None:
        kernel.sized(u.size)(w, u, adjoint, *consts, 0, w.shape[1] if adjoint else w.shape[0])
    else:
        kernel.serial(w, u, adjoint, *consts, *outputs)


def input_transform(from_planes, by_rows):
    """-> an input transform (x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl, columns)
    that runs ``from_planes`` on maps of up to PLANE_MAX_TILES_W tiles a row, else
    ``by_rows`` (whose tiles are in the natural order: ``columns`` None)."""
    def transform(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl, columns):
        if tiles_w <= PLANE_MAX_TILES_W:
            from_planes(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl, columns)
        else:
            assert columns is None, "the row-by-row input transform writes the tiles in their natural order"
            by_rows(x, v, cols, first, r0, r1, tiles_h, tiles_w, pt, pl)
    return transform


@njit(cache=True, inline="always")
def tile_planes(like, size, r0, r1, tiles_h, tiles_w, columns):
    """-> (planes, corner): zeroed planes of ``like``'s dtype, one (2 tiles_h + size - 2,
    2 tiles_w + size - 2) padded map per image of the chunk, and each tile's top-left
    offset in them, by its column (``columns``)."""
    pw, ph = 2 * tiles_w + size - 2, 2 * tiles_h + size - 2
    n_first = r0 // tiles_h
    planes = np.zeros(((r1 - 1) // tiles_h - n_first + 1) * ph * pw, dtype=like.dtype)
    corner = np.empty((r1 - r0) * tiles_w, dtype=np.uint64)
    for r in range(r0, r1):
        n = r // tiles_h
        for tx in range(tiles_w):
            corner[column(columns, np.uint64((r - r0) * tiles_w + tx))] = ((n - n_first) * ph + 2 * (r - n * tiles_h)) * pw + 2 * tx
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
def scatter_output_tiles(tiles, y, o, r0, r1, tiles_h, tiles_w, columns):
    """y[:, o] = the chunk's 2x2 tiles, the part inside the output map."""
    ho, wo = y.shape[2], y.shape[3]
    pairs = wo // 2
    for r in range(r0, r1):
        n = r // tiles_h
        top = 2 * (r - n * tiles_h)
        t0 = np.uint64((r - r0) * tiles_w)
        for i in range(min(2, ho - top)):
            for tx in range(pairs):
                y[n, o, top + i, 2 * tx] = tiles[2 * i, column(columns, t0 + np.uint64(tx))]
                y[n, o, top + i, 2 * tx + 1] = tiles[2 * i + 1, column(columns, t0 + np.uint64(tx))]
            if wo > 2 * pairs:
                y[n, o, top + i, wo - 1] = tiles[2 * i, column(columns, t0 + np.uint64(pairs))]


@njit(cache=True, inline="always")
def gather_output_tiles(gy, o, tiles, r0, r1, tiles_h, tiles_w, columns):
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
                    tiles[2 * i, column(columns, t0 + np.uint64(tx))] = gy[n, o, top + i, 2 * tx]
                    tiles[2 * i + 1, column(columns, t0 + np.uint64(tx))] = gy[n, o, top + i, 2 * tx + 1]
                if wo > 2 * pairs:
                    tiles[2 * i, column(columns, t0 + np.uint64(pairs))] = gy[n, o, top + i, wo - 1]
            else:
                for e in range(2):
                    for tx in range(tiles_w):
                        tiles[2 * i + e, column(columns, t0 + np.uint64(tx))] = 0
