"""Convolution on the kernel backends (cuda and emu): kernels/conv.cu and depthwise.cu.

Dispatch, the same for both array modules:
  * 1x1, stride 1, no padding: a plain (grouped) GEMM through ``xp.matmul``;
  * groups == channels (> 1): the dedicated depthwise kernels;
  * otherwise the algorithm named by ``backend.conv_algo`` (default from the
    environment variable MINIDL_CONV_ALGO, else "auto"):
      "igemm"   our tiled shared-memory implicit-GEMM kernels (forward,
                backward-data, backward-weight split over K): on TF32 tensor
                cores (mma.sync, kernels/conv_tc.cuh) for float32 where
                ``minidl.cuda.allow_tf32.conv`` permits, else SIMT;
                float16/bfloat16 on the 16-bit tensor-core kernels (on the
                other paths they compute in float32 and round);
      "im2col"  the im2col / col2im kernels with the GEMMs done by ``xp.matmul``
                (cuBLAS on cuda), over chunks of the batch to bound the col buffer;
      "auto"    the tensor-core kernels for every shape they take (TF32, 16-bit:
                small output maps split K over blocks, strided backward-data runs
                per input phase); SIMT float32/float64 take igemm except where
                im2col + cuBLAS measured faster on an H200
                (benchmarks/results/gpu_h200): small output maps (< 256 pixels,
                e.g. 512 channels at 7x7: 0.25 vs 0.69 ms) and the backward of
                strided convolutions (the 7x7/2 stem: 0.70 vs 12.2 ms; the SIMT
                backward-data multiplies every tap and discards the off-stride ones).
Every function returns fresh arrays (the backend contract).  The launchers are
kernels/conv.h and kernels/depthwise.h.
"""
from __future__ import annotations

import os

import numpy as np

from ... import cuda
from ...dtypes import compute_dtype, is_half
from ..checks import check_conv_arrays
from .operand import Operand, contiguous


ALGOS = ("auto", "igemm", "im2col")
DEFAULT_ALGO = os.environ.get("MINIDL_CONV_ALGO", "auto")
_SMALL_MAP = 256               # output pixels below which "auto" takes im2col
_COL_BUDGET = 1 << 26          # elements of one im2col chunk (256 MB of float32)
_TARGET_BLOCKS = 264           # split-K (weight gradient; tensor-core forward): ~2 blocks per H100 SM
_WGRAD_MIN_PIXELS = 128        # ... the weight gradient's splits keep this many output pixels at least
_FWD_MIN_K = 256               # ... the forward's this much of C/G*KH*KW


def _is_pointwise(g):
    return g.KH == g.KW == 1 and g.stride == (1, 1) and not any(g.padding)


def _tf32(dtype):
    """Implicit GEMM on TF32 tensor cores (kernels/conv_tc.cuh) rather than SIMT fp32:
    float32 data where minidl.cuda.allow_tf32.conv permits it."""
    return dtype == np.float32 and cuda.allow_tf32.conv


def _is_depthwise(g):
    return g.G > 1 and g.G == g.C


def _algo(be, backward, g, dtype):
    algo = getattr(be, "conv_algo", None) or DEFAULT_ALGO
    if algo not in ALGOS:
        raise ValueError(f"conv2d: conv_algo must be one of {ALGOS}, got {algo!r}")
    if algo == "auto" and _tf32(dtype):  # the tensor-core kernels cover every shape (split-K, phases)
        return "igemm"
    if algo == "auto":
        small = g.HO * g.WO < _SMALL_MAP
        algo = "im2col" if small or (backward and g.stride != (1, 1)) else "igemm"
    return algo


def _splits(cols, rows, groups, k, min_k):
    """Split-K: enough blocks of 64x64 output tiles to fill the GPU (_TARGET_BLOCKS),
    each split keeping at least ``min_k`` of the GEMM's K."""
    tiles = -(-cols // 64) * -(-rows // 64) * groups
    want = -(-_TARGET_BLOCKS // tiles)
    return max(1, min(want, k // min_k))


def _chunk(n, per_image):
    return max(1, min(n, _COL_BUDGET // max(per_image, 1)))


def _half_on_tensor_cores(be, dtype, g):
    """float16/bfloat16: the 16-bit kernels where they serve the geometry (implicit GEMM
    on tensor cores unless 1x1 or conv_algo im2col; the depthwise kernels); None for
    other dtypes.  (Unlike float32, "auto" keeps small maps on them too: the im2col path
    computes 16-bit inputs in float32, off the 16-bit tensor cores.)"""
    if not is_half(dtype):
        return None
    algo = getattr(be, "conv_algo", None) or DEFAULT_ALGO
    return _is_depthwise(g) or not (_is_pointwise(g) or algo == "im2col")


def _widened(be, arrays):
    """float16/bfloat16 arrays as float32 (the paths without 16-bit kernels compute
    there and round, as autograd's widening would)."""
    return [be.astype(a, np.float32) for a in arrays]


def conv2d_forward(be, x, w, g, bias=None, relu=False):
    """The tensor-core kernels add ``bias`` and apply ``relu`` in their epilogue; the
    other paths with bias_add and relu (16-bit inputs there are computed in float32,
    bias included, and rounded once)."""
    xp = be.xp
    tc16 = _half_on_tensor_cores(be, x.dtype, g)
    if tc16 is False:
        wide = _widened(be, (x, w) if bias is None else (x, w, bias))
        return be.astype(conv2d_forward(be, *wide[:2], g, *wide[2:], relu=relu), x.dtype)
    x, w = contiguous(be, x, w)
    check_conv_arrays("conv2d_forward", g, x, w)
    dtype = x.dtype
    algo = "tc" if tc16 else _algo(be, False, g, dtype)
    if algo == "igemm" and _tf32(dtype):
        algo = "tc"
    if algo == "tc" and not (_is_pointwise(g) or _is_depthwise(g)):
        # the bias and ReLU in the epilogue; K split over blocks on small output maps
        y = xp.empty(g.y_shape, dtype=dtype)
        fused = 0 if bias is None else Operand("bias", be.c(be.astype(bias, np.float32)), (g.O,), np.float32)
        splits = _splits(g.N * g.HO * g.WO, g.O // g.G, g.G, (g.C // g.G) * g.KH * g.KW, _FWD_MIN_K)
        ws = 0 if splits == 1 else Operand("ws", xp.empty((splits, y.size), dtype=np.float32), (splits, y.size),
                                           np.float32)
        be.launch("conv2d_tc_forward", dtype, Operand("x", x, g.x_shape, dtype), Operand("w", w, g.w_shape, dtype),
                  fused, Operand("y", y, g.y_shape, dtype), ws, g, splits, int(relu))
        return y
    y = _conv2d_forward_other(be, x, w, g, algo)
    if bias is not None:
        y = be.bias_add(y, bias)
    return be.relu(y) if relu else y


def _conv2d_forward_other(be, x, w, g, algo):
    """The forward without bias off the tensor-core kernels: a GEMM (1x1), the depthwise
    kernels, SIMT implicit GEMM, or im2col + GEMM."""
    xp, dtype = be.xp, x.dtype
    xo, wo = Operand("x", x, g.x_shape, dtype), Operand("w", w, g.w_shape, dtype)
    if _is_pointwise(g):
        y = xp.matmul(w.reshape(g.G, g.O // g.G, g.C // g.G), x.reshape(g.N, g.G, g.C // g.G, g.H * g.W))
        return y.reshape(g.y_shape)
    y = xp.empty(g.y_shape, dtype=dtype)
    yo = Operand("y", y, g.y_shape, dtype)
    if _is_depthwise(g):
        be.launch("depthwise_conv2d_forward", dtype, xo, wo, yo, g)
    elif algo == "igemm":
        be.launch("conv2d_igemm_forward", dtype, xo, wo, yo, g)
    else:
        kk = (g.C // g.G) * g.KH * g.KW
        wg = w.reshape(g.G, g.O // g.G, kk)
        chunk = _chunk(g.N, g.C * g.KH * g.KW * g.HO * g.WO)
        col = xp.empty((chunk, g.C * g.KH * g.KW, g.HO * g.WO), dtype=dtype)
        colo = Operand("col", col, col.shape, dtype)
        for n0 in range(0, g.N, chunk):
            nc = min(chunk, g.N - n0)
            be.launch("conv2d_im2col", dtype, xo, colo, g, n0, nc)
            cols = col[:nc].reshape(nc, g.G, kk, g.HO * g.WO)
            y[n0:n0 + nc] = xp.matmul(wg, cols).reshape(nc, g.O, g.HO, g.WO)
    return y


def conv2d_backward(be, x, w, gy, g, need_dx=True, need_dw=True):
    xp = be.xp
    tc16 = _half_on_tensor_cores(be, x.dtype, g)
    if tc16 is False:
        grads = conv2d_backward(be, *_widened(be, (x, w, gy)), g, need_dx, need_dw)
        return tuple(None if a is None else be.astype(a, x.dtype) for a in grads)
    x, w, gy = contiguous(be, x, w, gy)
    check_conv_arrays("conv2d_backward", g, x, w, gy)
    dtype = x.dtype
    cg, og = g.C // g.G, g.O // g.G
    dx = dw = None
    if _is_pointwise(g):
        gy4 = gy.reshape(g.N, g.G, og, g.H * g.W)
        if need_dx:
            wt = xp.ascontiguousarray(w.reshape(g.G, og, cg).transpose(0, 2, 1))
            dx = xp.matmul(wt, gy4).reshape(g.x_shape)
        if need_dw:
            x4 = x.reshape(g.N, g.G, cg, g.H * g.W)
            dw = xp.stack([xp.tensordot(gy4[:, i], x4[:, i], axes=((0, 2), (0, 2)))
                           for i in range(g.G)]).reshape(w.shape).astype(w.dtype, copy=False)
        return dx, dw
    xo, wo, gyo = (Operand("x", x, g.x_shape, dtype), Operand("w", w, g.w_shape, dtype),
                   Operand("gy", gy, g.y_shape, dtype))
    if _is_depthwise(g):
        if need_dx:
            dx = xp.empty_like(x)
            be.launch("depthwise_conv2d_backward_data", dtype, gyo, wo, Operand("dx", dx, g.x_shape, dtype), g)
        if need_dw:
            dw = xp.empty_like(w)
            partials = (g.N * g.O * g.KH * g.KW,)  # per-image dw, summed by the launcher
            work_dtype = compute_dtype(dtype)
            be.launch("depthwise_conv2d_backward_weight", dtype, xo, gyo, Operand("dw", dw, g.w_shape, dtype),
                      Operand("work", xp.empty(partials, dtype=work_dtype), partials, work_dtype), g)
        return dx, dw
    kk = cg * g.KH * g.KW
    if tc16 or _algo(be, True, g, dtype) == "igemm":
        kind = "tc" if tc16 or _tf32(dtype) else "igemm"  # tensor cores (TF32 / 16-bit) or SIMT
        if need_dx:
            dx = xp.empty_like(x)
            be.launch(f"conv2d_{kind}_backward_data", dtype, gyo, wo, Operand("dx", dx, g.x_shape, dtype), g)
        if need_dw:
            splits = _splits(kk, og, g.G, g.N * g.HO * g.WO, _WGRAD_MIN_PIXELS)
            ws_dtype = compute_dtype(dtype)  # 16-bit inputs: float32 partial sums
            ws = xp.empty((splits, g.O, kk), dtype=ws_dtype) if kind == "igemm" or splits > 1 else None
            wso = 0 if ws is None else Operand("ws", ws, ws.shape, ws_dtype)
            if kind == "tc":  # the partials summed (and rounded once) by the launcher's second kernel
                dw = xp.empty_like(w)
                be.launch("conv2d_tc_backward_weight", dtype, xo, gyo, Operand("dw", dw, g.w_shape, dtype), wso, g,
                          splits)
            else:
                be.launch("conv2d_igemm_backward_weight", dtype, xo, gyo, wso, g, splits)
                dw = (ws[0] if splits == 1 else ws.sum(axis=0)).reshape(w.shape)
        return dx, dw
    # im2col / col2im with xp.matmul GEMMs, over chunks of the batch
    chunk = _chunk(g.N, g.C * g.KH * g.KW * g.HO * g.WO)
    col = xp.empty((chunk, g.C * g.KH * g.KW, g.HO * g.WO), dtype=dtype)
    colo = Operand("col", col, col.shape, dtype)
    if need_dx:
        dx = xp.empty_like(x)
        dxo = Operand("dx", dx, g.x_shape, dtype)
        wt = xp.ascontiguousarray(w.reshape(g.G, og, kk).transpose(0, 2, 1))
    if need_dw:
        dw = xp.zeros((g.G, og, kk), dtype=dtype)
    for n0 in range(0, g.N, chunk):
        nc = min(chunk, g.N - n0)
        gyc = gy[n0:n0 + nc].reshape(nc, g.G, og, g.HO * g.WO)
        if need_dw:
            be.launch("conv2d_im2col", dtype, xo, colo, g, n0, nc)
            cols = col[:nc].reshape(nc, g.G, kk, g.HO * g.WO)
            for i in range(g.G):
                dw[i] += xp.tensordot(gyc[:, i], cols[:, i], axes=((0, 2), (0, 2)))
        if need_dx:
            col[:nc] = xp.matmul(wt, gyc).reshape(nc, g.C * g.KH * g.KW, g.HO * g.WO)
            be.launch("conv2d_col2im", dtype, colo, dxo, g, n0, nc)
    if need_dw:
        dw = dw.reshape(w.shape)
    return dx, dw
