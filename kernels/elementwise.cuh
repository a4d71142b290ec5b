// Elementwise kernels: activations (relu, relu6, sigmoid, silu), the fused residual
// add+ReLU, bias-add and its backward reduction, dropout mask-apply.
//
// Layout: activations, add+ReLU and dropout treat their arrays as flat, contiguous
// vectors of n elements (any shape).  Bias-add works on NCHW viewed as (N, C, S) with
// S = H*W (S = 1 for a (N, C) Linear output) and a bias of C elements.
// Indexing: every op with one output is elementwise_map_kernel (128-bit vectors,
// several per thread, 32-bit indices with a 64-bit fallback; see below) over a capped
// 1-D grid of 256-thread blocks; dropout's mask-apply (two outputs) a 64-bit
// grid-stride loop.  Bias-add and its backward are the per-channel map and reduction
// of channel.cuh (coalesced for any plane size).
// Conventions: every kernel writes (overwrites) its outputs, never accumulates.
// Backward of relu/relu6/silu takes the forward input x; of sigmoid the forward
// output y.  Dropout: keep = (u >= p) for a uniform u in [0, 1) drawn by the caller;
// the forward writes y = x * keep / (1 - p) and mask = keep / (1 - p), the backward
// gx = gy * mask.
#pragma once
#include "channel.cuh"

namespace minidl {

// ------------------------------------------------------------------ the map kernel
// out[i] = op(a[i]) (unary) or op(a[i], b[i]) (binary) for every elementwise op that
// writes one output.  Each thread moves V-element vectors (V = 16 bytes / sizeof(T):
// one 128-bit load or store per array, where the launcher found every pointer 16-byte
// aligned, else V = 1), kMapUnroll of them per loop trip with the loads issued
// before the math, and a grid-stride loop over the rest.  Index is int where n fits,
// long long past 2^31 (32-bit index math is cheaper on the GPU).  The n % V tail
// elements take a scalar loop.  16-bit T (half_t, bf16_t) is loaded and stored as
// such and computed in float (Op is instantiated on compute_t<T>).
constexpr int kMapUnroll = 4;

template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
    T v[V];
};

// One vector load / store.  nvcc makes a 128-bit access of an aligned Pack by itself;
// g++ (emu) may split a struct copy into 8-byte moves, so there a 16-byte GCC vector
// type carries it: the profile then sees the one 16-byte access the GPU makes.
template <class T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const Pack<T, V>* p) {
#if MINIDL_EMU
    if constexpr (sizeof(Pack<T, V>) == 16) {
        typedef char Bytes16 __attribute__((vector_size(16)));
        const Bytes16 raw = *reinterpret_cast<const Bytes16*>(p);
        Pack<T, V> r;
        __builtin_memcpy(&r, &raw, 16);
        return r;
    }
#endif
    return *p;
}

template <class T, int V>
__device__ __forceinline__ void store_pack(Pack<T, V>* p, const Pack<T, V>& r) {
#if MINIDL_EMU
    if constexpr (sizeof(Pack<T, V>) == 16) {
        typedef char Bytes16 __attribute__((vector_size(16)));
        Bytes16 raw;
        __builtin_memcpy(&raw, &r, 16);
        *reinterpret_cast<Bytes16*>(p) = raw;
        return;
    }
#endif
    *p = r;
}

template <class T, int V, class Index, class Op, bool Binary>
__global__ void __launch_bounds__(kThreads)
    elementwise_map_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, Index n, Op op) {
    using P = Pack<T, V>;
    const P* __restrict__ pa = reinterpret_cast<const P*>(a);
    const P* __restrict__ pb = reinterpret_cast<const P*>(b);
    P* __restrict__ po = reinterpret_cast<P*>(out);
    const Index vecs = n / V;
    const Index step = (Index)gridDim.x * blockDim.x * kMapUnroll;
    for (Index base = (Index)blockIdx.x * blockDim.x * kMapUnroll + threadIdx.x; base < vecs; base += step) {
        P ra[kMapUnroll], rb[kMapUnroll];
#pragma unroll
        for (int u = 0; u < kMapUnroll; ++u) {
            const Index i = base + (Index)u * blockDim.x;
            if (i < vecs) {
                ra[u] = load_pack(pa + i);
                if constexpr (Binary) rb[u] = load_pack(pb + i);
            }
        }
#pragma unroll
        for (int u = 0; u < kMapUnroll; ++u) {
            const Index i = base + (Index)u * blockDim.x;
            if (i < vecs) {
                P r;
#pragma unroll
                for (int k = 0; k < V; ++k) {
                    if constexpr (Binary)
                        r.v[k] = from_compute<T>(op(to_compute(ra[u].v[k]), to_compute(rb[u].v[k])));
                    else
                        r.v[k] = from_compute<T>(op(to_compute(ra[u].v[k])));
                }
                store_pack(po + i, r);
            }
        }
    }
    for (Index i = vecs * V + (Index)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (Index)gridDim.x * blockDim.x) {
        if constexpr (Binary)
            out[i] = from_compute<T>(op(to_compute(a[i]), to_compute(b[i])));
        else
            out[i] = from_compute<T>(op(to_compute(a[i])));
    }
}

// ------------------------------------------------------------------ the ops
template <class T> struct Relu {
    __device__ T operator()(T v) const { return v < T(0) ? T(0) : v; }  // NaN passes, as in PyTorch
};
// gx from the forward input x and gy: both are loaded by every lane (a load masked by
// x > 0 touches the same sectors for fewer bytes).
template <class T> struct ReluBackward {
    __device__ T operator()(T x, T gy) const { return x > T(0) ? gy : T(0); }
};
template <class T> struct Relu6 {
    __device__ T operator()(T v) const { return v < T(0) ? T(0) : (v > T(6) ? T(6) : v); }
};
template <class T> struct Relu6Backward {
    __device__ T operator()(T x, T gy) const { return (x > T(0) && x < T(6)) ? gy : T(0); }
};

template <class T>
__device__ __forceinline__ T sigmoid_(T v) { return T(1) / (T(1) + exp_(-v)); }

template <class T> struct Sigmoid {
    __device__ T operator()(T v) const { return sigmoid_(v); }
};
// from the forward OUTPUT y
template <class T> struct SigmoidBackward {
    __device__ T operator()(T y, T gy) const { return gy * y * (T(1) - y); }
};
template <class T> struct Silu {
    __device__ T operator()(T v) const { return v * sigmoid_(v); }
};
template <class T> struct SiluBackward {
    __device__ T operator()(T x, T gy) const {
        const T s = sigmoid_(x);
        return gy * s * (T(1) + x * (T(1) - s));
    }
};
// max(a + b, 0): a residual sum and its ReLU in one pass (the backward is relu_backward
// on the output, which is > 0 exactly where a + b > 0)
template <class T> struct AddRelu {
    __device__ T operator()(T a, T b) const { return Relu<T>()(a + b); }
};
template <class T> struct Mul {
    __device__ T operator()(T a, T b) const { return a * b; }
};

template <class T>
__global__ void dropout_apply_kernel(const T* __restrict__ x, const T* __restrict__ u, T* __restrict__ y,
                                     T* __restrict__ mask, long long n, T p, T scale) {
    MINIDL_GRID_STRIDE(i, n) {
        T m = u[i] >= p ? scale : T(0);
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

}  // namespace minidl
