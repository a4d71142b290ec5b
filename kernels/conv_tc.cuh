// Convolution forward on tensor cores, TF32 (float32 tensors where
// minidl.cuda.allow_tf32.conv permits): implicit GEMM y[m][p] = sum_k w[m][k] * col[k][p]
// per group, M = O/G output channels, P = N*HO*WO output pixels, K = C/G*KH*KW, with
// mma.sync m16n8k8 (tensor_core.cuh) and fp32 accumulation.
//
// Layout: NCHW x and y, w (O, C/G, KH, KW), as conv.cuh.
// Tiling: a 64x64 output tile per block of 4 warps (2x2), each warp 32x32 = 2 m16 x 4
// n8 mma tiles; K in steps of kTcBK = 16 (two k8 steps).  The block stages the weight
// tile As[m][k] and the gathered input tile Bs[k][p] in shared memory, rounded to TF32
// once at the store; fragments are then read by the PTX layouts (tensor_core.cuh).
// Row pads of 4 (As) and 8 (Bs) floats make those fragment reads conflict-free: lane
// (g, t) reads As[g][t] at bank (20g + t) % 32 and Bs[t][g] at bank (72t + g) % 32,
// all 32 distinct.
// Conventions: y overwritten.  Single-buffered plain loads for now: the ldmatrix /
// cp.async pipeline, backward passes and FP16/BF16 variants are future work (see the
// tensor-core issue).
#pragma once

#include "conv.cuh"
#include "tensor_core.cuh"

namespace minidl {

constexpr int kTcBM = 64, kTcBN = 64, kTcBK = 16, kTcThreads = 128;
constexpr int kTcLdA = kTcBK + 4, kTcLdB = kTcBN + 8;

// grid (ceil(N*HO*WO / 64), ceil(Og / 64), G)
__global__ void __launch_bounds__(kTcThreads)
    conv2d_tc_forward_tf32_kernel(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
                                  ConvGeometry g) {
    __shared__ __align__(16) std::uint32_t As[kTcBM][kTcLdA];
    __shared__ __align__(16) std::uint32_t Bs[kTcBK][kTcLdB];
    const int Cg = g.C / g.G, Og = g.O / g.G, KK = g.KH * g.KW, K = Cg * KK;
    const int L = g.HO * g.WO;
    const long long P = (long long)g.N * L;
    const int grp = blockIdx.z, m0 = blockIdx.y * kTcBM;
    const long long p0 = (long long)blockIdx.x * kTcBN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;  // this warp's 32x32 of the tile
    const int gid = lane >> 2, tig = lane & 3;

    // The B column (output pixel) this thread gathers for every K slice.
    const int bcol = tid % kTcBN;
    const long long bp = p0 + bcol;
    const bool bvalid = bp < P;
    int bho = 0, bwo = 0;
    long long bn = 0;
    if (bvalid) {
        bn = bp / L;
        const int l = (int)(bp % L);
        bho = l / g.WO;
        bwo = l % g.WO;
    }
    const float* xg = x + (bn * g.C + (long long)grp * Cg) * g.H * g.W;
    const float* wg = w + (long long)grp * Og * K;

    float acc[2][4][4] = {};
    for (int k0 = 0; k0 < K; k0 += kTcBK) {
        // weights: 64 x 16, consecutive threads on consecutive k (coalesced rows)
        for (int i = tid; i < kTcBM * kTcBK; i += kTcThreads) {
            const int m = i / kTcBK, k = i % kTcBK;
            const bool ok = m0 + m < Og && k0 + k < K;
            As[m][k] = to_tf32(ok ? wg[(long long)(m0 + m) * K + k0 + k] : 0.0f);
        }
        // inputs: the 16 x 64 im2col slice gathered on the fly, a column per thread
        for (int kl = tid / kTcBN; kl < kTcBK; kl += kTcThreads / kTcBN) {
            const int k = k0 + kl;
            float v = 0.0f;
            if (bvalid && k < K) {
                const int c = k / KK, t = k % KK;
                const int hi = bho * g.sh - g.pt + (t / g.KW) * g.dh;
                const int wi = bwo * g.sw - g.pl + (t % g.KW) * g.dw;
                if (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W) v = xg[((long long)c * g.H + hi) * g.W + wi];
            }
            Bs[kl][bcol] = to_tf32(v);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kTcBK; kk += 8) {
            std::uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                const int r = wm + mi * 16 + gid;
                a[mi][0] = As[r][kk + tig];
                a[mi][1] = As[r + 8][kk + tig];
                a[mi][2] = As[r][kk + tig + 4];
                a[mi][3] = As[r + 8][kk + tig + 4];
            }
#pragma unroll
            for (int nj = 0; nj < 4; ++nj) {
                const int col = wn + nj * 8 + gid;
                b[nj][0] = Bs[kk + tig][col];
                b[nj][1] = Bs[kk + tig + 4][col];
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int nj = 0; nj < 4; ++nj) mma_m16n8k8_tf32(acc[mi][nj], a[mi], b[nj], acc[mi][nj]);
        }
        __syncthreads();
    }

    // D fragment (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1) of each 16x8 tile
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nj = 0; nj < 4; ++nj)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int m = m0 + wm + mi * 16 + gid + (r >= 2 ? 8 : 0);
                const long long p = p0 + wn + nj * 8 + 2 * tig + (r & 1);
                if (m < Og && p < P)
                    y[((p / L) * g.O + (long long)grp * Og + m) * L + p % L] = acc[mi][nj][r];
            }
}

}  // namespace minidl
