// Row-wise softmax, log-softmax and cross-entropy with label smoothing.
//
// Layout: x is a contiguous (N, K) row-major array; one row = one sample.
// Indexing: two variants of every kernel, selected by the launcher from K:
//   WARP = true  : one warp per row, blockDim.x = 128 (4 rows per block), used for
//                  K <= 1024; reductions are pure warp shuffles, no __syncthreads; the
//                  forward kernels stage the row in shared memory first (staged_row).
//   WARP = false : one block per row, blockDim.x = 256; reductions are warp shuffles
//                  plus one __shared__ exchange across warps (block_sum/block_max).
// Labels are int64 (N,) in [0, K): host labels are checked before their upload, device
// labels are not (that would sync); a row whose label is out of range gets a NaN loss and
// NaN gradients, never a read outside the row, so the trainer's NaN check names the step.
// Conventions: outputs are overwritten.
//   softmax backward   gx = y * (gy - sum(gy * y))          (y = softmax output)
//   log-softmax back.  gx = gy - exp(y) * sum(gy)           (y = log-softmax output)
//   cross entropy      loss[n] = -(1 - eps) * logp[n, label] - eps / K * sum_k logp[n, k]
//                      logp = log-softmax(logits) is saved for the backward
//   its backward       dx[n, k] = g[n] * (exp(logp[n, k]) - (1 - eps) * [k == label] - eps / K)
#pragma once
#include "common.cuh"

namespace minidl {

// Thread coordinates of a row: (row, first column, column stride); row < 0 when this
// warp has no row (WARP variant only: safe, there is no block-wide barrier there).
template <bool WARP>
struct RowCtx {
    long long row;
    int tid, nthr;
    __device__ __forceinline__ RowCtx() {
        if (WARP) {
            row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
            tid = threadIdx.x & 31;
            nthr = 32;
        } else {
            row = blockIdx.x;
            tid = threadIdx.x;
            nthr = blockDim.x;
        }
    }
};

template <bool WARP, class T>
__device__ __forceinline__ T row_sum(T v, T* scratch) {
    if (WARP) return warp_sum(v);
    return block_sum(v, scratch);
}

template <bool WARP, class T>
__device__ __forceinline__ T row_max(T v, T* scratch) {
    if (WARP) return warp_max(v);
    return block_max(v, scratch);
}

template <class T> __device__ __forceinline__ T lowest_() { return T(-INFINITY); }

// The forward kernels read a row three times (max, sum of exponentials, output); the
// warp variant first copies its row (K <= kRowStage) to shared memory with one coalesced
// pass, so global memory sees each logit once.  Returns the row to read from: the staged
// copy (in compute_t<T>) or, in the block variant, the row itself.
constexpr int kRowStage = 1024, kRowStageRows = 4;  // = softmax.cu's warp variant
template <class T, bool WARP>
__device__ __forceinline__ auto staged_row(const T* xr, int K, const RowCtx<WARP>& r, compute_t<T>* stage) {
    if constexpr (!WARP) {
        return xr;
    } else {
        compute_t<T>* row = stage + (threadIdx.x >> 5) * kRowStage;
        // lanes from the sector below the row's start (allocations are 256-byte aligned)
        const long long start = r.row * K;
        const int head = (int)((start * (long long)sizeof(T)) % 32 / (long long)sizeof(T));
        for (int k = r.tid - head; k < K; k += kWarp) {
            const int kk = k < 0 ? 0 : k;
            row[kk] = to_compute(xr[kk]);
        }
        __syncwarp();
        return static_cast<const compute_t<T>*>(row);
    }
}

// The row's maximum m and sum of exp(x - m), reduced over the row's threads: the
// shared first half of softmax and cross-entropy (P: the row's element type).
template <bool WARP, class P, class V>
__device__ __forceinline__ void row_max_and_exp_sum(const P* xr, int K, const RowCtx<WARP>& r, V* scratch, V& m,
                                                    V& s) {
    m = lowest_<V>();
    for (int k = r.tid; k < K; k += r.nthr) {
        const V v = to_compute(xr[k]);
        m = v > m ? v : m;
    }
    m = row_max<WARP>(m, scratch);
    s = V(0);
    for (int k = r.tid; k < K; k += r.nthr) s += exp_(V(to_compute(xr[k])) - m);
    s = row_sum<WARP>(s, scratch);
}

// (16-bit T: loads, stores and the staged rows convert; the arithmetic is float.)
template <class T, bool WARP>
__global__ void softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int N, int K, int log) {
    using V = compute_t<T>;
    __shared__ V scratch[32];
    __shared__ V stage[WARP ? kRowStageRows * kRowStage : 1];
    RowCtx<WARP> r;
    if (r.row >= N) return;
    const auto xr = staged_row<T, WARP>(x + r.row * K, K, r, stage);
    T* yr = y + r.row * K;
    V m, s;
    row_max_and_exp_sum<WARP>(xr, K, r, scratch, m, s);
    if (log) {  // (x - m) - log(s): m + log(s) would round at the scale of the logits
        const V log_s = log_(s);
        for (int k = r.tid; k < K; k += r.nthr) yr[k] = from_compute<T>((V(to_compute(xr[k])) - m) - log_s);
    } else {
        V inv = V(1) / s;
        for (int k = r.tid; k < K; k += r.nthr) yr[k] = from_compute<T>(exp_(V(to_compute(xr[k])) - m) * inv);
    }
}

template <class T, bool WARP>
__global__ void softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                                        int N, int K, int log) {
    using V = compute_t<T>;
    __shared__ V scratch[32];
    __shared__ V stage[WARP ? kRowStageRows * kRowStage : 1];
    RowCtx<WARP> r;
    if (r.row >= N) return;
    const long long off = r.row * K;
    const auto g = staged_row<T, WARP>(gy + off, K, r, stage);  // gy is read twice
    const T* yr = y + off;
    V s = V(0);
    if (log) {
        for (int k = r.tid; k < K; k += r.nthr) s += to_compute(g[k]);
    } else {
        for (int k = r.tid; k < K; k += r.nthr) s += V(to_compute(g[k])) * to_compute(yr[k]);
    }
    s = row_sum<WARP>(s, scratch);
    if (log) {
        for (int k = r.tid; k < K; k += r.nthr)
            gx[off + k] = from_compute<T>(V(to_compute(g[k])) - exp_(V(to_compute(yr[k]))) * s);
    } else {
        for (int k = r.tid; k < K; k += r.nthr)
            gx[off + k] = from_compute<T>(V(to_compute(yr[k])) * (V(to_compute(g[k])) - s));
    }
}

// loss and logp are compute_t<T>: float beside 16-bit logits, whose log-probabilities
// the backward then reads unrounded.
template <class T, bool WARP>
__global__ void cross_entropy_forward_kernel(const T* __restrict__ x, const long long* __restrict__ labels,
                                             compute_t<T>* __restrict__ loss, compute_t<T>* __restrict__ logp, int N,
                                             int K, compute_t<T> eps) {
    using V = compute_t<T>;
    __shared__ V scratch[32];
    __shared__ V stage[WARP ? kRowStageRows * kRowStage : 1];
    RowCtx<WARP> r;
    if (r.row >= N) return;
    const auto xr = staged_row<T, WARP>(x + r.row * K, K, r, stage);
    V* lr = logp + r.row * K;
    V m, s;
    row_max_and_exp_sum<WARP>(xr, K, r, scratch, m, s);
    const V log_s = log_(s);  // (x - m) - log(s), as in softmax_forward_kernel
    V sl = V(0);
    for (int k = r.tid; k < K; k += r.nthr) {
        V v = (V(to_compute(xr[k])) - m) - log_s;
        lr[k] = v;
        sl += v;
    }
    sl = row_sum<WARP>(sl, scratch);
    if (r.tid == 0) {
        const long long lab = labels[r.row];
        if (lab < 0 || lab >= K) {
            loss[r.row] = quiet_nan<V>();
        } else {
            V l = -(V(1) - eps) * ((V(to_compute(xr[lab])) - m) - log_s);
            if (eps != V(0)) l -= eps / V(K) * sl;  // at 0: 0 * (-inf) from a -inf logit would be NaN
            loss[r.row] = l;
        }
    }
}

template <class T, bool WARP>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ logp, const long long* __restrict__ labels,
                                              const T* __restrict__ g, T* __restrict__ dx, int N, int K, T eps) {
    RowCtx<WARP> r;
    if (r.row >= N) return;
    const long long off = r.row * K;
    const long long lab = labels[r.row];
    const T gr = (lab < 0 || lab >= K) ? quiet_nan<T>() : g[r.row], u = eps / T(K), on = T(1) - eps;
    for (int k = r.tid; k < K; k += r.nthr)
        dx[off + k] = gr * (exp_(logp[off + k]) - (k == lab ? on : T(0)) - u);
}

}  // namespace minidl
