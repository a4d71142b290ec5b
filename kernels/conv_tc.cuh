// Convolutions on tensor cores: TF32 (float32 tensors where minidl.cuda.allow_tf32.conv
// permits; mma.sync m16n8k8) and FP16 / BF16 (m16n8k16); the three implicit GEMMs of a
// convolution (tensor_core.cuh) with fp32 accumulation, per group g of G:
//   forward          y[m][p]  = sum_k w[m][k]       * col(x)[k][p]   M = O/G, N = N*HO*WO, K = C/G*KH*KW
//   backward-data    dx[c][q] = sum_k wt[c][k]      * col(gy)[k][q]  M = C/G, N = N*H*W,   K = O/G*KH*KW
//   backward-weight  dw[m][k] = sum_p gy[m][p]      * col(x)[p][k]   M = O/G, N = C/G*KH*KW, K = a split of N*HO*WO
// col() is gathered on the fly (padding, stride, dilation; backward-data gathers the
// gy pixels whose window reads input pixel q, as conv.cuh's SIMT kernels do).
//
// Layout: NCHW x, y, dx, gy; w and dw (O, C/G, KH, KW); the weight gradient writes
// per-split partials ws (splits, O, C/G*KH*KW), summed by the caller (splits == 1: ws
// is dw).
// Tiling: a 64x64 output tile per block of 4 warps (2x2), each warp 32x32 = 2 m16 x 4
// n8 mma tiles; K in steps of kTcBK = 16 (two k8 steps), a kTcStages-deep cp.async
// pipeline: the A tiles As[m][k] and the gathered B tiles Bs[k][n] of the next slices
// are in flight while the warps multiply the current one; fragments are read by the PTX layouts
// (tensor_core.cuh) and rounded to TF32 as they are read.  Row pads of 4 (As) and
// 8 (Bs) words make the fragment reads conflict-free: lane (g, t) reads As[g][t] at bank
// (20g + t) % 32 and Bs[t][g] at bank (72t + g) % 32, all 32 distinct.
// FP16 / BF16 tensors take conv2d_tc_16bit_kernel (m16n8k16; below).
// Conventions: outputs overwritten.  Not yet here (the tensor-core issue): ldmatrix for
// the TF32 fragments (read with plain 32-bit loads), 128x128 tiles.
#pragma once

#include "conv.cuh"
#include "tensor_core.cuh"

namespace minidl {

constexpr int kTcBM = 64, kTcBN = 64, kTcBK = 16, kTcThreads = 128;
constexpr int kTcLdA = kTcBK + 4, kTcLdB = kTcBN + 8;

// ------------------------------------------------------------------ the three problems
// Each says, for block z (its group, and split for the weight gradient): the GEMM
// sizes, the addresses of a(m, k) and b(column, k) (nullptr: a zero of the padding)
// with b's per-column setup (`Column`), and store(m, n).
// (bias: float per output channel or nullptr, added in the epilogue before the rounding
// to E: a convolution with bias is one pass and, for 16-bit E, one rounding)
template <class E>
struct TcForward {
    const E* x;
    const E* w;
    const float* bias;
    E* y;
    ConvGeometry g;
    int grp = 0;
    __device__ void setup(int z) { grp = z; }
    __device__ int rows() const { return g.O / g.G; }
    __device__ long long cols() const { return (long long)g.N * g.HO * g.WO; }
    __device__ long long k_begin() const { return 0; }
    __device__ long long k_end() const { return (long long)(g.C / g.G) * g.KH * g.KW; }
    __device__ const E* a(int m, long long k) const { return w + ((long long)grp * rows() + m) * k_end() + k; }
    struct Column {
        const E* xg;
        int ho, wo;
    };
    __device__ Column column(long long p) const {
        const int L = g.HO * g.WO;
        const long long n = p / L;
        const int l = (int)(p % L);
        return Column{x + (n * g.C + (long long)grp * (g.C / g.G)) * g.H * g.W, l / g.WO, l % g.WO};
    }
    __device__ const E* b(const Column& col, long long k) const {
        const int KK = g.KH * g.KW, c = (int)(k / KK), t = (int)(k % KK);
        const int hi = col.ho * g.sh - g.pt + (t / g.KW) * g.dh, wi = col.wo * g.sw - g.pl + (t % g.KW) * g.dw;
        return (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W) ? col.xg + ((long long)c * g.H + hi) * g.W + wi : nullptr;
    }
    __device__ void store(int m, long long p, float v) const {
        const int L = g.HO * g.WO;
        const long long o = (long long)grp * rows() + m;
        y[((p / L) * g.O + o) * L + p % L] = from_compute<E>(bias != nullptr ? v + bias[o] : v);
    }
};

template <class E>
struct TcBackwardData {
    const E* gy;
    const E* w;
    E* dx;
    ConvGeometry g;
    int grp = 0;
    __device__ void setup(int z) { grp = z; }
    __device__ int rows() const { return g.C / g.G; }
    __device__ long long cols() const { return (long long)g.N * g.H * g.W; }
    __device__ long long k_begin() const { return 0; }
    __device__ long long k_end() const { return (long long)(g.O / g.G) * g.KH * g.KW; }
    // A[c][k = m*KK + t] = W[m, c, t]
    __device__ const E* a(int c, long long k) const {
        const int KK = g.KH * g.KW, Cg = g.C / g.G, m = (int)(k / KK), t = (int)(k % KK);
        return w + (((long long)grp * (g.O / g.G) + m) * Cg + c) * KK + t;
    }
    struct Column {
        const E* gyg;
        int h, w;
    };
    __device__ Column column(long long q) const {
        const int HW = g.H * g.W;
        const long long n = q / HW;
        const int r = (int)(q % HW);
        return Column{gy + (n * g.O + (long long)grp * (g.O / g.G)) * g.HO * g.WO, r / g.W, r % g.W};
    }
    __device__ const E* b(const Column& col, long long k) const {
        const int KK = g.KH * g.KW, m = (int)(k / KK), t = (int)(k % KK);
        const int hh = col.h + g.pt - (t / g.KW) * g.dh, ww = col.w + g.pl - (t % g.KW) * g.dw;
        if (hh < 0 || ww < 0 || hh % g.sh || ww % g.sw) return nullptr;
        const int ho = hh / g.sh, wo = ww / g.sw;
        return (ho < g.HO && wo < g.WO) ? col.gyg + ((long long)m * g.HO + ho) * g.WO + wo : nullptr;
    }
    __device__ void store(int c, long long q, float v) const {
        const int HW = g.H * g.W;
        dx[((q / HW) * g.C + (long long)grp * rows() + c) * HW + q % HW] = from_compute<E>(v);
    }
};

// ws is float32 whatever E is: the splits' partial sums are added in float32
template <class E>
struct TcBackwardWeight {
    const E* x;
    const E* gy;
    float* ws;
    ConvGeometry g;
    int splits;
    long long chunk;  // output pixels per split
    int grp = 0, split = 0;
    __device__ void setup(int z) {
        grp = z / splits;
        split = z % splits;
    }
    __device__ int rows() const { return g.O / g.G; }
    __device__ long long cols() const { return (long long)(g.C / g.G) * g.KH * g.KW; }
    __device__ long long k_begin() const { return split * chunk; }
    __device__ long long k_end() const {
        const long long P = (long long)g.N * g.HO * g.WO, e = (split + 1) * chunk;
        return e < P ? e : P;
    }
    // A[m][p] = gy[n, m, l]
    __device__ const E* a(int m, long long p) const {
        const int L = g.HO * g.WO;
        return gy + ((p / L) * g.O + (long long)grp * rows() + m) * L + p % L;
    }
    struct Column {
        int c, kh, kw;
    };
    __device__ Column column(long long k) const {
        const int KK = g.KH * g.KW, t = (int)(k % KK);
        return Column{(int)(k / KK), t / g.KW, t % g.KW};
    }
    __device__ const E* b(const Column& col, long long p) const {
        const int L = g.HO * g.WO, l = (int)(p % L);
        const long long n = p / L;
        const int hi = (l / g.WO) * g.sh - g.pt + col.kh * g.dh, wi = (l % g.WO) * g.sw - g.pl + col.kw * g.dw;
        if (hi < 0 || hi >= g.H || wi < 0 || wi >= g.W) return nullptr;
        return x + ((n * g.C + (long long)grp * (g.C / g.G) + col.c) * g.H + hi) * g.W + wi;
    }
    __device__ void store(int m, long long k, float v) const {
        ws[((long long)split * g.O + (long long)grp * rows() + m) * cols() + k] = v;
    }
};

// ------------------------------------------------------------------ the GEMM tile
// One K slice into stage buffers As/Bs with cp.async (4 bytes per element: the B tile
// is a gather; zero-filled outside the problem and in the padding).
template <class Problem>
__device__ __forceinline__ void tc_stage(const Problem& pr, std::uint32_t (*As)[kTcLdA], std::uint32_t (*Bs)[kTcLdB],
                                         int m0, int M, long long k0, long long ke,
                                         const typename Problem::Column& col, int bcol, bool bvalid) {
    const float* any = pr.a(0, 0);  // a valid address for the zero-filled copies
    for (int i = threadIdx.x; i < kTcBM * kTcBK; i += kTcThreads) {
        const int m = i / kTcBK, k = i % kTcBK;
        const bool ok = m0 + m < M && k0 + k < ke;
        cp_async<4>(&As[m][k], ok ? pr.a(m0 + m, k0 + k) : any, ok);
    }
    for (int kl = threadIdx.x / kTcBN; kl < kTcBK; kl += kTcThreads / kTcBN) {
        const float* src = bvalid && k0 + kl < ke ? pr.b(col, k0 + kl) : nullptr;
        cp_async<4>(&Bs[kl][bcol], src ? src : any, src != nullptr);
    }
}

__device__ __forceinline__ std::uint32_t tf32_of_bits(std::uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return to_tf32(f);
}

// grid (ceil(cols / 64), ceil(rows / 64), G [* splits]); one 64x64 tile of the problem.
// kTcStages buffers: while the warps multiply slice i out of buffer i % kTcStages,
// cp.async has slices i + 1 .. i + kTcStages - 1 in flight (group i is the one that
// must have landed: wait until at most kTcStages - 1 groups are pending).
constexpr int kTcStages = 3;

template <class Problem>
__global__ void __launch_bounds__(kTcThreads) conv2d_tc_tf32_kernel(Problem pr) {
    __shared__ __align__(16) std::uint32_t As[kTcStages][kTcBM][kTcLdA];
    __shared__ __align__(16) std::uint32_t Bs[kTcStages][kTcBK][kTcLdB];
    pr.setup(blockIdx.z);
    const int M = pr.rows(), m0 = blockIdx.y * kTcBM;
    const long long N = pr.cols(), n0 = (long long)blockIdx.x * kTcBN;
    const long long kb = pr.k_begin(), ke = pr.k_end();
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;  // this warp's 32x32 of the tile
    const int gid = lane >> 2, tig = lane & 3;

    const int bcol = tid % kTcBN;  // the B column this thread stages for every K slice
    const bool bvalid = n0 + bcol < N;
    const typename Problem::Column col = pr.column(bvalid ? n0 + bcol : 0);

    float acc[2][4][4] = {};
    for (int st = 0; st < kTcStages - 1; ++st) {  // the prologue: slices 0 .. kTcStages - 2
        const long long k = kb + (long long)st * kTcBK;
        if (k < ke) tc_stage(pr, As[st], Bs[st], m0, M, k, ke, col, bcol, bvalid);
        cp_async_commit();
    }
    int s = 0;
    for (long long k0 = kb; k0 < ke; k0 += kTcBK, s = s + 1 == kTcStages ? 0 : s + 1) {
        const long long ahead = k0 + (long long)(kTcStages - 1) * kTcBK;
        const int sa = s == 0 ? kTcStages - 1 : s - 1;  // = (s + kTcStages - 1) % kTcStages
        if (ahead < ke) tc_stage(pr, As[sa], Bs[sa], m0, M, ahead, ke, col, bcol, bvalid);
        cp_async_commit();  // (empty groups near the end keep the count uniform)
        cp_async_wait<kTcStages - 1>();  // slice k0 has landed
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kTcBK; kk += 8) {
            std::uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                const int r = wm + mi * 16 + gid;
                a[mi][0] = tf32_of_bits(As[s][r][kk + tig]);
                a[mi][1] = tf32_of_bits(As[s][r + 8][kk + tig]);
                a[mi][2] = tf32_of_bits(As[s][r][kk + tig + 4]);
                a[mi][3] = tf32_of_bits(As[s][r + 8][kk + tig + 4]);
            }
#pragma unroll
            for (int nj = 0; nj < 4; ++nj) {
                const int c = wn + nj * 8 + gid;
                b[nj][0] = tf32_of_bits(Bs[s][kk + tig][c]);
                b[nj][1] = tf32_of_bits(Bs[s][kk + tig + 4][c]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int nj = 0; nj < 4; ++nj) mma_m16n8k8_tf32(acc[mi][nj], a[mi], b[nj], acc[mi][nj]);
        }
        __syncthreads();  // buffer s is refilled next trip
    }
    cp_async_wait<0>();

    // D fragment (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1) of each 16x8 tile
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nj = 0; nj < 4; ++nj)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int m = m0 + wm + mi * 16 + gid + (r >= 2 ? 8 : 0);
                const long long n = n0 + wn + nj * 8 + 2 * tig + (r & 1);
                if (m < M && n < N) pr.store(m, n, acc[mi][nj][r]);
            }
}

// ------------------------------------------------------------------ the 16-bit GEMM tile
// FP16 / BF16 operands (E = half_t / bf16_t) on mma.sync m16n8k16, fp32 accumulation:
// the same 64x64 tile and warp layout, K in steps of 16 (one k16 step).  As is [m][k]
// and Bs is [n][k] (each B column contiguous), 16 + 8 values a row (48 bytes: every
// 8x8 matrix row is 16-byte aligned for ldmatrix).  Fragments come from ldmatrix.x4:
// one instruction for a 16x16 A tile (matrices rows 0-7/8-15 x k 0-7/8-15 give a0..a3)
// and one for the B fragments of two n8 tiles (n 0-7/8-15 x k 0-7/8-15); the 8 rows of
// one matrix start at banks 12i mod 32, covering all 32 banks once: conflict-free.
// Staging is plain 16-bit loads (cp.async moves 4 bytes at least, and the B tile is a
// gather of single values).
constexpr int kTc16Ld = 16 + 8;

template <class E> __device__ __forceinline__ std::uint16_t bits16(E v) {
    if constexpr (std::is_same_v<E, bf16_t>)
        return bits_of_bf16(v);
    else
        return bits_of(v);
}

template <class Problem, class E>
__global__ void __launch_bounds__(kTcThreads) conv2d_tc_16bit_kernel(Problem pr) {
    __shared__ __align__(16) std::uint16_t As[kTcBM][kTc16Ld];
    __shared__ __align__(16) std::uint16_t Bs[kTcBN][kTc16Ld];
    pr.setup(blockIdx.z);
    const int M = pr.rows(), m0 = blockIdx.y * kTcBM;
    const long long N = pr.cols(), n0 = (long long)blockIdx.x * kTcBN;
    const long long kb = pr.k_begin(), ke = pr.k_end();
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const int gid = lane >> 2, tig = lane & 3;
    const int bcol = tid % kTcBN;
    const bool bvalid = n0 + bcol < N;
    const typename Problem::Column col = pr.column(bvalid ? n0 + bcol : 0);
    // this lane's ldmatrix row within a 16x16 block: A (m = lane % 16, k = 8 * (lane / 16));
    // B (n = lane % 8 + 8 * (lane / 16), k = 8 * (lane / 8 % 2))
    const int a_row = lane & 15, a_col = (lane >> 4) * 8;
    const int b_row = (lane & 7) + ((lane >> 4) << 3), b_col = ((lane >> 3) & 1) * 8;

    float acc[2][4][4] = {};
    for (long long k0 = kb; k0 < ke; k0 += 16) {
        for (int i = tid; i < kTcBM * 16; i += kTcThreads) {
            const int m = i / 16, k = i % 16;
            As[m][k] = m0 + m < M && k0 + k < ke ? bits16(*pr.a(m0 + m, k0 + k)) : 0;
        }
        for (int kl = tid / kTcBN; kl < 16; kl += kTcThreads / kTcBN) {
            const E* src = bvalid && k0 + kl < ke ? pr.b(col, k0 + kl) : nullptr;
            Bs[bcol][kl] = src ? bits16(*src) : 0;
        }
        __syncthreads();
        std::uint32_t a[2][4], b[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) ldmatrix<4, false>(a[mi], &As[wm + mi * 16 + a_row][a_col]);
#pragma unroll
        for (int nj = 0; nj < 4; nj += 2) {
            std::uint32_t r[4];  // b[nj][0], b[nj][1], b[nj + 1][0], b[nj + 1][1]
            ldmatrix<4, false>(r, &Bs[wn + nj * 8 + b_row][b_col]);
            b[nj][0] = r[0];
            b[nj][1] = r[1];
            b[nj + 1][0] = r[2];
            b[nj + 1][1] = r[3];
        }
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int nj = 0; nj < 4; ++nj) {
                if constexpr (std::is_same_v<E, bf16_t>)
                    mma_m16n8k16_bf16(acc[mi][nj], a[mi], b[nj], acc[mi][nj]);
                else
                    mma_m16n8k16_f16(acc[mi][nj], a[mi], b[nj], acc[mi][nj]);
            }
        __syncthreads();
    }
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nj = 0; nj < 4; ++nj)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int m = m0 + wm + mi * 16 + gid + (r >= 2 ? 8 : 0);
                const long long n = n0 + wn + nj * 8 + 2 * tig + (r & 1);
                if (m < M && n < N) pr.store(m, n, acc[mi][nj][r]);
            }
}

}  // namespace minidl
