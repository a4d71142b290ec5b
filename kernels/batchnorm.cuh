// Batch normalization over NCHW, statistics per channel.
//
// Layout: x, y, gy, dx are contiguous (N, C, S) with S = H*W (S = 1 for (N, C));
// gamma, beta, mean, var, dgamma, dbeta are (C,).  M = N*S elements per channel.
// Indexing: train forward and backward use one block per channel (blockDim.x a
// multiple of 32, 64..512 by M); the block walks its channel's M elements with a
// flat index j -> (n = j / S, s = j % S) and reduces with warp shuffles plus one
// __shared__ exchange (block_sum).  The eval forward is a grid-stride elementwise
// kernel; the running-stat update is one thread per channel.
// Conventions: outputs are overwritten, never accumulated.
//   train forward: two passes (mean, then biased var = mean((x - mean)^2)), then
//                  y = (x - mean) * rsqrt(var + eps) * gamma + beta;
//                  writes mean and the BIASED var (what normalization used).
//   running update: running_mean = (1 - momentum) * running_mean + momentum * mean
//                   running_var  = (1 - momentum) * running_var
//                                  + momentum * var * M / (M - 1)   (unbiased)
//   backward (of the train forward): dbeta = sum gy, dgamma = sum gy * xhat,
//                  dx = gamma * invstd / M * (M * gy - dbeta - xhat * dgamma).
#pragma once
#include "common.cuh"

namespace minidl {

template <class T>
__device__ __forceinline__ T rsqrt_(T v) { return T(1) / sqrt(v); }
template <>
__device__ __forceinline__ float rsqrt_<float>(float v) { return rsqrtf(v); }

template <class T>
__global__ void batch_norm_train_forward_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                                const T* __restrict__ beta, T* __restrict__ y, T* __restrict__ mean_out,
                                                T* __restrict__ var_out, int N, int C, long long S, T eps) {
    __shared__ T scratch[32];
    const int c = blockIdx.x;
    const long long M = (long long)N * S;
    T acc = T(0);
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
        long long n = j / S, s = j - n * S;
        acc += x[(n * C + c) * S + s];
    }
    const T mean = block_sum(acc, scratch) / T(M);
    acc = T(0);
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
        long long n = j / S, s = j - n * S;
        T d = x[(n * C + c) * S + s] - mean;
        acc += d * d;
    }
    const T var = block_sum(acc, scratch) / T(M);
    const T invstd = rsqrt_(var + eps);
    const T g = gamma[c] * invstd, b = beta[c] - mean * g;
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
        long long n = j / S, s = j - n * S;
        long long i = (n * C + c) * S + s;
        y[i] = x[i] * g + b;
    }
    if (threadIdx.x == 0) {
        mean_out[c] = mean;
        var_out[c] = var;
    }
}

template <class T>
__global__ void batch_norm_eval_forward_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
                                               const T* __restrict__ beta, const T* __restrict__ mean,
                                               const T* __restrict__ var, T* __restrict__ y, long long total, int C,
                                               long long S, T eps) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / S) % C);
        T g = gamma[c] * rsqrt_(var[c] + eps);
        y[i] = (x[i] - mean[c]) * g + beta[c];
    }
}

template <class T>
__global__ void batch_norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                           const T* __restrict__ gamma, const T* __restrict__ mean_in,
                                           const T* __restrict__ var_in, T* __restrict__ dx, T* __restrict__ dgamma,
                                           T* __restrict__ dbeta, int N, int C, long long S, T eps) {
    __shared__ T scratch[32];
    const int c = blockIdx.x;
    const long long M = (long long)N * S;
    const T mean = mean_in[c], invstd = rsqrt_(var_in[c] + eps);
    T sg = T(0), sgx = T(0);
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
        long long n = j / S, s = j - n * S;
        long long i = (n * C + c) * S + s;
        T g = gy[i];
        sg += g;
        sgx += g * (x[i] - mean);
    }
    const T db = block_sum(sg, scratch);
    const T dg = block_sum(sgx, scratch) * invstd;
    const T k = gamma[c] * invstd / T(M);
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
        long long n = j / S, s = j - n * S;
        long long i = (n * C + c) * S + s;
        T xhat = (x[i] - mean) * invstd;
        dx[i] = k * (T(M) * gy[i] - db - xhat * dg);
    }
    if (threadIdx.x == 0) {
        dgamma[c] = dg;
        dbeta[c] = db;
    }
}

template <class T>
__global__ void batch_norm_update_running_kernel(T* __restrict__ running_mean, T* __restrict__ running_var,
                                                 const T* __restrict__ mean, const T* __restrict__ var, int C,
                                                 T momentum, T unbias) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < C) {
        running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mean[c];
        running_var[c] = (T(1) - momentum) * running_var[c] + momentum * var[c] * unbias;
    }
}

}  // namespace minidl
