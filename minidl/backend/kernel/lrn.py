"""Cross-channel local response normalization on the kernel backends (cuda and emu):
kernels/lrn.cu.  The forward returns (y, scale); the backward reuses scale."""
from __future__ import annotations


__all__ = ["lrn_forward", "lrn_backward"]


def _c(be, first, *rest):
    """C-contiguous arrays, the rest cast to the first one's dtype."""
    first = be.c(first)
    return (first,) + tuple(be.c(be.cast_like(a, first)) for a in rest)


def lrn_forward(be, x, size, alpha, beta, k):
    xp = be.xp
    (x,) = _c(be, x)
    n, c, h, w = x.shape
    y = xp.empty_like(x)
    scale = xp.empty_like(x)
    be.kernel("lrn_forward", x.dtype)(
        be.ptr(x), be.ptr(y), be.ptr(scale), n, c, h * w, int(size), float(alpha), float(beta),
        float(k), be.stream())
    return y, scale


def lrn_backward(be, x, y, scale, gy, size, alpha, beta, k):
    xp = be.xp
    x, y, scale, gy = _c(be, x, y, scale, gy)
    n, c, h, w = x.shape
    dx = xp.empty_like(x)
    be.kernel("lrn_backward", x.dtype)(
        be.ptr(x), be.ptr(y), be.ptr(scale), be.ptr(gy), be.ptr(dx), n, c, h * w, int(size),
        float(alpha), float(beta), be.stream())
    return dx
