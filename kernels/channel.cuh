// Per-channel reductions and maps over (N, C, S) arrays: the memory access pattern
// shared by batch norm (batchnorm.cuh) and bias-add (elementwise.cuh).
//
// Layout: arrays are contiguous (N, C, S), S = H*W (1 for (N, C)); a channel is N runs
// of S values, and per-channel vectors hold C values.
//
// Reduction (channel_reduce_kernel), a 2-D grid: blockIdx.x picks a channel tile
// [c0, c0 + CT), blockIdx.y a chunk p of the runs (images [n0, n1), and, where one
// plane is longer than a tile, CT = 1 and a span [s0, s0 + SL) of it).  For each image
// the block's tile x[n, c0:c0+CT, s0:s0+SL] is ONE contiguous range of memory, so the
// block first copies it to shared memory with consecutive threads on consecutive
// addresses: coalesced whatever S is (a 7x7 plane is 196 bytes, which direct per-plane
// reads would split over partial sectors).  Each warp then reduces its own channels out
// of shared memory (lanes on consecutive words: no bank conflicts); planes shorter than
// a warp take one thread per channel instead.  A block writes its sums as partials
// [p][C] (overwritten); a finalize kernel of the family combines them in a fixed order,
// so results are deterministic and no atomics are used.
//
// A kSum reduction's partials are summed by sum_partials_kernel (launch_channel_sum).
//
// Types: the data (x, g, y) are T; everything per channel (coefficients, partials,
// scale/alpha) and all arithmetic are V = compute_t<T> (half.cuh): float for the 16-bit
// types, whose values are converted as they are staged or loaded.
//
// Map (channel_map_kernel): out[i] = f(inputs[i], coefficients of i's channel), with K
// per-channel coefficient vectors stored back to back (coef[k * C + c]).  A block owns
// kMapChunk consecutive elements; it stages the coefficients of the channels they span
// in shared memory first, so coefficient reads cost one contiguous load per block
// instead of a mostly wasted 32-byte sector per warp instruction.  Planes shorter than
// kMapChunk / kMapRows values span too many channels to stage and read coefficients
// directly (consecutive elements then hold consecutive channels: coalesced anyway).
#pragma once
#include "common.cuh"

namespace minidl {

constexpr int kTileElems = 1024;     // elements of one staged tile (per input)
constexpr int kTileChannels = 256;   // channels of one tile at most
constexpr int kReduceThreads = 256;
constexpr int kTargetBlocks = 1024;  // reduction blocks to aim for (about 8 per SM)
constexpr int kMapThreads = 256;
constexpr int kMapChunk = 2048;      // elements per map block (8 per thread)
constexpr int kMapRows = kMapChunk / 8 + 2;  // channels staged per map block at most

// How a reduction covers (N, C, S); computed on the host by plan_channel_tiles.
struct ChannelTiles {
    int N, C;
    long long S;
    int CT;          // channels per tile
    long long SL;    // plane values per tile: S, or a span of it when CT == 1
    int s_chunks;    // spans per plane (1 unless CT == 1)
    int n_per;       // images per chunk
    int chunks;      // partial rows P = image chunks * s_chunks = gridDim.y
};

inline ChannelTiles plan_channel_tiles(int N, int C, long long S) {
    ChannelTiles t{};
    t.N = N;
    t.C = C;
    t.S = S;
    long long per_tile = S > 0 ? kTileElems / S : 1;
    t.CT = (int)(per_tile < 1 ? 1 : (per_tile > kTileChannels ? kTileChannels : per_tile));
    if (t.CT > C) t.CT = C < 1 ? 1 : C;
    t.s_chunks = S > kTileElems ? (int)ceil_div(S, kTileElems) : 1;
    t.SL = S > kTileElems ? (long long)ceil_div(S, t.s_chunks) : S;  // balanced spans
    long long tiles = ceil_div(C, t.CT);
    long long want = ceil_div(kTargetBlocks, tiles);                   // chunks wanted
    long long image_chunks = ceil_div(want, t.s_chunks);
    if (image_chunks > N) image_chunks = N;
    if (image_chunks < 1) image_chunks = 1;
    t.n_per = (int)ceil_div(N, image_chunks);
    if (t.n_per < 1) t.n_per = 1;
    t.chunks = (int)ceil_div(N, t.n_per) * t.s_chunks;
    return t;
}

// The values per channel that partial row p covers.
__host__ __device__ inline long long chunk_count(const ChannelTiles& t, int p) {
    int n0 = (p / t.s_chunks) * t.n_per;
    int images = t.N - n0 < t.n_per ? t.N - n0 : t.n_per;
    long long s0 = (long long)(p % t.s_chunks) * t.SL;
    long long span = t.S - s0 < t.SL ? t.S - s0 : t.SL;
    return (long long)images * span;
}

// What a reduction sums per value v = x (and g = gy):
enum class Reduce {
    kSum,         // q0 = v, written times `scale`            (bias-add backward: v = gy;
                  //                                           global average pooling)
    kShiftedSq,   // q0 = v - shift, q1 = (v - shift)^2       (batch-norm statistics)
    kGradStats,   // q0 = g', q1 = g' * (x - mean), g' = g    (batch-norm backward)
    kGradStatsRelu,  // the same with g' = g where x * scale + shift > 0, else 0
};

// partial0/partial1: (chunks, C).  kShiftedSq writes the chunk's mean and M2 (sum of
// squared deviations) instead of raw sums; its shift is the first value of the channel
// in the block, which keeps M2 free of cancellation for data far from zero.
// coef (kGradStats*): mean, scale, shift vectors, (3, C).
template <class T, Reduce R>
__global__ void __launch_bounds__(kReduceThreads)
    channel_reduce_kernel(const T* __restrict__ x, const T* __restrict__ g, const compute_t<T>* __restrict__ coef,
                          ChannelTiles t, compute_t<T> scale, compute_t<T>* __restrict__ partial0,
                          compute_t<T>* __restrict__ partial1) {
    using V = compute_t<T>;
    constexpr bool kTwo = R != Reduce::kSum;
    constexpr bool kGrad = R == Reduce::kGradStats || R == Reduce::kGradStatsRelu;
    __shared__ V xs[kTileElems];
    __shared__ V gs[kGrad ? kTileElems : 1];
    __shared__ V acc0[kTileChannels], acc1[kTwo ? kTileChannels : 1];
    __shared__ V base[kTwo ? kTileChannels : 1];  // shift (statistics) or mean (gradients)
    __shared__ V sc[R == Reduce::kGradStatsRelu ? kTileChannels : 1], sh[R == Reduce::kGradStatsRelu ? kTileChannels : 1];

    const int c0 = blockIdx.x * t.CT;
    const int ct = t.C - c0 < t.CT ? t.C - c0 : t.CT;
    const int p = blockIdx.y;
    const long long s0 = (long long)(p % t.s_chunks) * t.SL;
    const long long sl = t.S - s0 < t.SL ? t.S - s0 : t.SL;
    const int n0 = (p / t.s_chunks) * t.n_per;
    const int n1 = t.N - n0 < t.n_per ? t.N : n0 + t.n_per;
    const long long span = (long long)ct * sl;  // one contiguous range per image

    for (int k = threadIdx.x; k < ct; k += blockDim.x) {
        acc0[k] = V(0);
        if constexpr (kTwo) acc1[k] = V(0);
        if constexpr (kGrad) base[k] = coef[c0 + k];
        if constexpr (R == Reduce::kGradStatsRelu) {
            sc[k] = coef[t.C + c0 + k];
            sh[k] = coef[2 * t.C + c0 + k];
        }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int n = n0; n < n1; ++n) {
        const long long start = ((long long)n * t.C + c0) * t.S + s0;
        __syncthreads();  // the previous tile is consumed
        stage_to_shared(xs, x, start, span);
        if constexpr (kGrad) stage_to_shared(gs, g, start, span);
        __syncthreads();
        if constexpr (R == Reduce::kShiftedSq) {
            if (n == n0) {
                for (int k = threadIdx.x; k < ct; k += blockDim.x) base[k] = xs[k * sl];
                __syncthreads();
            }
        }
        // the quantities of one staged value
        auto quantities = [&](int k, long long j, V& q0, V& q1) {
            if constexpr (R == Reduce::kSum) {
                q0 += xs[j];
            } else if constexpr (R == Reduce::kShiftedSq) {
                V d = xs[j] - base[k];
                q0 += d;
                q1 += d * d;
            } else {
                V gv = gs[j];
                if constexpr (R == Reduce::kGradStatsRelu)
                    if (!(xs[j] * sc[k] + sh[k] > V(0))) gv = V(0);
                q0 += gv;
                q1 += gv * (xs[j] - base[k]);
            }
        };
        if (sl >= kWarp) {  // a warp per channel
            for (int k = warp; k < ct; k += warps) {
                V q0 = V(0), q1 = V(0);
                for (long long s = lane; s < sl; s += kWarp) quantities(k, k * sl + s, q0, q1);
                q0 = warp_sum(q0);
                if constexpr (kTwo) q1 = warp_sum(q1);
                if (lane == 0) {
                    acc0[k] += q0;
                    if constexpr (kTwo) acc1[k] += q1;
                }
            }
        } else {  // a thread per channel
            for (int k = threadIdx.x; k < ct; k += blockDim.x) {
                V q0 = V(0), q1 = V(0);
                for (long long s = 0; s < sl; ++s) quantities(k, k * sl + s, q0, q1);
                acc0[k] += q0;
                if constexpr (kTwo) acc1[k] += q1;
            }
        }
    }
    __syncthreads();
    const long long out = (long long)p * t.C + c0;
    for (int k = threadIdx.x; k < ct; k += blockDim.x) {
        if constexpr (R == Reduce::kShiftedSq) {
            const V count = V(chunk_count(t, p));
            const V d = acc0[k] / count;
            partial0[out + k] = base[k] + d;              // chunk mean
            V m2 = acc1[k] - acc0[k] * d;                 // chunk M2
            partial1[out + k] = m2 > V(0) ? m2 : V(0);
        } else if constexpr (R == Reduce::kSum) {
            partial0[out + k] = acc0[k] * scale;
        } else {
            partial0[out + k] = acc0[k];
            partial1[out + k] = acc1[k];
        }
    }
}

// out[c] = the sum of a kSum reduction's partials (P, C), in a fixed order (the
// reduction's finalize where P > 1).
// (P: the partials' type, T the output's: float32 partials of a 16-bit output.)
template <class P, class T = P>
__global__ void sum_partials_kernel(const P* __restrict__ partial, int parts, int C, T* __restrict__ out) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    P acc = P(0);
    for (int p = 0; p < parts; ++p) acc += partial[(long long)p * C + c];
    out[c] = from_compute<T>(acc);
}

// What a map computes from x (and g) and the K coefficients a, b, ... of a channel:
enum class Map {
    kFill,        // y = alpha * a             (global average pooling backward; K = 1)
    kAdd,         // y = x + a                 (bias-add; K = 1)
    kAffine,      // y = x * a + b             (batch-norm forward; K = 2)
    kAffineRelu,  // y = max(x * a + b, 0)
    kGradAffine,  // y = a * g + b * x + d     (batch-norm backward dx; K = 3)
    kGradAffineRelu,  // the same with g = 0 where x * e + f <= 0 (K = 5: a b d e f)
};

template <Map M> __host__ __device__ constexpr int map_coefficients() {
    return (M == Map::kAdd || M == Map::kFill) ? 1
                                               : (M == Map::kGradAffine ? 3 : (M == Map::kGradAffineRelu ? 5 : 2));
}

template <class T, Map M>
__device__ __forceinline__ T map_value(T x, T g, const T* k) {
    if constexpr (M == Map::kAdd) {
        return x + k[0];
    } else if constexpr (M == Map::kFill) {
        return k[0];
    } else if constexpr (M == Map::kAffine) {
        return x * k[0] + k[1];
    } else if constexpr (M == Map::kAffineRelu) {
        T v = x * k[0] + k[1];
        return v < T(0) ? T(0) : v;  // NaN passes, as relu_kernel
    } else if constexpr (M == Map::kGradAffine) {
        return k[0] * g + k[1] * x + k[2];
    } else {
        const T pick[2] = {T(0), g};  // g is loaded by every lane (see relu_backward_kernel)
        return k[0] * pick[x * k[3] + k[4] > T(0)] + k[1] * x + k[2];
    }
}

// coef: K vectors of C values back to back; x is not read by kFill, g only by the
// kGrad* maps; kFill scales its coefficient by alpha when staging it.
template <class T, Map M>
__global__ void __launch_bounds__(kMapThreads)
    channel_map_kernel(const T* __restrict__ x, const T* __restrict__ g, const compute_t<T>* __restrict__ coef,
                       compute_t<T> alpha, T* __restrict__ y, long long total, int C, long long S) {
    using V = compute_t<T>;
    constexpr int K = map_coefficients<M>();
    __shared__ V staged[K * kMapRows];
    const long long chunks = (total + kMapChunk - 1) / kMapChunk;
    const bool stage = S * kMapRows >= kMapChunk + 2 * S;  // the chunk spans <= kMapRows channels
    for (long long chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
        const long long i0 = chunk * kMapChunk;
        const long long i1 = total - i0 < kMapChunk ? total : i0 + kMapChunk;
        const long long r0 = i0 / S;
        if (stage) {
            const int rows = (int)((i1 - 1) / S - r0 + 1);
            __syncthreads();  // the previous chunk's coefficients are consumed
            for (int j = threadIdx.x; j < rows; j += blockDim.x) {
                const int c = (int)((r0 + j) % C);
                for (int k = 0; k < K; ++k)
                    staged[k * kMapRows + j] = M == Map::kFill ? alpha * coef[c] : coef[(long long)k * C + c];
            }
            __syncthreads();
        }
        for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
            const long long r = i / S;
            V kv[K];
            if (stage) {
                for (int k = 0; k < K; ++k) kv[k] = staged[k * kMapRows + (int)(r - r0)];
            } else {
                const int c = (int)(r % C);
                for (int k = 0; k < K; ++k) kv[k] = coef[(long long)k * C + c];
                if constexpr (M == Map::kFill) kv[0] *= alpha;
            }
            V xv = V(0), gv = V(0);
            if constexpr (M != Map::kFill) xv = to_compute(x[i]);
            if constexpr (M == Map::kGradAffine || M == Map::kGradAffineRelu) gv = to_compute(g[i]);
            y[i] = from_compute<T>(map_value<V, M>(xv, gv, kv));
        }
    }
}

template <class T, Map M>
void launch_channel_map(const T* x, const T* g, const compute_t<T>* coef, T* y, int N, int C, long long S,
                        uptr stream, compute_t<T> alpha = 1) {
    const long long total = (long long)N * C * S;
    if (total == 0) return;
    MINIDL_LAUNCH((channel_map_kernel<T, M>), grid_1d(ceil_div(total, kMapChunk), 1), dim3(kMapThreads), 0, stream,
                  x, g, coef, alpha, y, total, C, S);
}

template <class T, Reduce R>
void launch_channel_reduce(const T* x, const T* g, const compute_t<T>* coef, const ChannelTiles& t,
                           compute_t<T>* partial0, compute_t<T>* partial1, uptr stream, compute_t<T> scale = 1) {
    if (t.chunks > 65535)
        throw std::runtime_error("per-channel reduction: planes of " + std::to_string(t.S) +
                                 " values need more than 65535 reduction chunks");
    MINIDL_LAUNCH((channel_reduce_kernel<T, R>), dim3(ceil_div(t.C, t.CT), t.chunks), dim3(kReduceThreads), 0, stream,
                  x, g, coef, t, scale, partial0, partial1);
}

// out (C,) = scale * the per-channel sums over (N, C, S) of x; `work` holds P * C values
// of compute_t<T>, P = t.chunks (unused where P = 1 and T is its own compute type: the
// one partial row is out itself).
template <class T>
void launch_channel_sum(const T* x, const ChannelTiles& t, compute_t<T>* work, T* out, uptr stream,
                        compute_t<T> scale = 1) {
    using V = compute_t<T>;
    if constexpr (std::is_same_v<T, V>) {
        if (t.chunks == 1) {
            launch_channel_reduce<T, Reduce::kSum>(x, nullptr, nullptr, t, out, nullptr, stream, scale);
            return;
        }
    }
    launch_channel_reduce<T, Reduce::kSum>(x, nullptr, nullptr, t, work, nullptr, stream, scale);
    MINIDL_LAUNCH((sum_partials_kernel<V, T>), dim3(ceil_div(t.C, 128)), dim3(128), 0, stream, work, t.chunks, t.C,
                  out);
}

}  // namespace minidl
