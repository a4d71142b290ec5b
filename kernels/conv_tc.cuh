// Convolutions on tensor cores: TF32 (float32 tensors where minidl.cuda.allow_tf32.conv
// permits; mma.sync m16n8k8) and FP16 / BF16 (m16n8k16); the three implicit GEMMs of a
// convolution (tensor_core.cuh) with fp32 accumulation, per group g of G:
//   forward          y[m][p]  = sum_k w[m][k]       * col(x)[k][p]   M = O/G, N = N*HO*WO, K = C/G*KH*KW
//   backward-data    dx[c][q] = sum_k wt[c][k]      * col(gy)[k][q]  M = C/G, N = N*H*W,   K = O/G*KH*KW
//   backward-weight  dw[m][k] = sum_p gy[m][p]      * col(x)[p][k]   M = O/G, N = C/G*KH*KW, K = a split of N*HO*WO
// col() is gathered on the fly (padding, stride, dilation; backward-data gathers the
// gy pixels whose window reads input pixel q, as conv.cuh's SIMT kernels do).
//
// Layout: NCHW x, y, dx, gy; w and dw (O, C/G, KH, KW); split-K partials ws
// (splits, elements of y or dw), float32 (Split-K below).
// Tiling: a 64x64 output tile per block of 4 warps (2x2), each warp 32x32 = 2 m16 x 4
// n8 mma tiles; K in steps of kTcBK = 16 (two k8 steps), a kTcStages-deep cp.async
// pipeline: the A tiles As[m][k] and the gathered B tiles Bs[k][n] of the next slices
// are in flight while the warps multiply the current one.  Both tiles are swizzled, not
// padded (tc_a_index, tc_b_index): the A fragments come from ldmatrix.x4 (four 8x4
// fp32 matrices = a0..a3 of m16n8k8), the B fragments from 32-bit loads (ldmatrix can
// not transpose 32-bit elements), and the cp.async stores, the ldmatrix rows and the B
// loads each cover the 32 banks once: conflict-free.  Values are rounded to TF32 as the
// fragments are read.
// FP16 / BF16 tensors take conv2d_tc_16bit_kernel (m16n8k16; below).
// Addressing: the gathers divide by the geometry's constants through FastDivmod
// (multiply and shift), set up on the host; strided backward-data runs one GEMM per
// phase of the input (below), so no tap is multiplied only to be discarded.
// Split-K: the weight gradient, and the forward on small output maps, write float32
// partials per split into ws, summed (with the bias and ReLU of the forward) by
// tc_reduce_splits_kernel.
// Conventions: outputs overwritten.  Not here: 128x128 tiles (the 64x64 tile is not
// tuned on a GPU yet; see the tensor-core issue's note).
#pragma once

#include "conv.cuh"
#include "tensor_core.cuh"

namespace minidl {

constexpr int kTcBM = 64, kTcBN = 64, kTcBK = 16, kTcThreads = 128;

// n / d and n % d for 0 <= n < 2^31 by a multiply and a shift (Granlund & Montgomery
// 1994; CUTLASS's FastDivmod): mul = floor(2^32 (2^l - d) / d) + 1 with l = ceil(log2 d).
// Built on the host (or once per block); the launchers check that indices fit.
struct FastDivmod {
    unsigned d = 1, mul = 1, shift = 0;
    FastDivmod() = default;
    __host__ __device__ explicit FastDivmod(unsigned divisor) : d(divisor ? divisor : 1) {
        while ((1ull << shift) < d) ++shift;
        mul = (unsigned)((((1ull << shift) - d) << 32) / d + 1);
    }
    __host__ __device__ unsigned div(unsigned n) const {
        return (unsigned)(((((unsigned long long)n * mul) >> 32) + n) >> shift);
    }
    __host__ __device__ void divmod(unsigned n, unsigned& q, unsigned& r) const {
        q = div(n);
        r = n - q * d;
    }
};

// Where a result goes: straight to out (with the forward's bias and ReLU, rounded to E
// once), or, split over K, as float32 partials ws[split][i] for tc_reduce_splits_kernel.
__device__ __forceinline__ float tc_finish(float v, const float* bias, int channel, int relu) {
    if (bias != nullptr) v += bias[channel];
    return relu && v < 0.f ? 0.f : v;  // NaN passes, as in Relu
}

template <class E>
struct TcOutput {
    E* out;
    float* ws;          // nullptr unless split over K
    const float* bias;  // per channel, or nullptr
    int relu;
    long long count;    // elements of out (the stride of ws's splits)
    __device__ void store(int split, long long i, int channel, float v) const {
        if (ws != nullptr)
            ws[split * count + i] = v;
        else
            out[i] = from_compute<E>(tc_finish(v, bias, channel, relu));
    }
};

// ------------------------------------------------------------------ the three problems
// Each says, for block z (its group; its split or phase): the GEMM sizes, the addresses
// of a(m, k) and b(column, k) (nullptr: a zero of the padding) with b's per-column
// setup (`Column`), and store(m, n).  Indices within a group are 32-bit (checked by the
// launchers).
// The divisors of the forward's and the weight gradient's gathers: KH*KW, KW, HO*WO, WO.
struct TcDivisors {
    FastDivmod kk, kw, l, wo;
    TcDivisors() = default;
    explicit TcDivisors(const ConvGeometry& g) : kk(g.KH * g.KW), kw(g.KW), l(g.HO * g.WO), wo(g.WO) {}
};

// Split-K over blockIdx.z = group * splits + split: each split takes `chunk` of K (a
// multiple of kTcBK), the last one what is left.
struct TcSplitK {
    int splits = 1;
    unsigned chunk = 0;
    int grp = 0, split = 0;
    __device__ void setup(int z) {
        grp = z / splits;
        split = z % splits;
    }
    __device__ unsigned k_begin() const { return split * chunk; }
    __device__ unsigned k_end(unsigned k_total) const { return min(k_total, (split + 1) * chunk); }
};

template <class E>
struct TcForward {
    const E* x;
    const E* w;
    TcOutput<E> o;
    ConvGeometry g;
    TcDivisors d;
    TcSplitK sk;
    __device__ void setup(int z) { sk.setup(z); }
    __device__ int rows() const { return g.O / g.G; }
    __device__ unsigned cols() const { return (unsigned)g.N * g.HO * g.WO; }
    __device__ unsigned k_size() const { return (unsigned)(g.C / g.G) * g.KH * g.KW; }
    __device__ unsigned k_begin() const { return sk.k_begin(); }
    __device__ unsigned k_end() const { return sk.k_end(k_size()); }
    __device__ const E* a(int m, unsigned k) const { return w + ((long long)sk.grp * rows() + m) * k_size() + k; }
    struct Column {
        const E* xg;
        int hi0, wi0;  // the input pixel under tap (0, 0)
    };
    __device__ Column column(unsigned p) const {
        unsigned n, l, ho, wo;
        d.l.divmod(p, n, l);
        d.wo.divmod(l, ho, wo);
        return Column{x + ((long long)n * g.C + (long long)sk.grp * (g.C / g.G)) * g.H * g.W,
                      (int)ho * g.sh - g.pt, (int)wo * g.sw - g.pl};
    }
    __device__ const E* b(const Column& col, unsigned k) const {
        unsigned c, t, kh, kw;
        d.kk.divmod(k, c, t);
        d.kw.divmod(t, kh, kw);
        const int hi = col.hi0 + (int)kh * g.dh, wi = col.wi0 + (int)kw * g.dw;
        return (hi >= 0 && hi < g.H && wi >= 0 && wi < g.W) ? col.xg + ((long long)c * g.H + hi) * g.W + wi : nullptr;
    }
    __device__ void store(int m, unsigned p, float v) const {
        unsigned n, l;
        d.l.divmod(p, n, l);
        const int ch = sk.grp * rows() + m;
        o.store(sk.split, ((long long)n * g.O + ch) * (g.HO * g.WO) + l, ch, v);
    }
};

// Backward-data, one GEMM per phase (ph, pw) of the input: the pixels h = ph + sh*i,
// w = pw + sw*j read gy only through the taps kh = kh0 + sth*jh with
// (ph + pt - kh*dh) % sh == 0 (sth = sh / gcd(sh, dh)), at ho = i + oh0 - jh*soh; so the
// phase's K is O/G times its taps, all of them real (stride 1: one phase, every tap).
struct TcPhaseAxis {
    int first = 0, count = 0, step = 1;  // taps first + step*j, j < count
    int off = 0, off_step = 0;           // output offset of tap j: off - j*off_step
    int pixels = 0;                      // input pixels of the phase along the axis
    __device__ TcPhaseAxis(int phase, int stride, int pad, int dil, int kernel, int size) {
        int a = stride, b = dil;
        while (b) {
            const int t = a % b;
            a = b;
            b = t;
        }
        step = stride / a;
        first = -1;
        for (int k = 0; k < kernel && k < step; ++k)
            if ((phase + pad - k * dil) % stride == 0) first = k;
        if (first >= 0) {
            count = (kernel - 1 - first) / step + 1;
            off = (phase + pad - first * dil) / stride;  // exact (may be negative)
            off_step = step * dil / stride;
        } else {
            first = 0;
        }
        pixels = phase < size ? (size - phase + stride - 1) / stride : 0;
    }
    TcPhaseAxis() = default;
};

template <class E>
struct TcBackwardData {
    const E* gy;
    const E* w;
    TcOutput<E> o;
    ConvGeometry g;
    int ph = 0, pw = 0, grp = 0;
    TcPhaseAxis ah, aw;
    FastDivmod div_taps, div_tw, div_pix, div_pw;  // per block: taps, taps along w, phase pixels, along w
    __device__ void setup(int z) {
        const int phases = g.sh * g.sw;
        grp = z / phases;
        ph = z % phases / g.sw;
        pw = z % g.sw;
        ah = TcPhaseAxis(ph, g.sh, g.pt, g.dh, g.KH, g.H);
        aw = TcPhaseAxis(pw, g.sw, g.pl, g.dw, g.KW, g.W);
        div_taps = FastDivmod(ah.count * aw.count);
        div_tw = FastDivmod(aw.count);
        div_pix = FastDivmod(ah.pixels * aw.pixels);
        div_pw = FastDivmod(aw.pixels);
    }
    __device__ int rows() const { return g.C / g.G; }
    __device__ unsigned cols() const { return (unsigned)g.N * ah.pixels * aw.pixels; }
    __device__ unsigned k_begin() const { return 0; }
    __device__ unsigned k_end() const { return (unsigned)(g.O / g.G) * ah.count * aw.count; }
    // A[c][k = (m, jh, jw)] = W[m, c, first_h + step_h*jh, first_w + step_w*jw]
    __device__ const E* a(int c, unsigned k) const {
        unsigned m, t, jh, jw;
        div_taps.divmod(k, m, t);
        div_tw.divmod(t, jh, jw);
        const int kh = ah.first + (int)jh * ah.step, kw = aw.first + (int)jw * aw.step;
        return w + ((((long long)grp * (g.O / g.G) + m) * (g.C / g.G) + c) * g.KH + kh) * g.KW + kw;
    }
    struct Column {
        const E* gyg;
        int i, j;  // the input pixel (ph + sh*i, pw + sw*j)
        long long dx_index;
    };
    __device__ Column column(unsigned q) const {
        unsigned n, r, i, j;
        div_pix.divmod(q, n, r);
        div_pw.divmod(r, i, j);
        const long long ch = (long long)n * g.C + (long long)grp * (g.C / g.G);
        return Column{gy + ((long long)n * g.O + (long long)grp * (g.O / g.G)) * g.HO * g.WO, (int)i, (int)j,
                      (ch * g.H + ph + (int)i * g.sh) * g.W + pw + (int)j * g.sw};
    }
    __device__ const E* b(const Column& col, unsigned k) const {
        unsigned m, t, jh, jw;
        div_taps.divmod(k, m, t);
        div_tw.divmod(t, jh, jw);
        const int ho = col.i + ah.off - (int)jh * ah.off_step, wo = col.j + aw.off - (int)jw * aw.off_step;
        return (ho >= 0 && ho < g.HO && wo >= 0 && wo < g.WO) ? col.gyg + ((long long)m * g.HO + ho) * g.WO + wo
                                                                : nullptr;
    }
    __device__ void store(int c, unsigned q, float v) const {
        o.store(0, column(q).dx_index + (long long)c * g.H * g.W, 0, v);
    }
};

// The weight gradient: K is the output pixels of the batch, split over blockIdx.z.
template <class E>
struct TcBackwardWeight {
    const E* x;
    const E* gy;
    TcOutput<E> o;
    ConvGeometry g;
    TcDivisors d;
    TcSplitK sk;
    __device__ void setup(int z) { sk.setup(z); }
    __device__ int rows() const { return g.O / g.G; }
    __device__ unsigned cols() const { return (unsigned)(g.C / g.G) * g.KH * g.KW; }
    __device__ unsigned k_begin() const { return sk.k_begin(); }
    __device__ unsigned k_end() const { return sk.k_end((unsigned)g.N * g.HO * g.WO); }
    // A[m][p] = gy[n, m, l]
    __device__ const E* a(int m, unsigned p) const {
        unsigned n, l;
        d.l.divmod(p, n, l);
        return gy + ((long long)n * g.O + (long long)sk.grp * rows() + m) * (g.HO * g.WO) + l;
    }
    struct Column {
        int c, dkh, dkw;  // channel, and the tap's offsets kh*dh - pt, kw*dw - pl
    };
    __device__ Column column(unsigned k) const {
        unsigned c, t, kh, kw;
        d.kk.divmod(k, c, t);
        d.kw.divmod(t, kh, kw);
        return Column{(int)c, (int)kh * g.dh - g.pt, (int)kw * g.dw - g.pl};
    }
    __device__ const E* b(const Column& col, unsigned p) const {
        unsigned n, l, ho, wo;
        d.l.divmod(p, n, l);
        d.wo.divmod(l, ho, wo);
        const int hi = (int)ho * g.sh + col.dkh, wi = (int)wo * g.sw + col.dkw;
        if (hi < 0 || hi >= g.H || wi < 0 || wi >= g.W) return nullptr;
        return x + (((long long)n * g.C + (long long)sk.grp * (g.C / g.G) + col.c) * g.H + hi) * g.W + wi;
    }
    __device__ void store(int m, unsigned k, float v) const {
        o.store(sk.split, ((long long)sk.grp * rows() + m) * cols() + k, 0, v);
    }
};

// ------------------------------------------------------------------ the GEMM tile
// Swizzled stage buffers: As[m][16] keeps row m's four 16-byte units at u ^ ((m >> 1) & 3)
// (rows m, m+1 of a warp's store fill the 32 banks; the 8 rows of an ldmatrix matrix
// land on 8 distinct units); Bs[k][64] keeps column n at n ^ ((k & 3) << 3) (a warp's
// store of 32 columns is a permutation of 32 banks; the fragment loads of lanes (g, t)
// at (t, n0 + g) hit banks 8 (j ^ t) + g).
__device__ __forceinline__ int tc_a_index(int m, int k) { return (((k >> 2) ^ ((m >> 1) & 3)) << 2) | (k & 3); }
__device__ __forceinline__ int tc_b_index(int k, int n) { return n ^ ((k & 3) << 3); }

// One K slice into stage buffers As/Bs with cp.async (4 bytes per element: the B tile
// is a gather; zero-filled outside the problem and in the padding).
template <class Problem>
__device__ __forceinline__ void tc_stage(const Problem& pr, std::uint32_t (*As)[kTcBK], std::uint32_t (*Bs)[kTcBN],
                                         int m0, int M, unsigned k0, unsigned ke,
                                         const typename Problem::Column& col, int bcol, bool bvalid) {
    const float* any = pr.a(0, 0);  // a valid address for the zero-filled copies
    for (int i = threadIdx.x; i < kTcBM * kTcBK; i += kTcThreads) {
        const int m = i / kTcBK, k = i % kTcBK;
        const bool ok = m0 + m < M && k0 + k < ke;
        cp_async<4>(&As[m][tc_a_index(m, k)], ok ? pr.a(m0 + m, k0 + k) : any, ok);
    }
    for (int kl = threadIdx.x / kTcBN; kl < kTcBK; kl += kTcThreads / kTcBN) {
        const float* src = bvalid && k0 + kl < ke ? pr.b(col, k0 + kl) : nullptr;
        cp_async<4>(&Bs[kl][tc_b_index(kl, bcol)], src ? src : any, src != nullptr);
    }
}

__device__ __forceinline__ std::uint32_t tf32_of_bits(std::uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return to_tf32(f);
}

// The accumulators of a warp's 32x32 (D fragment (g, 2t), (g, 2t+1), (g+8, 2t),
// (g+8, 2t+1) of each 16x8 tile) through the problem's store.
template <class Problem>
__device__ __forceinline__ void tc_store_tile(const Problem& pr, const float (&acc)[2][4][4], int M, unsigned N,
                                              int m0, unsigned n0) {
    const int lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nj = 0; nj < 4; ++nj)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int m = m0 + mi * 16 + gid + (r >= 2 ? 8 : 0);
                const unsigned n = n0 + nj * 8 + 2 * tig + (r & 1);
                if (m < M && n < N) pr.store(m, n, acc[mi][nj][r]);
            }
}

// grid (ceil(cols / 64), ceil(rows / 64), G * splits or phases); one 64x64 tile.
// kTcStages buffers: while the warps multiply slice i out of buffer i % kTcStages,
// cp.async has slices i + 1 .. i + kTcStages - 1 in flight (group i is the one that
// must have landed: wait until at most kTcStages - 1 groups are pending).
constexpr int kTcStages = 3;

template <class Problem>
__global__ void __launch_bounds__(kTcThreads) conv2d_tc_tf32_kernel(Problem pr) {
    __shared__ __align__(128) std::uint32_t As[kTcStages][kTcBM][kTcBK];
    __shared__ __align__(128) std::uint32_t Bs[kTcStages][kTcBK][kTcBN];
    pr.setup(blockIdx.z);
    const int M = pr.rows(), m0 = blockIdx.y * kTcBM;
    const unsigned N = pr.cols(), n0 = blockIdx.x * kTcBN;
    const unsigned kb = pr.k_begin(), ke = pr.k_end();
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;  // this warp's 32x32 of the tile
    const int gid = lane >> 2, tig = lane & 3;
    // this lane's ldmatrix row: matrices (m 0-7 | 8-15) x (k 0-3 | 4-7) are a0..a3
    const int a_row = lane & 15, a_unit = lane >> 4;

    const int bcol = tid % kTcBN;  // the B column this thread stages for every K slice
    const bool bvalid = n0 + bcol < N;
    const typename Problem::Column col = pr.column(bvalid ? n0 + bcol : 0);

    float acc[2][4][4] = {};
    for (int st = 0; st < kTcStages - 1; ++st) {  // the prologue: slices 0 .. kTcStages - 2
        const unsigned k = kb + st * kTcBK;
        if (k < ke) tc_stage(pr, As[st], Bs[st], m0, M, k, ke, col, bcol, bvalid);
        cp_async_commit();
    }
    int s = 0;
    for (unsigned k0 = kb; k0 < ke; k0 += kTcBK, s = s + 1 == kTcStages ? 0 : s + 1) {
        const unsigned ahead = k0 + (kTcStages - 1) * kTcBK;
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
                const int r = wm + mi * 16 + a_row;
                ldmatrix<4, false>(a[mi], &As[s][r][tc_a_index(r, kk + 4 * a_unit)]);
#pragma unroll
                for (int q = 0; q < 4; ++q) a[mi][q] = tf32_of_bits(a[mi][q]);
            }
#pragma unroll
            for (int nj = 0; nj < 4; ++nj) {
                const int c = wn + nj * 8 + gid;
                b[nj][0] = tf32_of_bits(Bs[s][kk + tig][tc_b_index(kk + tig, c)]);
                b[nj][1] = tf32_of_bits(Bs[s][kk + tig + 4][tc_b_index(kk + tig + 4, c)]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int nj = 0; nj < 4; ++nj) mma_m16n8k8_tf32(acc[mi][nj], a[mi], b[nj], acc[mi][nj]);
        }
        __syncthreads();  // buffer s is refilled next trip
    }
    cp_async_wait<0>();
    tc_store_tile(pr, acc, M, N, m0 + wm, n0 + wn);
}

// ------------------------------------------------------------------ the 16-bit GEMM tile
// FP16 / BF16 operands (E = half_t / bf16_t) on mma.sync m16n8k16, fp32 accumulation:
// the same 64x64 tile and warp layout, K in steps of 16 (one k16 step).  As is [m][k]
// and Bs is [n][k] (each B column contiguous), 16 + 8 values a row (48 bytes: every
// 8x8 matrix row is 16-byte aligned for ldmatrix).  Fragments come from ldmatrix.x4:
// one instruction for a 16x16 A tile (matrices rows 0-7/8-15 x k 0-7/8-15 give a0..a3)
// and one for the B fragments of two n8 tiles (n 0-7/8-15 x k 0-7/8-15); the 8 rows of
// one matrix start at banks 12i mod 32, covering all 32 banks once: conflict-free.
// Staging (cp.async moves 4 bytes at least, and the B tile is a gather of single
// values): the next slice is loaded into registers while the warps multiply the current
// one out of the other of two buffers.  Each thread stages two B columns, c and c + 32
// (c = tid / 4), as 32-bit pairs of k (2j, 2j+1) and (8+2j, 9+2j) (j = tid % 4): a warp
// stores 8 columns x 4 words, banks 12c + j mod 32, all distinct.
constexpr int kTc16Ld = 16 + 8;

template <class E> __device__ __forceinline__ std::uint16_t bits16(E v) {
    if constexpr (std::is_same_v<E, bf16_t>)
        return bits_of_bf16(v);
    else
        return bits_of(v);
}

// One K slice of 16-bit values in registers, on its way to shared memory.
template <class Problem, class E>
struct Tc16Slice {
    std::uint16_t a[kTcBM * 16 / kTcThreads];  // A values i = tid + 128 r: (m, k) = (i / 16, i % 16)
    std::uint32_t b[2][2];                     // [column c, c + 32][k pair 2j | 8 + 2j]

    __device__ void load(const Problem& pr, int m0, int M, unsigned k0, unsigned ke,
                         const typename Problem::Column (&col)[2], const bool (&bvalid)[2]) {
        const int tid = threadIdx.x;
#pragma unroll
        for (int r = 0; r < kTcBM * 16 / kTcThreads; ++r) {
            const int i = tid + r * kTcThreads, m = i / 16, k = i % 16;
            a[r] = m0 + m < M && k0 + k < ke ? bits16(*pr.a(m0 + m, k0 + k)) : 0;
        }
        const int j = tid & 3;
#pragma unroll
        for (int c = 0; c < 2; ++c)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                std::uint32_t pair = 0;
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const unsigned k = k0 + 8 * h + 2 * j + e;
                    const E* src = bvalid[c] && k < ke ? pr.b(col[c], k) : nullptr;
                    pair |= (std::uint32_t)(src ? bits16(*src) : 0) << (16 * e);
                }
                b[c][h] = pair;
            }
    }
    __device__ void store(std::uint16_t (*As)[kTc16Ld], std::uint16_t (*Bs)[kTc16Ld]) const {
        const int tid = threadIdx.x;
#pragma unroll
        for (int r = 0; r < kTcBM * 16 / kTcThreads; ++r) {
            const int i = tid + r * kTcThreads;
            As[i / 16][i % 16] = a[r];
        }
        const int c0 = tid >> 2, j = tid & 3;
#pragma unroll
        for (int c = 0; c < 2; ++c)
#pragma unroll
            for (int h = 0; h < 2; ++h)
                *reinterpret_cast<std::uint32_t*>(&Bs[c0 + 32 * c][8 * h + 2 * j]) = b[c][h];
    }
};

template <class Problem, class E>
__global__ void __launch_bounds__(kTcThreads) conv2d_tc_16bit_kernel(Problem pr) {
    __shared__ __align__(16) std::uint16_t As[2][kTcBM][kTc16Ld];
    __shared__ __align__(16) std::uint16_t Bs[2][kTcBN][kTc16Ld];
    pr.setup(blockIdx.z);
    const int M = pr.rows(), m0 = blockIdx.y * kTcBM;
    const unsigned N = pr.cols(), n0 = blockIdx.x * kTcBN;
    const unsigned kb = pr.k_begin(), ke = pr.k_end();
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    typename Problem::Column col[2];
    bool bvalid[2];
#pragma unroll
    for (int c = 0; c < 2; ++c) {
        const unsigned n = n0 + (tid >> 2) + 32 * c;
        bvalid[c] = n < N;
        col[c] = pr.column(bvalid[c] ? n : 0);
    }
    // this lane's ldmatrix row within a 16x16 block: A (m = lane % 16, k = 8 * (lane / 16));
    // B (n = lane % 8 + 8 * (lane / 16), k = 8 * (lane / 8 % 2))
    const int a_row = lane & 15, a_col = (lane >> 4) * 8;
    const int b_row = (lane & 7) + ((lane >> 4) << 3), b_col = ((lane >> 3) & 1) * 8;

    float acc[2][4][4] = {};
    Tc16Slice<Problem, E> next;
    if (kb < ke) {
        next.load(pr, m0, M, kb, ke, col, bvalid);
        next.store(As[0], Bs[0]);
    }
    __syncthreads();
    int s = 0;
    for (unsigned k0 = kb; k0 < ke; k0 += 16, s ^= 1) {
        const bool more = k0 + 16 < ke;
        if (more) next.load(pr, m0, M, k0 + 16, ke, col, bvalid);  // in flight during the mma
        std::uint32_t a[2][4], b[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) ldmatrix<4, false>(a[mi], &As[s][wm + mi * 16 + a_row][a_col]);
#pragma unroll
        for (int nj = 0; nj < 4; nj += 2) {
            std::uint32_t r[4];  // b[nj][0], b[nj][1], b[nj + 1][0], b[nj + 1][1]
            ldmatrix<4, false>(r, &Bs[s][wn + nj * 8 + b_row][b_col]);
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
        if (more) next.store(As[s ^ 1], Bs[s ^ 1]);  // the other buffer: read by nobody this trip
        __syncthreads();
    }
    tc_store_tile(pr, acc, M, N, m0 + wm, n0 + wn);
}

// ------------------------------------------------------------------ the split-K sum
// out[i] = finish(sum over splits of ws[s][i]): the forward's bias (channel
// (i / inner) % channels) and ReLU, rounded to E once.
template <class E>
__global__ void tc_reduce_splits_kernel(const float* ws, int splits, long long count, const float* bias,
                                        int channels, int inner, int relu, E* out) {
    MINIDL_GRID_STRIDE(i, count) {
        float v = 0.f;
        for (int s = 0; s < splits; ++s) v += ws[s * count + i];
        out[i] = from_compute<E>(tc_finish(v, bias, bias != nullptr ? (int)(i / inner % channels) : 0, relu));
    }
}

}  // namespace minidl
