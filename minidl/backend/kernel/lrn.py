"""Cross-channel local response normalization on the kernel backends (cuda and emu):
kernels/lrn.{h,cu,cuh}.  The forward returns (y, scale); the backward reuses scale."""
from __future__ import annotations

from ...dtypes import compute_dtype
from ..geometry import check_int32_sizes
from .operand import Operand, contiguous


def _nch_w(x, op):
    """(N, C, H*W) of an NCHW array, the launchers' 32-bit ints."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) array, got shape {tuple(x.shape)}")
    sizes = {"N": int(x.shape[0]), "C": int(x.shape[1]), "H*W": int(x.shape[2]) * int(x.shape[3])}
    check_int32_sizes(op, sizes)
    return tuple(sizes.values())


def lrn_forward(be, x, size, alpha, beta, k):
    (x,) = contiguous(be, x)
    n, c, hw = _nch_w(x, "lrn_forward")
    y = be.empty(x.shape, x.dtype)
    sd = compute_dtype(x.dtype)  # (kernels/lrn.h)
    scale = be.empty(x.shape, sd)
    be.launch("lrn_forward", x.dtype, Operand("x", x, x.shape, x.dtype), Operand("y", y, x.shape, x.dtype),
              Operand("scale", scale, x.shape, sd), n, c, hw, int(size), float(alpha), float(beta), float(k))
    return y, scale


def lrn_backward(be, x, y, scale, gy, size, alpha, beta, k):
    x, y, gy = contiguous(be, x, y, gy)
    n, c, hw = _nch_w(x, "lrn_backward")
    sd = compute_dtype(x.dtype)
    scale = be.c(be.astype(scale, sd))
    dx = be.empty(x.shape, x.dtype)
    be.launch("lrn_backward", x.dtype, *[Operand(name, a, x.shape, x.dtype) for name, a in
                                         (("x", x), ("y", y))], Operand("scale", scale, x.shape, sd),
              *[Operand(name, a, x.shape, x.dtype) for name, a in (("gy", gy), ("dx", dx))],
              n, c, hw, int(size), float(alpha), float(beta))
    return dx
