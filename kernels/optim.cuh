// Fused optimizer updates over many tensors per launch (multi-tensor apply, as in Apex
// and PyTorch's fused optimizers): SGD (momentum, dampening, Nesterov, weight decay),
// Adam / AdamW (AMSGrad) and TensorFlow-style RMSprop; the semantics are those of the
// optimizers' docstrings in minidl/optim (PyTorch's for SGD and Adam).
//
// Layout: every tensor is a contiguous vector.  A launch takes a TensorList<A> kernel
// argument: A arrays per tensor (param, grad, then the optimizer's state vectors), of
// up to kListTensors tensors, and a work list of up to kListBlocks blocks, block b
// updating chunk block_chunk[b] (kChunk elements) of tensor block_tensor[b].  The host
// packer (optim.cu) splits longer lists into several launches: a ResNet-50 step (161
// tensors, 25.6M values) is a few launches, not one per parameter, and no pointer table
// is uploaded (the list travels in the kernel's parameter space, under 4 KB).
// Indexing: within its chunk a block loops with stride blockDim.x.
// Conventions: params and state are updated IN PLACE, grads are read only; a state
// array a tensor does not use (no momentum, no AMSGrad, not centered) is nullptr.
// `skip` (a float on the device, or nullptr): where it is nonzero every block returns
// before touching anything, so an overflowed mixed-precision step (GradScaler's flag)
// leaves params and state bit-identical without a host read or copies.
// Types: params, grads and state are T; 16-bit T computes in float (compute_t<T>).
//   SGD:     d = grad + wd * p;  buf = d (first step) | momentum * buf + (1 - dampening) * d;
//            d = nesterov ? d + momentum * buf : buf;  p -= lr * d
//   Adam:    g = grad (+ wd * p unless decoupled);  p *= 1 - lr * wd (decoupled, AdamW);
//            m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2;
//            vmax = max(vmax, v) (AMSGrad: v = vmax);
//            p -= step_size * m / (sqrt(v) * inv_sqrt_bias2 + eps)
//   RMSprop: g = grad + wd * p;  ms = alpha * ms + (1 - alpha) * g^2;
//            mg = alpha * mg + (1 - alpha) * g, den = ms - mg^2 (centered) else den = ms;
//            step = lr * g / (sqrt(den + eps) | sqrt(den) + eps);
//            buf = momentum * buf + step, step = buf (momentum);  p -= step
#pragma once
#include "common.cuh"

namespace minidl {

constexpr int kListTensors = 40;
constexpr int kListBlocks = 320;
constexpr int kChunk = 16384;
constexpr int kOptimThreads = 512;

template <int A>
struct TensorList {
    void* ptr[A][kListTensors];
    long long size[kListTensors];
    unsigned char block_tensor[kListBlocks];
    int block_chunk[kListBlocks];
#if MINIDL_EMU
    // the arrays of the list, for the emu profiler's sector alignment (emu/cuda_emu.h)
    std::vector<const void*> pointers() const {
        std::vector<const void*> out;
        for (int a = 0; a < A; ++a)
            for (int k = 0; k < kListTensors; ++k)
                if (ptr[a][k] != nullptr) out.push_back(ptr[a][k]);
        return out;
    }
#endif
};

// The element range [begin, end) of this block's chunk and its tensor's slot.
template <int A>
__device__ __forceinline__ int chunk_of(const TensorList<A>& tl, long long& begin, long long& end) {
    const int k = tl.block_tensor[blockIdx.x];
    begin = (long long)tl.block_chunk[blockIdx.x] * kChunk;
    end = tl.size[k] - begin < kChunk ? tl.size[k] : begin + kChunk;
    return k;
}

template <class T>
__global__ void __launch_bounds__(kOptimThreads)
    sgd_update_kernel(TensorList<3> tl, compute_t<T> lr, compute_t<T> momentum, compute_t<T> dampening,
                      compute_t<T> weight_decay, int nesterov, int first_step, const float* skip) {
    using V = compute_t<T>;
    if (skip != nullptr && *skip != 0.0f) return;
    long long begin, end;
    const int k = chunk_of(tl, begin, end);
    T* __restrict__ param = static_cast<T*>(tl.ptr[0][k]);
    const T* __restrict__ grad = static_cast<const T*>(tl.ptr[1][k]);
    T* __restrict__ buf = static_cast<T*>(tl.ptr[2][k]);
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
        V p = to_compute(param[i]);
        V d = to_compute(grad[i]) + weight_decay * p;
        if (momentum != V(0)) {
            V b = first_step ? d : momentum * to_compute(buf[i]) + (V(1) - dampening) * d;
            buf[i] = from_compute<T>(b);
            d = nesterov ? d + momentum * b : b;
        }
        param[i] = from_compute<T>(p - lr * d);
    }
}

template <class T>
__global__ void __launch_bounds__(kOptimThreads)
    adam_update_kernel(TensorList<5> tl, compute_t<T> lr, compute_t<T> beta1, compute_t<T> beta2, compute_t<T> eps,
                       compute_t<T> weight_decay, int decoupled, compute_t<T> step_size, compute_t<T> inv_sqrt_bias2,
                       const float* skip) {
    using V = compute_t<T>;
    if (skip != nullptr && *skip != 0.0f) return;
    long long begin, end;
    const int k = chunk_of(tl, begin, end);
    T* __restrict__ param = static_cast<T*>(tl.ptr[0][k]);
    const T* __restrict__ grad = static_cast<const T*>(tl.ptr[1][k]);
    T* __restrict__ exp_avg = static_cast<T*>(tl.ptr[2][k]);
    T* __restrict__ exp_avg_sq = static_cast<T*>(tl.ptr[3][k]);
    T* __restrict__ max_exp_avg_sq = static_cast<T*>(tl.ptr[4][k]);
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
        V p = to_compute(param[i]), g = to_compute(grad[i]);
        if (decoupled)
            p *= V(1) - lr * weight_decay;
        else
            g += weight_decay * p;
        const V m = beta1 * to_compute(exp_avg[i]) + (V(1) - beta1) * g;
        V v = beta2 * to_compute(exp_avg_sq[i]) + (V(1) - beta2) * g * g;
        exp_avg[i] = from_compute<T>(m);
        exp_avg_sq[i] = from_compute<T>(v);
        if (max_exp_avg_sq != nullptr) {
            const V vmax = to_compute(max_exp_avg_sq[i]);
            v = vmax > v ? vmax : v;
            max_exp_avg_sq[i] = from_compute<T>(v);
        }
        param[i] = from_compute<T>(p - step_size * m / (sqrt_(v) * inv_sqrt_bias2 + eps));
    }
}

template <class T>
__global__ void __launch_bounds__(kOptimThreads)
    rmsprop_update_kernel(TensorList<5> tl, compute_t<T> lr, compute_t<T> alpha, compute_t<T> eps,
                          compute_t<T> momentum, compute_t<T> weight_decay, int eps_inside_sqrt, const float* skip) {
    using V = compute_t<T>;
    if (skip != nullptr && *skip != 0.0f) return;
    long long begin, end;
    const int k = chunk_of(tl, begin, end);
    T* __restrict__ param = static_cast<T*>(tl.ptr[0][k]);
    const T* __restrict__ grad = static_cast<const T*>(tl.ptr[1][k]);
    T* __restrict__ square_avg = static_cast<T*>(tl.ptr[2][k]);
    T* __restrict__ grad_avg = static_cast<T*>(tl.ptr[3][k]);
    T* __restrict__ buf = static_cast<T*>(tl.ptr[4][k]);
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const V p = to_compute(param[i]), g = to_compute(grad[i]) + weight_decay * p;
        const V ms = alpha * to_compute(square_avg[i]) + (V(1) - alpha) * g * g;
        square_avg[i] = from_compute<T>(ms);
        V den = ms;
        if (grad_avg != nullptr) {
            const V mg = alpha * to_compute(grad_avg[i]) + (V(1) - alpha) * g;
            grad_avg[i] = from_compute<T>(mg);
            den = ms - mg * mg;
        }
        den = eps_inside_sqrt ? sqrt_(den + eps) : sqrt_(den) + eps;
        V step = lr * g / den;
        if (buf != nullptr) {
            step += momentum * to_compute(buf[i]);
            buf[i] = from_compute<T>(step);
        }
        param[i] = from_compute<T>(p - step);
    }
}

// GradScaler.unscale_ (AMP): every gradient times inv_scale IN PLACE, and found_inf set
// to 1 where any result is inf or NaN (several blocks may write 1 at once: the same
// value, so no atomics; it is never cleared here).  One launch per list, as the updates.
template <class T>
__global__ void __launch_bounds__(kOptimThreads)
    amp_unscale_kernel(TensorList<1> tl, const float* __restrict__ inv_scale, float* __restrict__ found_inf) {
    using V = compute_t<T>;
    long long begin, end;
    const int k = chunk_of(tl, begin, end);
    T* __restrict__ grad = static_cast<T*>(tl.ptr[0][k]);
    const V inv = V(*inv_scale);
    bool bad = false;
    for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const V g = to_compute(grad[i]) * inv;
        bad |= !isfinite(g);
        grad[i] = from_compute<T>(g);
    }
    if (bad) *found_inf = 1.0f;
}

}  // namespace minidl
