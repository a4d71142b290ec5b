// Depthwise convolution (NCHW): groups == C, weight (O, 1, KH, KW) with O = C * mult;
// output channel o reads input channel o / mult.  Geometry as in conv.cuh (ConvGeometry,
// hi = ho*sh - pt + kh*dh), outputs overwritten, never accumulated.
//  * forward: one thread per output element, KH*KW taps.
//  * backward-data: one thread per input element gathering from the mult output
//    channels and the taps whose stride divides (no atomics).
//  * backward-weight: one block (32..256 threads) per (o, tap) reducing gy * x over N*HO*WO
//    with a block-strided loop and minidl::block_sum (warp shuffles).
#pragma once

#include "common.cuh"
#include "conv.cuh"

namespace minidl {

template <typename T>
__global__ void depthwise_conv2d_forward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                T* __restrict__ y, ConvGeometry g) {
    const int mult = g.O / g.C, KK = g.KH * g.KW;
    const long long total = (long long)g.N * g.O * g.HO * g.WO;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int wo = (int)(i % g.WO);
        long long r = i / g.WO;
        const int ho = (int)(r % g.HO);
        r /= g.HO;
        const int o = (int)(r % g.O);
        const long long n = r / g.O;
        const T* xp = x + (n * g.C + o / mult) * g.H * g.W;
        const T* wp = w + (long long)o * KK;
        T acc = T(0);
        for (int kh = 0; kh < g.KH; ++kh) {
            const int hi = ho * g.sh - g.pt + kh * g.dh;
            if (hi < 0 || hi >= g.H) continue;
            for (int kw = 0; kw < g.KW; ++kw) {
                const int wi = wo * g.sw - g.pl + kw * g.dw;
                if (wi < 0 || wi >= g.W) continue;
                acc += xp[hi * g.W + wi] * wp[kh * g.KW + kw];
            }
        }
        y[i] = acc;
    }
}

template <typename T>
__global__ void depthwise_conv2d_backward_data_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                      T* __restrict__ dx, ConvGeometry g) {
    const int mult = g.O / g.C, KK = g.KH * g.KW, L = g.HO * g.WO;
    const long long total = (long long)g.N * g.C * g.H * g.W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int wi = (int)(i % g.W);
        long long r = i / g.W;
        const int hi = (int)(r % g.H);
        r /= g.H;  // n * C + c
        const int c = (int)(r % g.C);
        const long long n = r / g.C;
        T acc = T(0);
        for (int j = 0; j < mult; ++j) {
            const int o = c * mult + j;
            const T* gp = gy + (n * g.O + o) * L;
            const T* wp = w + (long long)o * KK;
            for_each_output_reading(g, hi, wi, [&](int tap, int out) { acc += gp[out] * wp[tap]; });
        }
        dx[i] = acc;
    }
}

constexpr int kDepthwiseReduceThreads = 256;

// grid (O * KH * KW), block a multiple of 32 up to kDepthwiseReduceThreads; dw (O, 1, KH, KW).
template <typename T>
__global__ void __launch_bounds__(kDepthwiseReduceThreads)
depthwise_conv2d_backward_weight_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                        T* __restrict__ dw, ConvGeometry g) {
    __shared__ T warp_sums[32];
    const int mult = g.O / g.C, KK = g.KH * g.KW, L = g.HO * g.WO;
    const int o = blockIdx.x / KK, t = blockIdx.x % KK;
    const int kh = t / g.KW, kw = t % g.KW;
    const int c = o / mult;
    const long long total = (long long)g.N * L;
    T acc = T(0);
    for (long long q = threadIdx.x; q < total; q += blockDim.x) {
        const long long n = q / L;
        const int l = (int)(q % L);
        const int ho = l / g.WO, wo = l % g.WO;
        const int hi = ho * g.sh - g.pt + kh * g.dh;
        const int wi = wo * g.sw - g.pl + kw * g.dw;
        if (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W)
            acc += gy[(n * g.O + o) * L + l] * x[((n * g.C + c) * g.H + hi) * g.W + wi];
    }
    acc = block_sum(acc, warp_sums);
    if (threadIdx.x == 0) dw[blockIdx.x] = acc;
}

}  // namespace minidl
