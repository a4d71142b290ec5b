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
#pragma once

#include "common.cuh"

namespace minidl {

template <class T> __device__ __forceinline__ T lrn_pow(T a, T b) { return pow(a, b); }
template <> __device__ __forceinline__ float lrn_pow<float>(float a, float b) { return powf(a, b); }

template <typename T>
__global__ void lrn_forward_kernel(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ scale,
                                   int N, int C, int HW, int size, T alpha, T beta, T k) {
    const long long total = (long long)N * C * HW;
    const int before = size / 2, after = (size - 1) / 2;
    const T coef = alpha / T(size);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)((i / HW) % C);
        const int c0 = max(c - before, 0), c1 = min(c + after, C - 1);
        const T* xc = x + i - (long long)(c - c0) * HW;
        T acc = T(0);
        for (int j = 0; j <= c1 - c0; ++j) {
            const T v = xc[(long long)j * HW];
            acc += v * v;
        }
        const T s = k + coef * acc;
        scale[i] = s;
        y[i] = x[i] * lrn_pow(s, -beta);
    }
}

template <typename T>
__global__ void lrn_backward_kernel(const T* __restrict__ x, const T* __restrict__ y,
                                    const T* __restrict__ scale, const T* __restrict__ gy,
                                    T* __restrict__ dx, int N, int C, int HW, int size, T alpha, T beta) {
    const long long total = (long long)N * C * HW;
    const int before = size / 2, after = (size - 1) / 2;
    const T coef = T(2) * alpha * beta / T(size);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)((i / HW) % C);
        const int c0 = max(c - after, 0), c1 = min(c + before, C - 1);
        const long long base = i - (long long)(c - c0) * HW;
        T acc = T(0);
        for (int j = 0; j <= c1 - c0; ++j) {
            const long long o = base + (long long)j * HW;
            acc += gy[o] * y[o] / scale[o];
        }
        dx[i] = gy[i] * lrn_pow(scale[i], -beta) - coef * x[i] * acc;
    }
}

}  // namespace minidl
