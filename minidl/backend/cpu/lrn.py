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
from numba import njit, prange


@njit(cache=True, inline="always")
def _neg_pow(s, beta):
    """s ** -beta, with the AlexNet exponent 0.75 as two square roots (pow is slow)."""
    if beta == 0.75:
        r = np.sqrt(s)
        return 1.0 / (r * np.sqrt(r))
    return s ** -beta


@njit(parallel=True, cache=True)
def _lrn_fwd(x, y, scale, size, alpha, beta, k):
    n_img, chans, height, width = x.shape
    before, after = size // 2, (size - 1) // 2
    coef = alpha / size
    for row in prange(n_img * height):
        n, h = row // height, row % height
        acc = np.zeros(width, dtype=np.float64)
        for c in range(min(after, chans)):
            for w in range(width):
                v = x[n, c, h, w]
                acc[w] += v * v
        for c in range(chans):
            entering, leaving = c + after, c - before - 1
            if entering < chans:
                for w in range(width):
                    v = x[n, entering, h, w]
                    acc[w] += v * v
            if leaving >= 0:
                for w in range(width):
                    v = x[n, leaving, h, w]
                    acc[w] -= v * v
            for w in range(width):
                s = k + coef * acc[w]
                scale[n, c, h, w] = s
                y[n, c, h, w] = x[n, c, h, w] * _neg_pow(s, beta)


@njit(parallel=True, cache=True)
def _lrn_bwd(x, y, scale, gy, dx, size, alpha, beta):
    """dx_c = gy_c * scale_c^-beta - 2*alpha*beta/size * x_c * sum_{c': c in window(c')} gy*y/scale.

    c lies in window(c') exactly when c' is in [c - after, c + before]: the
    transposed window, summed with the same running-sum scheme."""
    n_img, chans, height, width = x.shape
    before, after = size // 2, (size - 1) // 2
    coef = 2.0 * alpha * beta / size
    for row in prange(n_img * height):
        n, h = row // height, row % height
        acc = np.zeros(width, dtype=np.float64)
        for c in range(min(before, chans)):
            for w in range(width):
                acc[w] += gy[n, c, h, w] * y[n, c, h, w] / scale[n, c, h, w]
        for c in range(chans):
            entering, leaving = c + before, c - after - 1
            if entering < chans:
                for w in range(width):
                    acc[w] += gy[n, entering, h, w] * y[n, entering, h, w] / scale[n, entering, h, w]
            if leaving >= 0:
                for w in range(width):
                    acc[w] -= gy[n, leaving, h, w] * y[n, leaving, h, w] / scale[n, leaving, h, w]
            for w in range(width):
                s = scale[n, c, h, w]
                dx[n, c, h, w] = gy[n, c, h, w] * _neg_pow(s, beta) - coef * x[n, c, h, w] * acc[w]


def lrn_forward(x, size, alpha, beta, k):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    scale = np.empty_like(x)
    _lrn_fwd(x, y, scale, int(size), float(alpha), float(beta), float(k))
    return y, scale


def lrn_backward(x, y, scale, gy, size, alpha, beta, k):
    x, y, scale, gy = (np.ascontiguousarray(a) for a in (x, y, scale, gy))
    dx = np.empty_like(x)
    _lrn_bwd(x, y, scale, gy, dx, int(size), float(alpha), float(beta))
    return dx
