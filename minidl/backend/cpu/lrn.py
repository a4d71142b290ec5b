"""Cross-channel local response normalization on the CPU (fused Numba loops).

Krizhevsky/Caffe/PyTorch definition, channel window [c - size//2, c + (size-1)//2]
clipped to the channels that exist:

    scale = k + alpha/size * sum_{c' in window(c)} x_{c'}^2,    y = x * scale^-beta

The window sums are running sums over channels (O(C) per pixel, whatever the
size).  Each parallel iteration owns one image row (n, h) and keeps one
accumulator per pixel of the row, so the innermost loop runs over contiguous w.
Accumulators are float64: a running sum subtracts what it added, and float32
would leave cancellation residue after large values leave the window.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from .parallel import parallel_kernel


@parallel_kernel()
def _lrn_fwd(x, y, scale, size, alpha, beta, k):
    n_img, chans, height, width = x.shape
    before, after = size // 2, (size - 1) // 2
    coef = alpha / size
    plane = height * width
    # flat indexing keeps the inner loops free of per-axis index checks, so they vectorize
    xf, yf, sf = x.reshape(-1), y.reshape(-1), scale.reshape(-1)
    for row in prange(n_img * height):
        n, h = row // height, row % height
        base = n * chans * plane + h * width
        acc = np.zeros(width, dtype=np.float64)
        for c in range(min(after, chans)):
            off = base + c * plane
            for w in range(width):
                acc[w] += xf[off + w] * xf[off + w]
        for c in range(chans):
            if c + after < chans:
                off = base + (c + after) * plane
                for w in range(width):
                    acc[w] += xf[off + w] * xf[off + w]
            if c - before - 1 >= 0:
                off = base + (c - before - 1) * plane
                for w in range(width):
                    acc[w] -= xf[off + w] * xf[off + w]
            off = base + c * plane
            if beta == 0.75:  # the AlexNet exponent as two square roots: pow is ~20x slower
                for w in range(width):
                    s = k + coef * acc[w]
                    r = np.sqrt(s)
                    sf[off + w] = s
                    yf[off + w] = xf[off + w] / (r * np.sqrt(r))
            else:
                for w in range(width):
                    s = k + coef * acc[w]
                    sf[off + w] = s
                    yf[off + w] = xf[off + w] * s ** -beta


@parallel_kernel()
def _lrn_bwd(x, y, scale, gy, dx, size, alpha, beta):
    """dx_c = gy_c * scale_c^-beta - 2*alpha*beta/size * x_c * sum_{c': c in window(c')} gy*y/scale.

    c lies in window(c') exactly when c' is in [c - after, c + before]: the
    transposed window, summed with the same running-sum scheme over a per-row
    buffer that holds gy*y/scale once per element."""
    n_img, chans, height, width = x.shape
    before, after = size // 2, (size - 1) // 2
    coef = 2.0 * alpha * beta / size
    plane = height * width
    xf, yf, sf, gf, df = x.reshape(-1), y.reshape(-1), scale.reshape(-1), gy.reshape(-1), dx.reshape(-1)
    for row in prange(n_img * height):
        n, h = row // height, row % height
        base = n * chans * plane + h * width
        ratio = np.empty((chans, width), dtype=np.float64)
        for c in range(chans):
            off = base + c * plane
            for w in range(width):
                ratio[c, w] = gf[off + w] * yf[off + w] / sf[off + w]
        acc = np.zeros(width, dtype=np.float64)
        for c in range(min(before, chans)):
            for w in range(width):
                acc[w] += ratio[c, w]
        for c in range(chans):
            if c + before < chans:
                for w in range(width):
                    acc[w] += ratio[c + before, w]
            if c - after - 1 >= 0:
                for w in range(width):
                    acc[w] -= ratio[c - after - 1, w]
            off = base + c * plane
            if beta == 0.75:
                for w in range(width):
                    r = np.sqrt(sf[off + w])
                    df[off + w] = gf[off + w] / (r * np.sqrt(r)) - coef * xf[off + w] * acc[w]
            else:
                for w in range(width):
                    xv = xf[off + w]
                    # scale^-beta is y/x wherever x is nonzero: a division instead of a pow
                    neg_pow = yf[off + w] / xv if xv != 0 else sf[off + w] ** -beta
                    df[off + w] = gf[off + w] * neg_pow - coef * xv * acc[w]




def lrn_forward(x, size, alpha, beta, k):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    scale = np.empty_like(x)
    _lrn_fwd.sized(x.size)(x, y, scale, int(size), float(alpha), float(beta), float(k))
    return y, scale


def lrn_backward(x, y, scale, gy, size, alpha, beta, k):
    x, y, scale, gy = (np.ascontiguousarray(a) for a in (x, y, scale, gy))
    dx = np.empty_like(x)
    _lrn_bwd.sized(x.size)(x, y, scale, gy, dx, int(size), float(alpha), float(beta))
    return dx
