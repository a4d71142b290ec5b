// Cross-channel local response normalization (NCHW), the Krizhevsky/Caffe/PyTorch
// definition used by the CPU backend (minidl/backend/cpu/lrn.py):
//     scale_c = k + alpha/size * sum_{c' = c - size/2 .. c + (size-1)/2, clipped} x_{c'}^2
//     y_c     = x_c * scale_c^-beta
//     dx_c    = gy_c * scale_c^-beta
//               - 2*alpha*beta/size * x_c * sum_{c' = c - (size-1)/2 .. c + size/2} gy*y/scale
// (c lies in window(c') exactly when c' is in the transposed window of the last line).
// One thread per element, walking its channel window at stride H*W; neighbouring
// threads are neighbouring pixels, so every load is coalesced.  The forward writes
// y and scale; the backward reuses scale instead of recomputing it.  Both overwrite.
// 16-bit instances: x, y, gy, dx are 16-bit, scale and the arithmetic float
// (compute_t<T>); their backward rebuilds y/scale = x * scale^(-beta-1) from x and the
// float scale rather than reading the rounded 16-bit y.
#pragma once

#include "common.cuh"

namespace minidl {

template <class T> __device__ __forceinline__ T lrn_pow(T a, T b) { return pow(a, b); }
template <> __device__ __forceinline__ float lrn_pow<float>(float a, float b) { return powf(a, b); }

template <typename T>
__global__ void lrn_forward_kernel(const T* __restrict__ x, T* __restrict__ y, compute_t<T>* __restrict__ scale,
                                   int N, int C, int HW, int size, compute_t<T> alpha, compute_t<T> beta,
                                   compute_t<T> k) {
    using V = compute_t<T>;
    const long long total = (long long)N * C * HW;
    const int before = size / 2, after = (size - 1) / 2;
    const V coef = alpha / V(size);
    MINIDL_GRID_STRIDE(i, total) {
        const int c = (int)((i / HW) % C);
        const int c0 = max(c - before, 0), c1 = min(c + after, C - 1);
        const T* xc = x + i - (long long)(c - c0) * HW;
        V acc = V(0);
        for (int j = 0; j <= c1 - c0; ++j) {
            const V v = to_compute(xc[(long long)j * HW]);
            acc += v * v;
        }
        const V s = k + coef * acc;
        scale[i] = s;
        y[i] = from_compute<T>(to_compute(x[i]) * lrn_pow(s, -beta));
    }
}

template <typename T>
__global__ void lrn_backward_kernel(const T* __restrict__ x, const T* __restrict__ y,
                                    const compute_t<T>* __restrict__ scale, const T* __restrict__ gy,
                                    T* __restrict__ dx, int N, int C, int HW, int size, compute_t<T> alpha,
                                    compute_t<T> beta) {
    using V = compute_t<T>;
    const long long total = (long long)N * C * HW;
    const int before = size / 2, after = (size - 1) / 2;
    const V coef = V(2) * alpha * beta / V(size);
    MINIDL_GRID_STRIDE(i, total) {
        const int c = (int)((i / HW) % C);
        const int c0 = max(c - after, 0), c1 = min(c + before, C - 1);
        const long long base = i - (long long)(c - c0) * HW;
        V acc = V(0);
        for (int j = 0; j <= c1 - c0; ++j) {
            const long long o = base + (long long)j * HW;
            if constexpr (std::is_same_v<T, V>)
                acc += gy[o] * y[o] / scale[o];
            else  // y / scale from x: the 16-bit y is rounded
                acc += to_compute(gy[o]) * to_compute(x[o]) * lrn_pow(scale[o], -beta - V(1));
        }
        dx[i] = from_compute<T>(to_compute(gy[i]) * lrn_pow(scale[i], -beta) - coef * to_compute(x[i]) * acc);
    }
}

}  // namespace minidl
