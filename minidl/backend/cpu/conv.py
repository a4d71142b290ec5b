"""2-D convolution on the CPU: im2col + BLAS GEMM, Winograd, per-tap GEMMs on tiny maps, a
direct forward for few input channels (stems), and a direct path for depthwise.

The algorithm for the general case is ``backend.conv_algo``: "im2col", "winograd"
(F(2x2, 3x3) and F(2x2, 5x5) for 3x3 and 5x5 stride-1 convolutions, winograd.py and
winograd5.py; im2col for the shapes they do not take), "direct" (the forward of every
ungrouped, undilated float32 convolution through direct.py's register tiles; im2col
for the rest), or "auto" (the default): the direct forward on few input channels
(``direct.wins``), then Winograd where it measured faster here (``winograd.wins``,
decided for the forward and each gradient apart), then per-tap GEMMs on tiny maps
(``tapwise.wins``), im2col elsewhere.

General path.  For a block of images (and, for very large images, a block of output
rows) a parallel Numba loop writes the columns straight into the layout the GEMM
reads, one (C/groups * KH * KW, rows * WO) matrix per image and group:

* image-major ("A"): cols (B, G, K, R); one GEMM per image and group writes the
  output in place.  Used when an image has many output pixels.
* batch-inner ("B"): cols (G, K, B * R); one wide GEMM per group, then a small
  transposed copy into NCHW.  Used for small feature maps (7x7, 14x14), where
  per-image GEMMs would be too thin for BLAS.

The forward runs in L2-sized blocks, each thread im2col-ing a block and multiplying it
while its columns are still in L2 (``_forward_in_blocks``).  Batch-inner maps do so, and
their backward too (``_backward_in_blocks``), where the weights, which each block's GEMM
packs again, are small (BLOCKS_MAX_WEIGHT_BYTES); otherwise they take one whole-batch
buffer whose GEMMs are split over the threads.  Tiny batch-inner maps gather their
columns through a table of each tap's input offsets (im2col.py).

Stride-2 windows gather their columns through phase rows (``im2col.by_phase_rows``):
each input row split once into its even and odd columns, then every tap a unit-stride
copy.

A 1x1 stride-1 unpadded convolution with a large feature map needs no columns at
all: the input planes already are the GEMM operand.

Backward recomputes the columns per block (cheaper than keeping them): the weight
gradient is gy @ cols^T summed over blocks (where the columns are short, image-major
maps take L2-sized blocks per thread as in the forward), the input gradient is the GEMM
w^T @ gy followed by col2im, which runs in parallel over input planes so that no
two threads ever write the same element.

Depthwise (groups == C > 1, O = C * multiplier) is direct, on zero-padded phase
planes of each input plane (depthwise.py), forward and both backwards.  On 1x1 and
2x2 output maps, where most of a window reads padding, "auto" takes one GEMM per
kernel tap instead (tapwise.py).

Temporary memory is bounded by ``COLUMN_BUFFER_BYTES`` per column buffer (the
backward pass holds two: columns and their gradient), kept per thread and reused
across calls (workspace.py).
"""
from __future__ import annotations

import functools

import numpy as np

from ..checks import check_conv_arrays
from .gemm import THREADS, in_threads, matmul, panels
from . import depthwise, direct, im2col, tapwise, winograd
from .workspace import workspace

ALGOS = ("auto", "im2col", "winograd", "direct")

COLUMN_BUFFER_BYTES = 64 << 20
# Below this many output pixels per image the batch-inner layout (one wide GEMM) wins.
SMALL_MAP_PIXELS = 1024
# The forward on larger maps: row blocks whose columns take about this much, so that
# they are still in L2 when the block's GEMM reads them, one thread per run of blocks.
L2_BLOCK_BYTES = 1 << 20
ROW_BLOCK_MIN_PIXELS = 128
# Batch-inner maps run in such blocks too where the weights (packed again by each
# block's GEMM) take at most this much.  Measured with the tap-table columns, both
# threads, batch 64 / 16, blocks / whole batch: 3x3/2 128->256 at 8x8 (1.1 MB of
# weights) forward 4.9 / 6.0 ms, backward 10.7 / 12.4; 256->512 at 4x4 (4.5 MB)
# backward 15.0 / 10.4; 256->256 at 28x28 (2.3 MB) 68.9 / 49.8; 1x1/2 512->1024 (2 MB) even.
BLOCKS_MAX_WEIGHT_BYTES = 3 << 19
# Stride-2 windows at least this wide take im2col.by_phase_rows.  Its columns against
# im2col.by_rows's (2-core AMD EPYC VM, batch 8): the 7x7/2 stem 7.7 -> 3.4 ms on one thread,
# 3x3/2 at 56x56 to 112x112 1.5-1.6x faster, 5x5/2 1.8x; AlexNet's 11x11/4 0.95x.
PHASE_ROWS_MIN_KW = 3
# Batch-inner maps of at most this many output pixels take im2col.by_taps (the parallel
# loops over a whole batch's columns from at most the second).
TAP_TABLE_MAX_PIXELS = 64
TAP_TABLE_PARALLEL_MAX_PIXELS = 16


# ------------------------------------------------------------------ helpers
def _is_depthwise(g):
    return g.G > 1 and g.G == g.C


def _is_pointwise(g):
    """A 1x1 stride-1 unpadded conv: GEMMs straight on x, no im2col.  Even on small maps
    per-image GEMMs beat the batch-inner im2col layout (measured here at batch 16, fwd /
    bwd ms: 256->128 at 28x28 11.6 -> 6.9 / 17.9 -> 11.0; 1024->128 at 7x7 2.7 -> 1.6 /
    6.6 -> 3.9; 128->32 at 7x7 bwd 0.70 -> 0.22); _pointwise_channels_major says where
    one GEMM over the whole batch, on a channels-major copy, beats them both."""
    return g.KH == g.KW == 1 and g.stride == (1, 1) and not any(g.padding)


def _pointwise_channels_major(geo, direction):
    """Whether a pointwise ``direction`` ("forward", "input_grad", "weight_grad") runs
    as one GEMM over the batch's N * P pixels, on (G, channels, N * P) copies of its
    operands, instead of N per-image GEMMs over P pixels.  Per image, BLAS packs the
    whole O x C weight again for P columns, and the weight gradient writes N partial
    O x C products and sums them: on maps small against O x C the GEMMs move more than
    they multiply.  Measured at batch 16, both threads, per-image / channels-major ms:
    512->2048 and 2048->512 at 7x7 forward 10.4-11.5 / 8.9-10.3, input grad 8.8-12.4 /
    9.5-10.1, weight grad 18.5-21.0 / 8.9-10.0 (batch 8: 7.3-7.9 / 3.1-3.2; batch 64:
    64-88 / 27-45); MobileNet's and EfficientNet's 1x1 layers at 7x7 (128-320 <->
    960-1280 channels) weight grad 1.2-1.6x faster; 1024<->256 at 14x14 forward 9.4-9.6
    / 11.1-11.4, weight grad even or 1.2x slower; 512<->128 at 28x28 weight grad 6.3-8.3
    / 10.3-14.8.  So the weight gradient where 2 P (O + C) <= O C (its N partial products
    outweigh the copies), forward and input gradient where 4 P (O + C) <= O C."""
    operands = geo.ho * geo.wo * (geo.og + geo.cg)  # per image: its x and gy maps
    return (2 if direction == "weight_grad" else 4) * operands <= geo.og * geo.cg


def _channels_major(a, n_img, groups, channels, pixels):
    """(N, G * channels, ...) with ``pixels`` per map -> a (G, channels, N * pixels) copy."""
    out = np.empty((groups, channels, n_img, pixels), dtype=a.dtype)
    np.copyto(out, a.reshape(n_img, groups, channels, pixels).transpose(1, 2, 0, 3))
    return out.reshape(groups, channels, n_img * pixels)


def _images_major(a, shape):
    """A (G, channels, N * pixels) product -> a copy of ``shape`` (N, G * channels, H, W)."""
    groups, channels, total = a.shape
    n_img = shape[0]
    out = np.empty(shape, dtype=a.dtype)
    np.copyto(out.reshape(n_img, groups, channels, total // n_img),
              a.reshape(groups, channels, n_img, total // n_img).transpose(2, 0, 1, 3))
    return out


def _blocks(n_img, ho, wo, col_rows, itemsize, budget=None):
    """Yield (n0, n1, oh0, oh1): batch chunks, or row blocks of one image when a whole
    image's columns exceed ``budget`` bytes (default COLUMN_BUFFER_BYTES)."""
    budget = COLUMN_BUFFER_BYTES if budget is None else budget
    per_row = col_rows * wo * itemsize
    per_image = per_row * ho
    if per_image <= budget:
        step = max(1, budget // per_image)
        for n0 in range(0, n_img, step):
            yield n0, min(n_img, n0 + step), 0, ho
    else:
        step = max(1, budget // per_row)
        for n in range(n_img):
            for oh0 in range(0, ho, step):
                yield n, n + 1, oh0, min(ho, oh0 + step)


class _Im2col:
    """The im2col blocking of one convolution (its ConvGeometry ``g``)."""

    def __init__(self, g):
        self.n, self.c, self.o, self.kh, self.kw, self.g = g.N, g.C, g.O, g.KH, g.KW, g.G
        self.cg, self.og = g.C // g.G, g.O // g.G
        self.k = self.cg * self.kh * self.kw  # GEMM inner size per group
        self.ho, self.wo = g.HO, g.WO
        self.batch_inner = self.ho * self.wo < SMALL_MAP_PIXELS
        self.loop_args = (g.KH, g.KW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, g.WO)
        self.phase_rows = g.sw == 2 and g.KW >= PHASE_ROWS_MIN_KW
        self.taps = im2col.tap_table(g) if self.batch_inner and self.ho * self.wo <= TAP_TABLE_MAX_PIXELS else None

    def strides(self, nb, rows):
        r = rows * self.wo
        if self.batch_inner:
            return r, nb * r  # (G, K, B * R)
        return self.c * self.kh * self.kw * r, r  # (B, G, K, R)

    def _by_taps(self, serial):
        """Whether the loops go through the tap table: in the threads' L2 blocks (serial
        loops), and in the parallel loops over a whole batch's columns only on maps of
        up to TAP_TABLE_PARALLEL_MAX_PIXELS (at 7x7 outputs, batch 16, those ran 5-8%
        slower than the row loops; at 2x2 and 4x4 1.2-1.3x faster)."""
        return self.taps is not None and (serial or self.ho * self.wo <= TAP_TABLE_PARALLEL_MAX_PIXELS)

    def _where(self, oh0, rows, by_taps):
        """The loops' arguments that place a block of output rows."""
        if by_taps:
            return self.taps, oh0 * self.wo, rows * self.wo
        return (oh0, rows) + self.loop_args

    def im2col(self, x, buf, n0, n1, oh0, oh1, serial=False):
        nb, rows = n1 - n0, oh1 - oh0
        size = nb * self.g * self.k * rows * self.wo
        cols = buf[:size]
        by_taps = self._by_taps(serial)
        if by_taps:
            loops = im2col.by_taps
        else:
            loops = im2col.by_phase_rows if self.phase_rows else im2col.by_rows
        kernel = loops.serial if serial else loops.sized(size)
        kernel(x, cols, n0, nb, *self._where(oh0, rows, by_taps), *self.strides(nb, rows))
        return self.shaped(cols, nb, rows)

    def col2im_add(self, dcols, dx, n0, n1, oh0, oh1, serial=False):
        nb, rows = n1 - n0, oh1 - oh0
        by_taps = self._by_taps(serial)
        loops = im2col.add_back_by_taps if by_taps else im2col.add_back_by_rows
        kernel = loops.serial if serial else loops.sized(dcols.size)
        kernel(dcols.reshape(-1), dx, n0, nb, *self._where(oh0, rows, by_taps), *self.strides(nb, rows))

    def shaped(self, flat, nb, rows):
        r = rows * self.wo
        if self.batch_inner:
            return flat.reshape(self.g, self.k, nb * r)
        return flat.reshape(nb, self.g, self.k, r)

    def gy_block(self, gy, n0, n1, oh0, oh1):
        """The output gradient of a block laid out like the GEMM output."""
        nb, rows = n1 - n0, oh1 - oh0
        block = gy.reshape(self.n, self.g, self.og, self.ho, self.wo)[n0:n1, :, :, oh0:oh1]
        if self.batch_inner:
            return np.ascontiguousarray(block.transpose(1, 2, 0, 3, 4)).reshape(
                self.g, self.og, nb * rows * self.wo)
        return np.ascontiguousarray(block).reshape(nb, self.g, self.og, rows * self.wo)

    def buffer(self, slot, dtype, budget=None):
        largest = max((n1 - n0) * (oh1 - oh0) for n0, n1, oh0, oh1 in self.blocks(dtype, budget))
        return workspace(slot, largest * self.g * self.k * self.wo, dtype)

    def blocks(self, dtype, budget=None):
        return _blocks(self.n, self.ho, self.wo, self.g * self.k, np.dtype(dtype).itemsize, budget)


def _path(algo, g, dtype, direction):
    """The path ("direct", "winograd", "tapwise" or "im2col") of ``direction``
    ("forward", "input_grad", "weight_grad") of a convolution of geometry ``g`` under
    conv_algo ``algo``: "auto" takes the direct forward, Winograd and then the per-tap
    GEMMs of tiny maps where they measured faster (direct.wins, winograd.wins,
    tapwise.wins), else im2col."""
    algo = algo or "auto"
    if algo not in ALGOS:
        raise ValueError(f"conv2d: conv_algo on the cpu must be one of {ALGOS}, got {algo!r}")
    if direction == "forward" and direct.applies(g, dtype) and (
            algo == "direct" or algo == "auto" and direct.wins(g, dtype)):
        return "direct"
    if algo != "im2col" and winograd.applies(g) and (algo == "winograd" or winograd.wins(g, dtype, direction)):
        return "winograd"
    if algo == "auto" and tapwise.wins(g, direction):
        return "tapwise"
    return "im2col"


# ------------------------------------------------------------------ contract
def conv2d_forward(x, w, geometry, bias=None, algo=None, relu=False):
    """-> y (N, O, HO, WO), plus bias (O,) when given, then max(y, 0) where ``relu``
    (both in place on the new y)."""
    y = _conv2d_forward(x, w, geometry, algo)
    if bias is not None:
        y += np.asarray(bias, dtype=y.dtype).reshape(-1, 1, 1)
    if relu:
        np.maximum(y, 0, out=y)  # (NaN passes)
    return y


def _conv2d_forward(x, w, geometry, algo=None):
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    check_conv_arrays("conv2d_forward", geometry, x, w)
    g = geometry
    path = _path(algo, g, x.dtype, "forward")
    if path != "im2col":
        return {"winograd": winograd, "tapwise": tapwise, "direct": direct}[path].conv2d_forward(x, w, g)
    if _is_depthwise(g):
        return depthwise.conv2d_forward(x, w, g)
    geo = _Im2col(g)
    wg = w.reshape(geo.g, geo.og, geo.k)
    if _is_pointwise(g):
        p = geo.ho * geo.wo
        if _pointwise_channels_major(geo, "forward"):
            return _images_major(matmul(wg, _channels_major(x, geo.n, geo.g, geo.cg, p)), g.y_shape)
        y = np.empty(g.y_shape, dtype=x.dtype)
        matmul(wg, x.reshape(geo.n, geo.g, geo.cg, p), out=y.reshape(geo.n, geo.g, geo.og, p))
        return y
    y = np.empty(g.y_shape, dtype=x.dtype)
    y5 = y.reshape(geo.n, geo.g, geo.og, geo.ho, geo.wo)
    if not geo.batch_inner or _small_map_blocks(geo, w):
        _forward_in_blocks(x, wg, geo, y5)
        return y
    buf = geo.buffer(0, x.dtype)
    for n0, n1, oh0, oh1 in geo.blocks(x.dtype):
        nb, rows = n1 - n0, oh1 - oh0
        cols = geo.im2col(x, buf, n0, n1, oh0, oh1)
        out = matmul(wg, cols).reshape(geo.g, geo.og, nb, rows, geo.wo)
        y5[n0:n1, :, :, oh0:oh1] = out.transpose(2, 0, 1, 3, 4)
    return y


def _small_map_blocks(geo, w):
    """Whether a batch-inner convolution runs in L2 blocks (_forward_in_blocks,
    _backward_in_blocks): where its weights, which each block's GEMM packs again, are
    small (BLOCKS_MAX_WEIGHT_BYTES)."""
    return geo.batch_inner and w.nbytes <= BLOCKS_MAX_WEIGHT_BYTES


def _in_row_blocks(x, geo, work, by_images=False, buffers=1):
    """work(budget, blocks) on each thread's run of the blocks of _blocks at an L2-sized
    budget (row blocks of one image, or whole small images; split ``buffers`` ways), at
    least two blocks per thread, each thread's buffers from its own workspace
    (geo.buffer(slot, dtype, budget)) -> the runs' results.  A block's columns (serial
    im2col) stay in L2 for its GEMM, one thread per block.  (One whole-batch column
    buffer of the 7x7/2 stem at batch 8 is 59 MB: im2col wrote it to memory and the
    GEMM read it back.)  ``by_images``: the runs cut only where an image starts, so
    that all the row blocks of an image go to one thread (whose scatter into dx then
    never races another's)."""
    total = geo.n * geo.ho * geo.wo * geo.g * geo.k * x.itemsize
    budget = min(L2_BLOCK_BYTES // buffers, max(1, total // (2 * THREADS)))
    blocks = list(geo.blocks(x.dtype, budget))
    units = [[block] for block in blocks]  # (what a run is cut into)
    if by_images:
        starts = [i for i, (_, _, oh0, _) in enumerate(blocks) if oh0 == 0] + [len(blocks)]
        units = [blocks[a:b] for a, b in zip(starts[:-1], starts[1:])]
    runs = [[block for unit in units[a:b] for block in unit] for a, b in panels(len(units), THREADS)]
    return in_threads([functools.partial(work, budget, run) for run in runs])


def _forward_in_blocks(x, wg, geo, y5):
    """y5 (N, G, O/G, HO, WO) block by block (_in_row_blocks): image-major blocks' GEMMs
    straight into y; batch-inner blocks' products (G, O/G, images * pixels) copied into
    y transposed.  Batch-inner maps take this path where the weights are small
    (BLOCKS_MAX_WEIGHT_BYTES): each block's GEMM packs them again.  Measured there
    against the whole batch's columns and one GEMM split over the threads (both
    threads, the medians of five alternating blocks, row-loop columns): 3x3/2 64->128
    at 16x16, batch 64, 5.6 -> 4.7 ms; at 56x56, batch 8, 7.6 -> 6.1; ResNet-50's
    128->128 3x3/2 at 56x56, batch 16, 28.8 -> 24.2; 1x1/2 256->512 there 25.4 -> 22.3,
    64->128 4.8 -> 3.7; 1x1/2 at batch 64, 4x4-16x16 maps, 0.8-1.2 -> 0.7-1.1."""

    def work(budget, part):
        buf = geo.buffer(0, x.dtype, budget)
        for n0, n1, oh0, oh1 in part:
            cols = geo.im2col(x, buf, n0, n1, oh0, oh1, serial=True)
            if geo.batch_inner:  # (G, K, images * rows * WO)
                out = np.matmul(wg, cols).reshape(geo.g, geo.og, n1 - n0, oh1 - oh0, geo.wo)
                y5[n0:n1, :, :, oh0:oh1] = out.transpose(2, 0, 1, 3, 4)
            else:  # (images, G, K, rows * WO)
                out = y5[n0:n1, :, :, oh0:oh1].reshape(n1 - n0, geo.g, geo.og, (oh1 - oh0) * geo.wo)
                np.matmul(wg, cols, out=out)

    _in_row_blocks(x, geo, work)


def conv2d_backward(x, w, gy, geometry, need_dx=True, need_dw=True, algo=None):
    """-> (dx or None, dw or None)."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    gy = np.ascontiguousarray(gy)
    check_conv_arrays("conv2d_backward", geometry, x, w, gy)
    if not (need_dx or need_dw):
        return None, None
    if _is_depthwise(geometry):
        return depthwise.conv2d_backward(x, w, gy, geometry, need_dx, need_dw)
    dx_path = _path(algo, geometry, x.dtype, "input_grad") if need_dx else None
    dw_path = _path(algo, geometry, x.dtype, "weight_grad") if need_dw else None
    dx = dw = None
    for path in dict.fromkeys(p for p in (dx_path, dw_path) if p):  # (each computes the gradients it was given)
        backward = {"winograd": winograd.conv2d_backward, "tapwise": tapwise.conv2d_backward,
                    "im2col": _im2col_backward}[path]
        some_dx, some_dw = backward(x, w, gy, geometry, dx_path == path, dw_path == path)
        dx, dw = (some_dx if dx_path == path else dx), (some_dw if dw_path == path else dw)
    return dx, dw


def _im2col_backward(x, w, gy, geometry, need_dx, need_dw):
    """conv2d_backward on columns (pointwise: straight GEMMs on x and gy)."""
    geo = _Im2col(geometry)
    if _is_pointwise(geometry):
        return _pointwise_backward(x, w, gy, geo, need_dx, need_dw)
    wg_t = w.reshape(geo.g, geo.og, geo.k).transpose(0, 2, 1)
    if _small_map_blocks(geo, w) and geo.n >= THREADS:
        return _backward_in_blocks(x, wg_t, gy, geo, need_dx, need_dw)
    dw = None
    if need_dw and _row_block_weight_grad(geo, x.dtype):
        dw = _weight_grad_in_row_blocks(x, gy, geo)
    dw_in_blocks = need_dw and dw is None  # (the weight gradient from the loop's columns)
    if dw_in_blocks:
        dw = np.zeros((geo.g, geo.og, geo.k), dtype=w.dtype)
    dx = np.zeros_like(x) if need_dx else None
    col_buf = geo.buffer(0, x.dtype) if dw_in_blocks else None
    dcol_buf = geo.buffer(1, x.dtype) if need_dx else None
    for block in geo.blocks(x.dtype) if need_dx or dw_in_blocks else ():
        part = _block_gradients(x, gy, wg_t, geo, block, col_buf, dcol_buf, dx)
        if dw_in_blocks:
            dw += part
    return dx, (dw.reshape(w.shape) if need_dw else None)


def _block_gradients(x, gy, wg_t, geo, block, cols_buf, dcols_buf, dx, serial=False):
    """One block's (n0, n1, oh0, oh1) share of _im2col_backward: its column gradients
    added into dx (given ``dcols_buf``), and -> its weight-gradient product (G, O/G, K)
    (given ``cols_buf``, else None).  ``serial``: all on the calling thread (a thread's
    L2 blocks); else the GEMMs and loops split over the threads."""
    n0, n1, oh0, oh1 = block
    product = np.matmul if serial else matmul
    g = geo.gy_block(gy, *block)  # (laid out like the GEMM's output)
    part = None
    if cols_buf is not None:
        part = product(g, np.swapaxes(geo.im2col(x, cols_buf, *block, serial=serial), -1, -2))
        if not geo.batch_inner:
            part = part.sum(axis=0)  # (one product per image)
    if dcols_buf is not None:
        nb, rows = n1 - n0, oh1 - oh0
        dcols = geo.shaped(dcols_buf[:nb * geo.g * geo.k * rows * geo.wo], nb, rows)
        product(wg_t, g, out=dcols)
        geo.col2im_add(dcols, dx, *block, serial=serial)
    return part


def _backward_in_blocks(x, wg_t, gy, geo, need_dx, need_dw):
    """_im2col_backward of batch-inner maps with small weights (BLOCKS_MAX_WEIGHT_BYTES),
    in L2-sized blocks (_in_row_blocks; the budget halved when both gradients keep a
    buffer): each thread recomputes a block's columns, adds their weight-gradient
    product into its own sum, and scatters the block's column gradients into its own
    images' dx.  The threads take whole images (each zeroes its own dx), so from
    THREADS images on.  Both threads, the medians of five alternating blocks, against
    the whole-batch loop (its GEMMs split over the threads, im2col and col2im parallel
    loops), dx + dW: 3x3/2 64->128 at 16x16, batch 64, 11.5 -> 8.7 ms, at 56x56, batch
    8, 14.8 -> 13.4; ResNet-50's 3x3/2 128->128 at 56x56, batch 16, 56.1 -> 53.9, its
    1x1/2 downsamples 48.2 -> 46.4 and 6.6 -> 4.9 (row-loop columns; the weight limit's
    measurements are at BLOCKS_MAX_WEIGHT_BYTES)."""
    dx = np.empty_like(x) if need_dx else None

    def work(budget, blocks):
        cols_buf = geo.buffer(0, x.dtype, budget) if need_dw else None
        dcols_buf = geo.buffer(1, x.dtype, budget) if need_dx else None
        dw = None
        for block in blocks:
            n0, n1, oh0, _ = block
            if need_dx and oh0 == 0:  # (an image's first block, on the thread that owns the image)
                dx[n0:n1] = 0
            part = _block_gradients(x, gy, wg_t, geo, block, cols_buf, dcols_buf, dx, serial=True)
            if part is not None:
                dw = part if dw is None else np.add(dw, part, out=dw)
        return dw

    sums = _in_row_blocks(x, geo, work, by_images=True, buffers=int(need_dx) + int(need_dw))
    dw = None
    if need_dw:
        dw = sums[0]
        for other in sums[1:]:
            dw += other
        dw = dw.reshape(geo.o, geo.cg, geo.kh, geo.kw)
    return dx, dw


def _pointwise_backward(x, w, gy, geo, need_dx, need_dw):
    """dx = W^T gy and dW = sum over images of gy x^T, per image or channels-major
    (_pointwise_channels_major)."""
    p = geo.ho * geo.wo
    wg_t = w.reshape(geo.g, geo.og, geo.cg).transpose(0, 2, 1)
    dx = dw = gy_major = None
    if need_dx and _pointwise_channels_major(geo, "input_grad"):
        gy_major = _channels_major(gy, geo.n, geo.g, geo.og, p)
        dx = _images_major(matmul(wg_t, gy_major), x.shape)
    elif need_dx:
        dx = matmul(wg_t, gy.reshape(geo.n, geo.g, geo.og, p)).reshape(x.shape)
    if need_dw and _pointwise_channels_major(geo, "weight_grad"):
        if gy_major is None:
            gy_major = _channels_major(gy, geo.n, geo.g, geo.og, p)
        x_major = _channels_major(x, geo.n, geo.g, geo.cg, p)
        dw = matmul(gy_major, x_major.transpose(0, 2, 1)).reshape(w.shape)
    elif need_dw:
        x4 = x.reshape(geo.n, geo.g, geo.cg, p)
        dw = matmul(gy.reshape(geo.n, geo.g, geo.og, p), x4.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
    return dx, dw


def _row_block_weight_grad(geo, dtype):
    """Whether the weight gradient takes _weight_grad_in_row_blocks: image-major maps
    whose L2-sized blocks still hold ROW_BLOCK_MIN_PIXELS output pixels (columns of up
    to 2048 values in float32).  Measured there (batch 16, both threads, row blocks /
    whole-batch columns): K = 147 to 432 (stems, 3x3 on 32-48 channels) 0.61-0.69x the
    time, K = 576 and 1152 (blocks of 224 pixels) 0.81x and 0.94x.  Longer columns would
    leave blocks of a few pixels, whose (K, O) sums would outweigh their products."""
    column_bytes = geo.g * geo.k * np.dtype(dtype).itemsize
    return not geo.batch_inner and column_bytes * ROW_BLOCK_MIN_PIXELS <= L2_BLOCK_BYTES


def _weight_grad_in_row_blocks(x, gy, geo):
    """dW (G, O/G, K) on maps of image-major columns, block by block (_in_row_blocks),
    each thread summing (K, R) @ (R, O/G) products of its blocks into its own small
    (G, K, O/G) sum.  Both the L2-resident columns and this orientation pay: OpenBLAS ran cols @ gy^T (the larger K as the product's rows) at
    69-148 GFLOP/s where gy @ cols^T ran 53-127 (one thread, 64-128 x 147-576 results).
    The old path (a whole-batch column buffer, per-image gy @ cols^T) took, both
    threads: the 7x7/2 stem at batch 16 34.2 ms, now 24.0; at 64 px, batch 64 10.6 ->
    8.6; AlexNet's 11x11/4 at batch 16 19.6 -> 13.0; 3->64 3x3 at 224 40.5 -> 35.0."""
    gy4 = gy.reshape(geo.n, geo.g, geo.og, geo.ho * geo.wo)

    def work(budget, part):
        buf = geo.buffer(0, x.dtype, budget)
        total = np.zeros((geo.g, geo.k, geo.og), dtype=x.dtype)
        product = np.empty_like(total)
        for n0, n1, oh0, oh1 in part:
            cols = geo.im2col(x, buf, n0, n1, oh0, oh1, serial=True)  # (images, G, K, rows * WO)
            for b in range(n1 - n0):
                g = gy4[n0 + b, :, :, oh0 * geo.wo:oh1 * geo.wo]  # (G, O/G, rows * WO), a view
                np.matmul(cols[b], g.transpose(0, 2, 1), out=product)
                total += product
        return total

    totals = _in_row_blocks(x, geo, work)
    for other in totals[1:]:
        totals[0] += other
    return np.ascontiguousarray(totals[0].transpose(0, 2, 1))
