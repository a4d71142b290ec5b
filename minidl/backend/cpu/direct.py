"""Direct convolution for the stems: few input channels, wide maps, forward only.

A stem (3 -> 64 channels, 7x7/2, at 224 px) multiplies a 64 x 147 weight by 147-row
columns: im2col writes each input value 12 times (49 taps / stride 2 squared), BLAS
packs those columns once more, and the product is then written to memory.  Here the
weights stay in registers' reach and the input is read in place instead:

* The input rows a task needs are copied once, zero-padded and split by column phase:
  ``phases[c, i, p, q] = x_padded[c, row0 + i, q * sw + p]``.  Under kernel tap (i, j)
  the inputs of consecutive output pixels of a row then are consecutive values,
  ``phases[c, oh * sh + i, j % sw, ow + j // sw]``: one vector load per LANES pixels,
  for any stride.
* A register tile of R output channels by V vectors of LANES output pixels of one row
  accumulates over every tap t = (c, i, j): acc[r][v] += w[r, t] * x_t[v], R * V
  fused multiply-adds per tap against V vector loads and R broadcasts.  The tile is an
  LLVM IR loop (``_tile``) whose accumulators are SSA values, so they live in registers;
  a Numba loop over the same arithmetic kept them in memory and vectorized the wrong
  loop (7-9 GFLOP/s: NOTES.md).  R * V + V + R <= 31 vector registers (AVX-512 has 32).
* Every tile stores straight into y, through masked stores (``llvm.masked.store``)
  where it crosses the map's right edge or the last output channel.  (A scratch tile
  and a copy of its valid part made Inception-v3's 149-pixel rows 1.5x slower than
  im2col: NOTES.md.)

Weights are (blocks, taps, R), zero-padded to whole blocks of R channels.  y is
overwritten.  One task per image and run of output rows, each with its own phase copy
(held in L1/L2 while its rows are computed).  Where "auto" takes it: ``wins``.
"""
from __future__ import annotations

import functools

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .gemm import THREADS, in_threads, panels
from .im2col import split_phases

LANES = 16  # float32 per vector register (AVX-512; elsewhere LLVM splits each vector)
# The tiles below fill AVX-512's 32 vector registers.  With 16 (AVX2) or narrower
# vectors they spill, so "auto" takes this path only on AVX-512 (not measured elsewhere).
FAST_VECTORS = bool(llvm.get_host_cpu_features().get("avx512f", False))
MAX_VECTORS = 7
# Output channels per tile for V vectors: the most with R * V + V + R <= 31.
ROWS_FOR_VECTORS = {1: 15, 2: 9, 3: 7, 4: 5, 5: 4, 6: 3, 7: 3}
# "auto" (wins) takes the forward at most this many input channels, where at least
# MIN_FILL of the tiles' lanes are output pixels.  Measured here (2-vCPU AMD EPYC VM, both
# threads, medians of alternating runs, ms; im2col or Winograd / this): 7x7/2 3->64 at
# 224 px, batch 8, 12.4 / 10.8, batch 1 1.7 / 1.4, at 64 px, batch 64, 10.0 / 7.9;
# 3x3/2 3->32 at 224, batch 16, 5.9 / 5.2; 11x11/4 3->64 batch 16 20.4 / 15.7; 3x3
# 3->64 at 224, batch 8, 23.2 / 16.4; LeNet's 5x5 1->6 at 28x28, batch 256, 2.5 / 1.05;
# 3x3 8->32 at 56 and 112 1.2-1.5x faster than either.  At 16 channels it was even
# with Winograd (3x3 at 28x28 and 112x112 0.8-1.2x, 5x5 at 14x14 and 56x56 1.1-1.3x
# faster), and from 32 behind it; strided 3x3/2 on 32-128 channels at 56-112 px only
# 1.03-1.1x faster than im2col.
MAX_CHANNELS = 8
MIN_FILL = 0.75


def _emit_tile(builder, n_rows, n_vectors, xd, x_base, td, n_taps, wd, w_base, yd, y_base, y_stride,
               valid_rows, valid_pixels):
    """The IR of one tile shape (``_tile``), from the builder's current block on."""
    i64, i32 = ir.IntType(64), ir.IntType(32)
    vec = ir.VectorType(ir.FloatType(), LANES)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{LANES}f32")
    entry = builder.block
    loop = builder.append_basic_block(f"tile{n_rows}x{n_vectors}.taps")
    done = builder.append_basic_block(f"tile{n_rows}x{n_vectors}.store")
    builder.branch(loop)
    builder.position_at_end(loop)
    t = builder.phi(i64)
    t.add_incoming(ir.Constant(i64, 0), entry)
    accs = []
    for _ in range(n_rows * n_vectors):
        acc = builder.phi(vec)
        acc.add_incoming(ir.Constant(vec, [0.0] * LANES), entry)
        accs.append(acc)
    xp = builder.gep(xd, [builder.add(x_base, builder.load(builder.gep(td, [t])))])
    xs = [builder.load(builder.bitcast(builder.gep(xp, [ir.Constant(i64, v * LANES)]), vec.as_pointer()),
                       align=4) for v in range(n_vectors)]
    wp = builder.gep(wd, [builder.add(w_base, builder.mul(t, ir.Constant(i64, n_rows)))])
    undef = ir.Constant(vec, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
    new = []
    for r in range(n_rows):
        scalar = builder.load(builder.gep(wp, [ir.Constant(i64, r)]))
        wv = builder.shuffle_vector(builder.insert_element(undef, scalar, ir.Constant(i32, 0)), undef, splat)
        new += [builder.call(fma, [wv, xs[v], accs[r * n_vectors + v]]) for v in range(n_vectors)]
    t_next = builder.add(t, ir.Constant(i64, 1))
    t.add_incoming(t_next, builder.block)
    for acc, value in zip(accs, new):
        acc.add_incoming(value, builder.block)
    builder.cbranch(builder.icmp_signed("<", t_next, n_taps), loop, done)
    builder.position_at_end(done)
    mask_type = ir.VectorType(ir.IntType(1), LANES)
    store = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vec, ir.PointerType(), i32, mask_type]),
        f"llvm.masked.store.v{LANES}f32.p0")
    index_vec = ir.VectorType(i64, LANES)
    pixels = builder.shuffle_vector(builder.insert_element(ir.Constant(index_vec, ir.Undefined), valid_pixels,
                                                           ir.Constant(i32, 0)),
                                    ir.Constant(index_vec, ir.Undefined), splat)
    for r in range(n_rows):
        yr = builder.gep(yd, [builder.add(y_base, builder.mul(y_stride, ir.Constant(i64, r)))])
        row_valid = builder.icmp_signed("<", ir.Constant(i64, r), valid_rows)
        for v in range(n_vectors):
            lanes = ir.Constant(index_vec, [v * LANES + lane for lane in range(LANES)])
            mask = builder.and_(builder.icmp_signed("<", lanes, pixels),
                                builder.select(row_valid, ir.Constant(mask_type, [1] * LANES),
                                               ir.Constant(mask_type, [0] * LANES)))
            builder.call(store, [new[r * n_vectors + v], builder.gep(yr, [ir.Constant(i64, v * LANES)]),
                                 ir.Constant(i32, 4), mask])


@intrinsic
def _tile(typingctx, vectors, x, x_base, taps, w, w_base, y, y_base, y_stride, valid_rows, valid_pixels):
    """y[y_base + r * y_stride + p] = sum over t of w[w_base + t * rows + r] *
    x[x_base + taps[t] + p], for r < rows = ROWS_FOR_VECTORS[vectors] and p < vectors *
    LANES, stored where r < valid_rows and p < valid_pixels (masked stores: a tile on
    the map's right edge or past the last channel).  Overwrites y.  The IR switches on
    ``vectors`` to one loop per tile shape (each needs its shape at compile time)."""
    i64 = types.int64
    sig = types.void(i64, x, i64, taps, w, i64, y, i64, i64, i64, i64)

    def codegen(context, builder, signature, args):
        vectors_arg, xa, x_base, ta, wa, w_base, ya, y_base, y_stride, valid_rows, valid_pixels = args
        xd, td, wd, yd = [context.make_array(signature.args[k])(context, builder, a).data
                          for k, a in ((1, xa), (3, ta), (4, wa), (6, ya))]
        n_taps = builder.extract_value(context.make_array(signature.args[3])(context, builder, ta).shape, 0)
        end = builder.append_basic_block("tile.end")
        switch = builder.switch(vectors_arg, end)
        for n_vectors, n_rows in ROWS_FOR_VECTORS.items():
            block = builder.append_basic_block(f"tile{n_rows}x{n_vectors}")
            switch.add_case(ir.Constant(ir.IntType(64), n_vectors), block)
            builder.position_at_end(block)
            _emit_tile(builder, n_rows, n_vectors, xd, x_base, td, n_taps, wd, w_base, yd, y_base, y_stride,
                       valid_rows, valid_pixels)
            builder.branch(end)
        builder.position_at_end(end)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _forward(x, w_t, taps, y, kh, sh, sw, pt, pl, rows_per_task, span, pitch, phase_len, vectors, task0, task1):
    """Tasks [task0, task1) of y = conv(x, w) (see the module docstring): a task is an
    image's run of ``rows_per_task`` output rows.  Its phase copy holds ``span`` input
    rows per channel, each as sw phase rows ``pitch`` apart, whose first ``phase_len``
    values are filled (im2col.split_phases); ``taps`` indexes that layout."""
    channels, width = x.shape[1], x.shape[3]
    out_ch, ho, wo = y.shape[1], y.shape[2], y.shape[3]
    rows, blocks = w_t.shape[2], w_t.shape[0]
    tile_px = vectors * LANES
    tiles = (wo + tile_px - 1) // tile_px
    chunks = (ho + rows_per_task - 1) // rows_per_task
    y_flat = y.reshape(-1)
    w_flat = w_t.reshape(-1)
    w_block = taps.shape[0] * rows
    padded = np.zeros(sw * phase_len, np.float32)
    copied = max(0, min(width, sw * phase_len - pl))
    phases = np.empty(channels * span * sw * pitch, np.float32)
    for task in range(task0, task1):
        b = task // chunks
        oh0 = (task - b * chunks) * rows_per_task
        oh1 = min(oh0 + rows_per_task, ho)
        for c in range(channels):
            for i in range((oh1 - oh0 - 1) * sh + kh):
                split_phases(x, b, c, oh0 * sh + i - pt, padded, phases, (c * span + i) * sw * pitch,
                             pitch, phase_len, sw, pl, copied)
        for oh in range(oh0, oh1):
            x_base = (oh - oh0) * sh * sw * pitch
            for blk in range(blocks):
                o0 = blk * rows
                for tile in range(tiles):
                    p0 = tile * tile_px
                    _tile(vectors, phases, x_base + p0, taps, w_flat, blk * w_block, y_flat,
                          ((b * out_ch + o0) * ho + oh) * wo + p0, ho * wo, out_ch - o0, wo - p0)


def applies(g, dtype):
    """Ungrouped, undilated float32 convolutions (the tile is float32 IR)."""
    return g.G == 1 and g.dh == g.dw == 1 and np.dtype(dtype) == np.float32


def wins(g, dtype):
    """Whether "auto" takes the forward here: on AVX-512 (FAST_VECTORS), few input
    channels (MAX_CHANNELS), where the tiles' vectors are at least MIN_FILL full of
    output pixels, and not a 1x1 stride-1 convolution (its GEMM needs no columns)."""
    if not FAST_VECTORS or not applies(g, dtype) or g.C > MAX_CHANNELS or (g.KH == g.KW == 1 and g.sh == g.sw == 1):
        return False
    tile_px = _vectors(g.WO) * LANES
    return g.WO >= MIN_FILL * (-(-g.WO // tile_px) * tile_px)


def _vectors(wo):
    """Vectors per tile: the row's vectors in the fewest tiles of at most MAX_VECTORS,
    spread evenly."""
    total = -(-wo // LANES)
    tiles = -(-total // MAX_VECTORS)
    return -(-total // tiles)


@functools.lru_cache(maxsize=64)
def _layout(g):
    """The geometry's tasks and phase-copy layout, cached per geometry (a training step
    runs the same convolution every step): -> (vectors per tile, output rows per task,
    tasks, the _forward arguments span, pitch, phase_len, and its ``taps`` offsets)."""
    vectors = _vectors(g.WO)
    rows_per_task = -(-g.HO // max(1, -(-2 * THREADS // g.N)))  # (at least two tasks per thread)
    tasks = g.N * -(-g.HO // rows_per_task)
    span = (rows_per_task - 1) * g.sh + g.KH
    phase_len = -(-g.WO // (vectors * LANES)) * vectors * LANES + (g.KW - 1) // g.sw  # (what the tiles read)
    pitch = (phase_len + 15) // 16 * 16 + 16  # (as im2col.by_phase_rows)
    c, i, j = np.meshgrid(np.arange(g.C), np.arange(g.KH), np.arange(g.KW), indexing="ij")
    taps = (((c * span + i) * g.sw + j % g.sw) * pitch + j // g.sw).reshape(-1).astype(np.int64)
    taps.flags.writeable = False
    return vectors, rows_per_task, tasks, span, pitch, phase_len, taps


def conv2d_forward(x, w, g, out=None):
    """-> y (N, O, HO, WO), float32 (``applies``), written into ``out`` (C-contiguous)
    where given."""
    vectors, rows_per_task, tasks, span, pitch, phase_len, taps = _layout(g)
    rows = ROWS_FOR_VECTORS[vectors]
    blocks = -(-g.O // rows)
    taps_n = g.C * g.KH * g.KW
    w_t = np.zeros((blocks * rows, taps_n), np.float32)  # (zero past the last channel)
    w_t[:g.O] = w.reshape(g.O, taps_n)
    w_t = np.ascontiguousarray(w_t.reshape(blocks, rows, taps_n).transpose(0, 2, 1))  # (blocks, taps, R)
    y = np.empty(g.y_shape, np.float32) if out is None else out
    args = (x, w_t, taps, y, g.KH, g.sh, g.sw, g.pt, g.pl, rows_per_task, span, pitch, phase_len, vectors)
    in_threads([functools.partial(_forward, *args, t0, t1) for t0, t1 in panels(tasks, THREADS)])
    return y
