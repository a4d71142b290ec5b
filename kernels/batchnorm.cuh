// Batch normalization over NCHW, statistics per channel, optionally fused with a ReLU.
//
// Layout: x, y, gy, dx are contiguous (N, C, S) with S = H*W (S = 1 for (N, C));
// gamma, beta, mean, var, running stats, dgamma, dbeta are (C,).  M = N*S values per
// channel.  Work vectors (allocated by the caller, sizes in batchnorm.h): partials
// (2, P, C) and per-channel coefficients (K, C).
// Indexing: every pass over the data is a kernel of channel.cuh (2-D reduction grid:
// channel tile x chunk of the batch, coalesced through shared-memory tiles; or the
// per-channel map over contiguous element chunks); the finalize kernels here run one
// thread per channel over the P partials in a fixed order (deterministic, float64
// accumulation), so every pass reads its input exactly once.
// Conventions: outputs are overwritten, never accumulated; running stats are updated
// IN PLACE by the train forward's finalize when given.
//   train forward: chunk (mean, M2) partials merged with Chan's formula -> mean and the
//                  BIASED var (what normalization used);
//                  y = x * scale + shift, scale = gamma * rsqrt(var + eps),
//                  shift = beta - mean * scale; with relu, y = max(y, 0).
//   running update: running_mean = (1 - momentum) * running_mean + momentum * mean
//                   running_var  = (1 - momentum) * running_var
//                                  + momentum * var * M / (M - 1)   (unbiased)
//   backward (of the train forward): g' = gy (with relu: gy where x*scale+shift > 0,
//                  else 0); dbeta = sum g', dgamma = sum g' * xhat,
//                  dx = gamma * invstd / M * (M * g' - dbeta - xhat * dgamma), computed
//                  as a * g' + b * x + d with per-channel a, b, d.
#pragma once
#include "channel.cuh"

namespace minidl {

template <class T>
__device__ __forceinline__ double invstd_of(T var, double eps) { return 1.0 / sqrt(double(var) + eps); }

// partials: mean (P, C) then M2 (P, C) from channel_reduce_kernel<kShiftedSq>.
// coef (2, C) receives scale, shift for the normalizing map.
template <class T>
__global__ void batch_norm_finalize_stats_kernel(const T* __restrict__ partial_mean, const T* __restrict__ partial_m2,
                                                 const T* __restrict__ gamma, const T* __restrict__ beta,
                                                 ChannelTiles t, double eps, T* __restrict__ mean_out,
                                                 T* __restrict__ var_out, T* __restrict__ coef,
                                                 T* __restrict__ running_mean, T* __restrict__ running_var,
                                                 double momentum) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= t.C) return;
    double count = 0.0, mean = 0.0, m2 = 0.0;
    for (int p = 0; p < t.chunks; ++p) {  // Chan et al.: merge (count, mean, M2) pairs
        const double nb = double(chunk_count(t, p)), mb = double(partial_mean[(long long)p * t.C + c]);
        const double total = count + nb, delta = mb - mean;
        mean += delta * nb / total;
        m2 += double(partial_m2[(long long)p * t.C + c]) + delta * delta * count * nb / total;
        count = total;
    }
    const double var = m2 / count;
    const double scale = double(gamma[c]) * (1.0 / sqrt(var + eps));
    mean_out[c] = T(mean);
    var_out[c] = T(var);
    coef[c] = T(scale);
    coef[t.C + c] = T(double(beta[c]) - mean * scale);
    if (running_mean != nullptr) {
        const double unbias = count > 1.0 ? count / (count - 1.0) : 1.0;
        running_mean[c] = T((1.0 - momentum) * double(running_mean[c]) + momentum * mean);
        running_var[c] = T((1.0 - momentum) * double(running_var[c]) + momentum * var * unbias);
    }
}

// scale, shift (C,) from given statistics: the eval forward's map, and the ReLU mask
// of the fused backward (which also wants a copy of the mean beside them: mean_copy,
// or nullptr).
template <class T>
__global__ void batch_norm_affine_coefficients_kernel(const T* __restrict__ gamma, const T* __restrict__ beta,
                                                      const T* __restrict__ mean, const T* __restrict__ var, int C,
                                                      double eps, T* __restrict__ scale, T* __restrict__ shift,
                                                      T* __restrict__ mean_copy) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const T m = mean[c];
    if (mean_copy != nullptr) mean_copy[c] = m;
    const double s = double(gamma[c]) * invstd_of(var[c], eps);
    scale[c] = T(s);
    shift[c] = T(double(beta[c]) - double(m) * s);
}

// partials: sum g' (P, C) then sum g' * (x - mean) (P, C).  coef (3, C) receives the
// dx map's a, b, d (coef rows 3 and 4, the ReLU mask's scale and shift, are the
// caller's).
template <class T>
__global__ void batch_norm_finalize_backward_kernel(const T* __restrict__ partial_g, const T* __restrict__ partial_gx,
                                                    const T* __restrict__ gamma, const T* __restrict__ mean,
                                                    const T* __restrict__ var, ChannelTiles t, double eps,
                                                    T* __restrict__ dgamma, T* __restrict__ dbeta,
                                                    T* __restrict__ coef) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= t.C) return;
    double sum_g = 0.0, sum_gx = 0.0;
    for (int p = 0; p < t.chunks; ++p) {
        sum_g += double(partial_g[(long long)p * t.C + c]);
        sum_gx += double(partial_gx[(long long)p * t.C + c]);
    }
    const double invstd = invstd_of(var[c], eps), count = double(t.N) * double(t.S);
    const double k = double(gamma[c]) * invstd;
    const double b = -k * sum_gx * invstd * invstd / count;
    dbeta[c] = T(sum_g);
    dgamma[c] = T(sum_gx * invstd);
    coef[c] = T(k);
    coef[t.C + c] = T(b);
    coef[2 * t.C + c] = T(-b * double(mean[c]) - k * sum_g / count);
}

// The running-statistics update alone (for running stats the train forward did not
// take, e.g. of another dtype); one thread per channel.
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
