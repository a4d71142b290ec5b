"""Convolution on the kernel backends (cuda and emu): kernels/conv.cu and depthwise.cu.

Dispatch, the same for both array modules:
  * 1x1, stride 1, no padding: a plain (grouped) GEMM through ``xp.matmul``;
  * groups == channels (> 1): the dedicated depthwise kernels;
  * otherwise the algorithm named by ``backend.conv_algo`` (default from the
    environment variable MINIDL_CONV_ALGO, else "auto"):
      "igemm"   our tiled shared-memory implicit-GEMM kernels (forward,
                backward-data, backward-weight with split-K slices summed here);
      "im2col"  the im2col / col2im kernels with the GEMMs done by ``xp.matmul``
                (cuBLAS on cuda), over chunks of the batch to bound the col buffer;
      "auto"    igemm, except where im2col + cuBLAS measured faster on an H200
                (benchmarks/results/gpu_h200): small output maps (< 256 pixels, e.g.
                512 channels at 7x7: 0.25 vs 0.69 ms) and the backward of strided
                convolutions (the 7x7/2 stem: 0.70 vs 12.2 ms).
Every function returns fresh arrays (the backend contract).
"""
from __future__ import annotations

import os

__all__ = ["conv2d_forward", "conv2d_backward"]


def _c(be, first, *rest):
    """C-contiguous arrays, the rest cast to the first one's dtype."""
    first = be.c(first)
    return (first,) + tuple(be.c(be.cast_like(a, first)) for a in rest)


ALGOS = ("auto", "igemm", "im2col")
DEFAULT_ALGO = os.environ.get("MINIDL_CONV_ALGO", "auto")
_SMALL_MAP = 256               # output pixels below which "auto" takes im2col
_COL_BUDGET = 1 << 26          # elements of one im2col chunk (256 MB of float32)
_WGRAD_TARGET_BLOCKS = 264     # backward-weight split-K: about 2 blocks per H100 SM
_WGRAD_MIN_PIXELS = 128        # ... but at least this many output pixels per slice


def _geometry(x, w, stride, padding, dilation, groups, op):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    pt, pb, pl, pr = padding
    dh, dw = dilation
    if c != cg * groups:
        raise ValueError(f"{op}: input has {c} channels, weight expects {cg * groups} "
                         f"({cg} per group x {groups} groups)")
    if o % groups:
        raise ValueError(f"{op}: out_channels {o} is not divisible by groups {groups}")
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"{op}: the output would be empty ({ho}x{wo}) for input {h}x{wd}, "
                         f"kernel {kh}x{kw}, padding {padding}, dilation {dilation}")
    return (n, c, h, wd, o, kh, kw, ho, wo, sh, sw, pt, pl, dh, dw, groups)


def _is_pointwise(w, stride, padding):
    return w.shape[2] == w.shape[3] == 1 and tuple(stride) == (1, 1) and not any(padding)


def _is_depthwise(x, groups):
    return groups > 1 and groups == x.shape[1]


def _algo(be, backward, stride, ho, wo):
    algo = getattr(be, "conv_algo", None) or DEFAULT_ALGO
    if algo not in ALGOS:
        raise ValueError(f"conv2d: conv_algo must be one of {ALGOS}, got {algo!r}")
    if algo == "auto":
        small = ho * wo < _SMALL_MAP
        algo = "im2col" if small or (backward and tuple(stride) != (1, 1)) else "igemm"
    return algo


def _wgrad_splits(pixels, tiles):
    want = -(-_WGRAD_TARGET_BLOCKS // tiles)
    return max(1, min(want, pixels // _WGRAD_MIN_PIXELS))


def conv2d_forward(be, x, w, stride, padding, dilation, groups):
    xp = be.xp
    x, w = _c(be, x, w)
    g = _geometry(x, w, stride, padding, dilation, groups, "conv2d")
    n, c, h, wd, o, kh, kw, ho, wo = g[:9]
    if _is_pointwise(w, stride, padding):
        y = xp.matmul(w.reshape(groups, o // groups, c // groups),
                      x.reshape(n, groups, c // groups, h * wd))
        return y.reshape(n, o, h, wd)
    y = xp.empty((n, o, ho, wo), dtype=x.dtype)
    if _is_depthwise(x, groups):
        be.kernel("depthwise_forward", x.dtype)(be.ptr(x), be.ptr(w), be.ptr(y), *g, be.stream())
    elif _algo(be, False, stride, ho, wo) == "igemm":
        be.kernel("conv_igemm_forward", x.dtype)(be.ptr(x), be.ptr(w), be.ptr(y), *g, be.stream())
    else:
        im2col = be.kernel("conv_im2col", x.dtype)
        kk = (c // groups) * kh * kw
        wg = w.reshape(groups, o // groups, kk)
        chunk = _chunk(n, c * kh * kw * ho * wo)
        col = xp.empty((chunk, c * kh * kw, ho * wo), dtype=x.dtype)
        for n0 in range(0, n, chunk):
            nc = min(chunk, n - n0)
            im2col(be.ptr(x), be.ptr(col), *g, n0, nc, be.stream())
            cols = col[:nc].reshape(nc, groups, kk, ho * wo)
            y[n0:n0 + nc] = xp.matmul(wg, cols).reshape(nc, o, ho, wo)
    return y


def _chunk(n, per_image):
    return max(1, min(n, _COL_BUDGET // max(per_image, 1)))


def conv2d_backward(be, x, w, gy, stride, padding, dilation, groups, need_dx=True, need_dw=True):
    xp = be.xp
    x, w, gy = _c(be, x, w, gy)
    g = _geometry(x, w, stride, padding, dilation, groups, "conv2d_backward")
    n, c, h, wd, o, kh, kw, ho, wo = g[:9]
    if tuple(gy.shape) != (n, o, ho, wo):
        raise ValueError(f"conv2d_backward: gy has shape {tuple(gy.shape)}, expected {(n, o, ho, wo)}")
    cg, og = c // groups, o // groups
    dx = dw = None

    if _is_pointwise(w, stride, padding):
        gy4 = gy.reshape(n, groups, og, h * wd)
        if need_dx:
            wt = xp.ascontiguousarray(w.reshape(groups, og, cg).transpose(0, 2, 1))
            dx = xp.matmul(wt, gy4).reshape(n, c, h, wd)
        if need_dw:
            x4 = x.reshape(n, groups, cg, h * wd)
            dw = xp.stack([xp.tensordot(gy4[:, i], x4[:, i], axes=((0, 2), (0, 2)))
                           for i in range(groups)]).reshape(w.shape).astype(w.dtype, copy=False)
        return dx, dw

    if _is_depthwise(x, groups):
        if need_dx:
            dx = xp.empty_like(x)
            be.kernel("depthwise_backward_data", x.dtype)(
                be.ptr(gy), be.ptr(w), be.ptr(dx), *g, be.stream())
        if need_dw:
            dw = xp.empty_like(w)
            be.kernel("depthwise_backward_weight", x.dtype)(
                be.ptr(x), be.ptr(gy), be.ptr(dw), *g, be.stream())
        return dx, dw

    kk = cg * kh * kw
    if _algo(be, True, stride, ho, wo) == "igemm":
        if need_dx:
            dx = xp.empty_like(x)
            be.kernel("conv_igemm_backward_data", x.dtype)(
                be.ptr(gy), be.ptr(w), be.ptr(dx), *g, be.stream())
        if need_dw:
            tiles = -(-kk // 64) * -(-og // 64) * groups
            splits = _wgrad_splits(n * ho * wo, tiles)
            ws = xp.empty((splits, o, kk), dtype=x.dtype)
            be.kernel("conv_igemm_backward_weight", x.dtype)(
                be.ptr(x), be.ptr(gy), be.ptr(ws), *g, splits, be.stream())
            dw = (ws[0] if splits == 1 else ws.sum(axis=0)).reshape(w.shape)
        return dx, dw

    # im2col / col2im with xp.matmul GEMMs, over chunks of the batch
    im2col = be.kernel("conv_im2col", x.dtype)
    col2im = be.kernel("conv_col2im", x.dtype)
    chunk = _chunk(n, c * kh * kw * ho * wo)
    col = xp.empty((chunk, c * kh * kw, ho * wo), dtype=x.dtype)
    if need_dx:
        dx = xp.empty_like(x)
        wt = xp.ascontiguousarray(w.reshape(groups, og, kk).transpose(0, 2, 1))
    if need_dw:
        dw = xp.zeros((groups, og, kk), dtype=x.dtype)
    for n0 in range(0, n, chunk):
        nc = min(chunk, n - n0)
        gyc = gy[n0:n0 + nc].reshape(nc, groups, og, ho * wo)
        if need_dw:
            im2col(be.ptr(x), be.ptr(col), *g, n0, nc, be.stream())
            cols = col[:nc].reshape(nc, groups, kk, ho * wo)
            for i in range(groups):
                dw[i] += xp.tensordot(gyc[:, i], cols[:, i], axes=((0, 2), (0, 2)))
        if need_dx:
            col[:nc] = xp.matmul(wt, gyc).reshape(nc, c * kh * kw, ho * wo)
            col2im(be.ptr(col), be.ptr(dx), *g, n0, nc, be.stream())
    if need_dw:
        dw = dw.reshape(w.shape)
    return dx, dw
