// Convolution kernels (NCHW, weight (O, C/G, KH, KW), no bias: autograd adds it).
//
// Geometry lives in ConvGeometry (launcher.h), passed by value.  Padding is (top, left) here: the
// bottom/right padding only changes the output size, which the caller computes
// (HO = (H + pt + pb - dh*(KH-1) - 1) / sh + 1).  Input row hi of output row ho and
// tap kh is  hi = ho*sh - pt + kh*dh  (same for columns); out-of-range taps read 0.
// Groups: channels [g*C/G, (g+1)*C/G) feed outputs [g*O/G, (g+1)*O/G).
//
// Two paths, both overwriting their outputs (never accumulating):
//  * im2col / col2im: col holds, per image of a batch chunk, a (C*KH*KW, HO*WO)
//    matrix (row = c*KH*KW + kh*KW + kw, column = ho*WO + wo); the caller does the
//    GEMMs with the array module's matmul.  col2im is a gather: one thread per input
//    pixel sums the col entries that read it, so it needs no atomics.
//  * implicit GEMM: the im2col matrix is never stored; each 256-thread block computes a
//    64x64 output tile, staging 16-deep K slices of both operands in shared memory and
//    giving every thread a 4x4 micro-tile (rows ty + 16*i, columns tx + 16*j, so that
//    the stores of a warp are contiguous).  Per group g (blockIdx.z):
//      forward      y[n, m, p]  = sum_k  W[m, k] * col[n, k, p]       M=O/G, N=N*HO*WO, K=C/G*KH*KW
//      backward-data dx[n, c, q] = sum_(m,t) W[m, c, t] * gy[n, m, q->t]  M=C/G, N=N*H*W,  K=O/G*KH*KW
//                    (a gather: the tap t of output pixel o reads q only when the
//                     stride divides, otherwise the B entry is 0)
//      backward-weight dW[m, k] = sum_(n,p) gy[n, m, p] * col[n, k, p]  M=O/G, N=C/G*KH*KW, K=N*HO*WO
//                    (split-K: blockIdx.z = g*splits + s reduces one slice of the
//                     pixels into ws[s]; the caller sums the slices, so no atomics)
#pragma once

#include "common.cuh"

namespace minidl {

// ------------------------------------------------------------------ im2col / col2im
// col (n_count, C*KH*KW, HO*WO) for images [n0, n0 + n_count).
template <typename T>
__global__ void conv2d_im2col_kernel(const T* __restrict__ x, T* __restrict__ col, ConvGeometry g,
                                     int n0, int n_count) {
    const int KK = g.KH * g.KW;
    const long long L = (long long)g.HO * g.WO;
    const long long total = (long long)n_count * g.C * KK * L;
    MINIDL_GRID_STRIDE(i, total) {
        const long long l = i % L;
        long long r = i / L;
        const int kk = (int)(r % KK);
        r /= KK;
        const int c = (int)(r % g.C);
        const int n = n0 + (int)(r / g.C);
        const int ho = (int)(l / g.WO), wo = (int)(l % g.WO);
        const int hi = ho * g.sh - g.pt + (kk / g.KW) * g.dh;
        const int wi = wo * g.sw - g.pl + (kk % g.KW) * g.dw;
        T v = T(0);
        if (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W)
            v = x[(((long long)n * g.C + c) * g.H + hi) * g.W + wi];
        col[i] = v;
    }
}

// Calls visit(tap, ho * WO + wo) for every tap (kh * KW + kw) and output pixel whose
// window reads input pixel (hi, wi): the gather at the heart of every backward-data
// pass that avoids atomics (col2im here, depthwise_conv2d_backward_data_kernel).
template <class Visit>
__device__ __forceinline__ void for_each_output_reading(const ConvGeometry& g, int hi, int wi, Visit&& visit) {
    for (int kh = 0; kh < g.KH; ++kh) {
        const int hh = hi + g.pt - kh * g.dh;
        if (hh < 0 || hh % g.sh) continue;
        const int ho = hh / g.sh;
        if (ho >= g.HO) continue;
        for (int kw = 0; kw < g.KW; ++kw) {
            const int ww = wi + g.pl - kw * g.dw;
            if (ww < 0 || ww % g.sw) continue;
            const int wo = ww / g.sw;
            if (wo >= g.WO) continue;
            visit(kh * g.KW + kw, ho * g.WO + wo);
        }
    }
}

// dx for images [n0, n0 + n_count) from their col gradients; one thread per input pixel.
template <typename T>
__global__ void conv2d_col2im_kernel(const T* __restrict__ col, T* __restrict__ dx, ConvGeometry g,
                                     int n0, int n_count) {
    const int KK = g.KH * g.KW;
    const long long L = (long long)g.HO * g.WO;
    const long long total = (long long)n_count * g.C * g.H * g.W;
    MINIDL_GRID_STRIDE(i, total) {
        const int wi = (int)(i % g.W);
        long long r = i / g.W;
        const int hi = (int)(r % g.H);
        r /= g.H;  // = n_local * C + c
        const T* crow = col + r * KK * L;
        T acc = T(0);
        for_each_output_reading(g, hi, wi, [&](int tap, int out) { acc += crow[tap * L + out]; });
        dx[(long long)n0 * g.C * g.H * g.W + i] = acc;
    }
}

// ------------------------------------------------------------------ implicit GEMM
constexpr int kConvBM = 64, kConvBN = 64, kConvBK = 16, kConvThreads = 256;
// Shared tiles are [kConvBK][64 + 1]: the pad keeps the transposed stores (a column
// per thread group) from hitting one bank 16 times.
constexpr int kConvLd = kConvBM + 1;
static_assert(kConvBM == kConvBN, "one padded row length serves both tiles");

// Thread (tx, ty) = (tid % 16, tid / 16) owns rows ty + 16*i and columns tx + 16*j.
template <typename T>
__device__ __forceinline__ void conv_tile_fma(T (*As)[kConvLd], T (*Bs)[kConvLd],
                                              T (&acc)[4][4], int tx, int ty) {
#pragma unroll
    for (int k = 0; k < kConvBK; ++k) {
        T a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) b[j] = Bs[k][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
}

// grid (ceil(N*HO*WO / 64), ceil(Og / 64), G)
template <typename T>
__global__ void __launch_bounds__(kConvThreads)
conv2d_igemm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                            ConvGeometry g) {
    __shared__ T As[kConvBK][kConvLd];
    __shared__ T Bs[kConvBK][kConvLd];
    const int Cg = g.C / g.G, Og = g.O / g.G, KK = g.KH * g.KW, K = Cg * KK;
    const int L = g.HO * g.WO;
    const long long P = (long long)g.N * L;
    const int grp = blockIdx.z;
    const int m0 = blockIdx.y * kConvBM;
    const long long p0 = (long long)blockIdx.x * kConvBN;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;

    // This thread's B column (one output pixel) for every K slice.
    const int bcol = tid % kConvBN;
    const long long bp = p0 + bcol;
    const bool bvalid = bp < P;
    int bn = 0, bho = 0, bwo = 0;
    if (bvalid) {
        bn = (int)(bp / L);
        const int l = (int)(bp % L);
        bho = l / g.WO;
        bwo = l % g.WO;
    }
    const T* xg = x + ((long long)bn * g.C + (long long)grp * Cg) * g.H * g.W;
    const T* wg = w + (long long)grp * Og * K;

    T acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);

    for (int k0 = 0; k0 < K; k0 += kConvBK) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int m = ty + 16 * i, k = k0 + tx;
            As[tx][m] = (m0 + m < Og && k < K) ? wg[(long long)(m0 + m) * K + k] : T(0);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int kl = tid / kConvBN + 4 * i, k = k0 + kl;
            T v = T(0);
            if (bvalid && k < K) {
                const int c = k / KK, t = k % KK;
                const int hi = bho * g.sh - g.pt + (t / g.KW) * g.dh;
                const int wi = bwo * g.sw - g.pl + (t % g.KW) * g.dw;
                if (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W)
                    v = xg[((long long)c * g.H + hi) * g.W + wi];
            }
            Bs[kl][bcol] = v;
        }
        __syncthreads();
        conv_tile_fma<T>(As, Bs, acc, tx, ty);
        __syncthreads();
    }

#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const long long p = p0 + tx + 16 * j;
        if (p >= P) continue;
        const long long n = p / L, l = p % L;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int m = m0 + ty + 16 * i;
            if (m < Og) y[(n * g.O + (long long)grp * Og + m) * L + l] = acc[i][j];
        }
    }
}

// grid (ceil(N*H*W / 64), ceil(Cg / 64), G)
template <typename T>
__global__ void __launch_bounds__(kConvThreads)
conv2d_igemm_backward_data_kernel(const T* __restrict__ gy, const T* __restrict__ w, T* __restrict__ dx,
                                  ConvGeometry g) {
    __shared__ T As[kConvBK][kConvLd];
    __shared__ T Bs[kConvBK][kConvLd];
    const int Cg = g.C / g.G, Og = g.O / g.G, KK = g.KH * g.KW, K = Og * KK;
    const int HW = g.H * g.W, L = g.HO * g.WO;
    const long long P = (long long)g.N * HW;
    const int grp = blockIdx.z;
    const int c0 = blockIdx.y * kConvBM;
    const long long p0 = (long long)blockIdx.x * kConvBN;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;

    const int bcol = tid % kConvBN;
    const long long bp = p0 + bcol;
    const bool bvalid = bp < P;
    int bn = 0, bh = 0, bw = 0;
    if (bvalid) {
        bn = (int)(bp / HW);
        const int q = (int)(bp % HW);
        bh = q / g.W;
        bw = q % g.W;
    }
    const T* gyg = gy + ((long long)bn * g.O + (long long)grp * Og) * L;
    const T* wg = w + (long long)grp * Og * Cg * KK;

    T acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);

    for (int k0 = 0; k0 < K; k0 += kConvBK) {
        // A[c][k = m*KK + t] = W[m, c, t]
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = ty + 16 * i, k = k0 + tx;
            T v = T(0);
            if (c0 + c < Cg && k < K) {
                const int m = k / KK, t = k % KK;
                v = wg[((long long)m * Cg + c0 + c) * KK + t];
            }
            As[tx][c] = v;
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int kl = tid / kConvBN + 4 * i, k = k0 + kl;
            T v = T(0);
            if (bvalid && k < K) {
                const int m = k / KK, t = k % KK;
                const int hh = bh + g.pt - (t / g.KW) * g.dh;
                const int ww = bw + g.pl - (t % g.KW) * g.dw;
                if (hh >= 0 && ww >= 0 && hh % g.sh == 0 && ww % g.sw == 0) {
                    const int ho = hh / g.sh, wo = ww / g.sw;
                    if (ho < g.HO && wo < g.WO)
                        v = gyg[(long long)m * L + ho * g.WO + wo];
                }
            }
            Bs[kl][bcol] = v;
        }
        __syncthreads();
        conv_tile_fma<T>(As, Bs, acc, tx, ty);
        __syncthreads();
    }

#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const long long p = p0 + tx + 16 * j;
        if (p >= P) continue;
        const long long n = p / HW, q = p % HW;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = c0 + ty + 16 * i;
            if (c < Cg) dx[(n * g.C + (long long)grp * Cg + c) * HW + q] = acc[i][j];
        }
    }
}

// grid (ceil(Cg*KK / 64), ceil(Og / 64), G * splits); ws (splits, O, Cg*KK).
// Split s reduces output pixels [s*chunk, min((s+1)*chunk, N*HO*WO)).
template <typename T>
__global__ void __launch_bounds__(kConvThreads)
conv2d_igemm_backward_weight_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                    T* __restrict__ ws, ConvGeometry g, int splits, long long chunk) {
    __shared__ T As[kConvBK][kConvLd];
    __shared__ T Bs[kConvBK][kConvLd];
    const int Cg = g.C / g.G, Og = g.O / g.G, KK = g.KH * g.KW, K = Cg * KK;
    const int L = g.HO * g.WO;
    const long long P = (long long)g.N * L;
    const int grp = blockIdx.z / splits, split = blockIdx.z % splits;
    const long long q_begin = split * chunk;
    const long long q_end = q_begin + chunk < P ? q_begin + chunk : P;
    const int m0 = blockIdx.y * kConvBM, k0 = blockIdx.x * kConvBN;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;

    T acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);

    for (long long q0 = q_begin; q0 < q_end; q0 += kConvBK) {
        // Both operands: this thread's reduction index is q0 + tx.
        const long long q = q0 + tx;
        const bool qvalid = q < q_end;
        int n = 0, ho = 0, wo = 0, l = 0;
        if (qvalid) {
            n = (int)(q / L);
            l = (int)(q % L);
            ho = l / g.WO;
            wo = l % g.WO;
        }
        const T* gyn = gy + ((long long)n * g.O + (long long)grp * Og) * L + l;
        const T* xn = x + ((long long)n * g.C + (long long)grp * Cg) * g.H * g.W;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int m = ty + 16 * i;
            As[tx][m] = (qvalid && m0 + m < Og) ? gyn[(long long)(m0 + m) * L] : T(0);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int kl = ty + 16 * i, k = k0 + kl;
            T v = T(0);
            if (qvalid && k < K) {
                const int c = k / KK, t = k % KK;
                const int hi = ho * g.sh - g.pt + (t / g.KW) * g.dh;
                const int wi = wo * g.sw - g.pl + (t % g.KW) * g.dw;
                if (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W)
                    v = xn[((long long)c * g.H + hi) * g.W + wi];
            }
            Bs[tx][kl] = v;
        }
        __syncthreads();
        conv_tile_fma<T>(As, Bs, acc, tx, ty);
        __syncthreads();
    }

    T* out = ws + (long long)split * g.O * K;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int m = m0 + ty + 16 * i;
        if (m >= Og) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int k = k0 + tx + 16 * j;
            if (k < K) out[((long long)grp * Og + m) * K + k] = acc[i][j];
        }
    }
}

}  // namespace minidl
