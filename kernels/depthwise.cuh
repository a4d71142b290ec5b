// Depthwise convolution (NCHW): groups == C, weight (O, 1, KH, KW) with O = C * mult;
// output channel o reads input channel o / mult.  Geometry as in conv.cuh (ConvGeometry,
// hi = ho*sh - pt + kh*dh), outputs overwritten, never accumulated.
//
// Main path: row tiles in shared memory.  A block takes a (plane, row tile) work item
// (grid-stride over them), stages the rows it reads (one contiguous, coalesced range of
// the plane, halo rows included) and the channel's taps, and each thread then computes
// several outputs from shared memory, so every input is read from global memory once
// per tile instead of once per tap, and every access is coalesced.
//  * forward: output row tiles; any mult.
//  * backward-data (mult == 1): input row tiles gathering from the staged gy rows that
//    cover them and the taps whose stride divides (no atomics).
//  * backward-weight: a block per (image, output channel) computes ALL taps: warps take
//    taps, lanes pixels of the staged x and gy rows; per-image partials (N, O*KK) are
//    summed by channel.cuh's sum_partials_kernel (fixed order, deterministic).
// Direct kernels (one thread per output / input element; one block per (o, tap) for the
// weight gradient) serve what a tile does not fit: planes too wide, more than
// kDwMaxTaps taps, and the backward-data of mult > 1.
#pragma once

#include "channel.cuh"
#include "conv.cuh"

namespace minidl {

// Output pixel (ho, wo) of one channel: `rows` holds the input plane's rows from row0
// on (the plane itself for the direct kernel, the staged rows for a tile), `taps` the
// channel's KH*KW weights.
template <typename T>
__device__ __forceinline__ T depthwise_output(const T* rows, int row0, const T* taps, const ConvGeometry& g, int ho,
                                              int wo) {
    compute_t<T> acc = 0;
    for (int kh = 0; kh < g.KH; ++kh) {
        const int hi = ho * g.sh - g.pt + kh * g.dh;
        if (hi < 0 || hi >= g.H) continue;
        for (int kw = 0; kw < g.KW; ++kw) {
            const int wi = wo * g.sw - g.pl + kw * g.dw;
            if (wi < 0 || wi >= g.W) continue;
            acc += to_compute(rows[(hi - row0) * g.W + wi]) * to_compute(taps[kh * g.KW + kw]);
        }
    }
    return from_compute<T>(acc);
}

template <typename T>
__global__ void depthwise_conv2d_forward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                T* __restrict__ y, ConvGeometry g) {
    const int mult = g.O / g.C, KK = g.KH * g.KW;
    const long long total = (long long)g.N * g.O * g.HO * g.WO;
    MINIDL_GRID_STRIDE(i, total) {
        const int wo = (int)(i % g.WO);
        long long r = i / g.WO;
        const int ho = (int)(r % g.HO);
        r /= g.HO;
        const int o = (int)(r % g.O);
        const long long n = r / g.O;
        y[i] = depthwise_output(x + (n * g.C + o / mult) * g.H * g.W, 0, w + (long long)o * KK, g, ho, wo);
    }
}

template <typename T>
__global__ void depthwise_conv2d_backward_data_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                      T* __restrict__ dx, ConvGeometry g) {
    const int mult = g.O / g.C, KK = g.KH * g.KW, L = g.HO * g.WO;
    const long long total = (long long)g.N * g.C * g.H * g.W;
    MINIDL_GRID_STRIDE(i, total) {
        const int wi = (int)(i % g.W);
        long long r = i / g.W;
        const int hi = (int)(r % g.H);
        r /= g.H;  // n * C + c
        const int c = (int)(r % g.C);
        const long long n = r / g.C;
        compute_t<T> acc = 0;
        for (int j = 0; j < mult; ++j) {
            const int o = c * mult + j;
            const T* gp = gy + (n * g.O + o) * L;
            const T* wp = w + (long long)o * KK;
            for_each_output_reading(g, hi, wi,
                                    [&](int tap, int out) { acc += to_compute(gp[out]) * to_compute(wp[tap]); });
        }
        dx[i] = from_compute<T>(acc);
    }
}

constexpr int kDepthwiseReduceThreads = 256;

// grid (O * KH * KW), block a multiple of 32 up to kDepthwiseReduceThreads; dw (O, 1, KH, KW).
template <typename T>
__global__ void __launch_bounds__(kDepthwiseReduceThreads)
depthwise_conv2d_backward_weight_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                        T* __restrict__ dw, ConvGeometry g) {
    using C = compute_t<T>;
    __shared__ C warp_sums[32];
    const int mult = g.O / g.C, KK = g.KH * g.KW, L = g.HO * g.WO;
    const int o = blockIdx.x / KK, t = blockIdx.x % KK;
    const int kh = t / g.KW, kw = t % g.KW;
    const int c = o / mult;
    const long long total = (long long)g.N * L;
    C acc = C(0);
    for (long long q = threadIdx.x; q < total; q += blockDim.x) {
        const long long n = q / L;
        const int l = (int)(q % L);
        const int ho = l / g.WO, wo = l % g.WO;
        const int hi = ho * g.sh - g.pt + kh * g.dh;
        const int wi = wo * g.sw - g.pl + kw * g.dw;
        if (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W)
            acc += to_compute(gy[(n * g.O + o) * L + l]) * to_compute(x[((n * g.C + c) * g.H + hi) * g.W + wi]);
    }
    acc = block_sum(acc, warp_sums);
    if (threadIdx.x == 0) dw[blockIdx.x] = from_compute<T>(acc);
}

// ------------------------------------------------------------ row tiles
// staged elements per array: 16 KB (4096 floats, 2048 doubles), so the weight
// gradient's two arrays stay within the 48 KB of static shared memory
template <class T> __host__ __device__ constexpr int dw_tile() { return 16384 / (int)sizeof(T); }
constexpr int kDwThreads = 256;
constexpr int kDwMaxTaps = 64;

template <typename T>
__device__ __forceinline__ void stage_taps(T* ws, const T* __restrict__ w, int o, int KK) {
    if ((int)threadIdx.x < KK) ws[threadIdx.x] = w[(long long)o * KK + threadIdx.x];
}

template <typename T>
__global__ void __launch_bounds__(kDwThreads)
    depthwise_conv2d_forward_tiled_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                          ConvGeometry g, int rows, int tiles) {
    __shared__ T xs[dw_tile<T>()];
    __shared__ T ws[kDwMaxTaps];
    const int mult = g.O / g.C, KK = g.KH * g.KW;
    const long long items = (long long)g.N * g.O * tiles;
    for (long long item = blockIdx.x; item < items; item += gridDim.x) {
        const long long plane = item / tiles;  // n * O + o
        const int o = (int)(plane % g.O);
        const long long n = plane / g.O;
        const int ho0 = (int)(item % tiles) * rows, ho1 = min(g.HO, ho0 + rows);
        const int hi0 = max(0, ho0 * g.sh - g.pt), hi1 = min(g.H, (ho1 - 1) * g.sh - g.pt + (g.KH - 1) * g.dh + 1);
        __syncthreads();  // the previous item's rows are consumed
        stage_to_shared(xs, x, ((n * g.C + o / mult) * g.H + hi0) * g.W, (long long)(hi1 - hi0) * g.W);
        stage_taps(ws, w, o, KK);
        __syncthreads();
        const long long out = plane * g.HO * g.WO + (long long)ho0 * g.WO;
        for (int q = threadIdx.x; q < (ho1 - ho0) * g.WO; q += blockDim.x)
            y[out + q] = depthwise_output(xs, hi0, ws, g, ho0 + q / g.WO, q % g.WO);
    }
}

// The output rows [lo, hi] whose taps read input rows [hi0, hi1).
__device__ __forceinline__ void depthwise_covering_rows(const ConvGeometry& g, int hi0, int hi1, int& lo, int& hi) {
    const int first = hi0 + g.pt - (g.KH - 1) * g.dh;
    lo = first <= 0 ? 0 : (first + g.sh - 1) / g.sh;
    hi = min(g.HO - 1, (hi1 - 1 + g.pt) / g.sh);
}

// mult == 1: input channel c is output channel c.
template <typename T>
__global__ void __launch_bounds__(kDwThreads)
    depthwise_conv2d_backward_data_tiled_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                T* __restrict__ dx, ConvGeometry g, int rows, int tiles) {
    __shared__ T gs[dw_tile<T>()];
    __shared__ T ws[kDwMaxTaps];
    const int KK = g.KH * g.KW;
    const long long items = (long long)g.N * g.C * tiles;
    for (long long item = blockIdx.x; item < items; item += gridDim.x) {
        const long long plane = item / tiles;  // n * C + c
        const int c = (int)(plane % g.C);
        const int hi0 = (int)(item % tiles) * rows, hi1 = min(g.H, hi0 + rows);
        int lo, hi;
        depthwise_covering_rows(g, hi0, hi1, lo, hi);
        __syncthreads();
        stage_to_shared(gs, gy, (plane * g.HO + lo) * g.WO, (long long)(hi - lo + 1) * g.WO);
        stage_taps(ws, w, c, KK);
        __syncthreads();
        const long long base = (plane * g.H + hi0) * g.W;
        for (int i = threadIdx.x; i < (hi1 - hi0) * g.W; i += blockDim.x) {
            compute_t<T> acc = 0;
            for_each_output_reading(g, hi0 + i / g.W, i % g.W, [&](int tap, int out) {
                acc += to_compute(gs[out - lo * g.WO]) * to_compute(ws[tap]);
            });
            dx[base + i] = from_compute<T>(acc);
        }
    }
}

// partial (N, O * KK): image n's contribution to dw (in compute_t<T>: float32 for the
// 16-bit instances).
template <typename T>
__global__ void __launch_bounds__(kDwThreads)
    depthwise_conv2d_backward_weight_tiled_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                                  compute_t<T>* __restrict__ partial, ConvGeometry g, int rows) {
    __shared__ T xs[dw_tile<T>()], gs[dw_tile<T>()];
    __shared__ compute_t<T> acc[kDwMaxTaps];
    const int mult = g.O / g.C, KK = g.KH * g.KW;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const long long items = (long long)g.N * g.O;
    for (long long plane = blockIdx.x; plane < items; plane += gridDim.x) {  // n * O + o
        const int o = (int)(plane % g.O);
        const long long n = plane / g.O;
        const long long x_plane = (n * g.C + o / mult) * g.H;
        __syncthreads();
        if ((int)threadIdx.x < KK) acc[threadIdx.x] = 0;
        for (int ho0 = 0; ho0 < g.HO; ho0 += rows) {
            const int ho1 = min(g.HO, ho0 + rows);
            const int hi0 = max(0, ho0 * g.sh - g.pt);
            const int hi1 = min(g.H, (ho1 - 1) * g.sh - g.pt + (g.KH - 1) * g.dh + 1);
            const int pixels = (ho1 - ho0) * g.WO;
            __syncthreads();
            stage_to_shared(xs, x, (x_plane + hi0) * g.W, (long long)(hi1 - hi0) * g.W);
            stage_to_shared(gs, gy, (plane * g.HO + ho0) * g.WO, (long long)pixels);
            __syncthreads();
            for (int t = warp; t < KK; t += warps) {
                const int kh = t / g.KW, kw = t % g.KW;
                compute_t<T> q = 0;
                for (int p = lane; p < pixels; p += kWarp) {
                    const int ho = ho0 + p / g.WO, wo = p % g.WO;
                    const int hi = ho * g.sh - g.pt + kh * g.dh, wi = wo * g.sw - g.pl + kw * g.dw;
                    if (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W) q += to_compute(gs[p]) * to_compute(xs[(hi - hi0) * g.W + wi]);
                }
                q = warp_sum(q);
                if (lane == 0) acc[t] += q;
            }
        }
        __syncthreads();
        if ((int)threadIdx.x < KK) partial[plane * KK + threadIdx.x] = acc[threadIdx.x];
    }
}

}  // namespace minidl
