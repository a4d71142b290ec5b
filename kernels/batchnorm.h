// Host launchers of the batch-norm family: kernels in batchnorm.cuh (and the shared
// per-channel passes of channel.cuh), launchers in batchnorm.cu, bound in bindings.cpp
// as <launcher>_f32 / _f64 and called by minidl/backend/kernel/batchnorm.py.  x is
// viewed as (N, C, S); the per-channel vectors hold C elements.
//
// Types: x, y, gy, dx are T; the per-channel vectors and `work` are compute_t<T>
// (half.cuh): float32 beside float16/bfloat16 data (the 16-bit launchers _f16/_bf16,
// statistics in float as PyTorch's mixed batch norm), T itself otherwise.
//
// `work` is a caller-allocated vector; with
// P = channel_partials(N, C, S) (elementwise.h) it holds at least
//   train forward 2*P*C + 2*C,  eval forward 2*C,  backward 2*P*C + 5*C  elements.
// running_mean / running_var (train forward) may be 0: no running update; otherwise
// they are updated IN PLACE.  relu != 0 fuses a ReLU after the normalization (the
// backward then takes the forward's beta to rebuild the ReLU mask from x).
#pragma once

#include "launcher.h"

namespace minidl {

template <class T>
void batch_norm_train_forward(uptr x, uptr gamma, uptr beta, uptr y, uptr mean, uptr var, uptr running_mean,
                              uptr running_var, uptr work, int N, int C, long long S, double eps, double momentum,
                              int relu, uptr stream);
template <class T>
void batch_norm_eval_forward(uptr x, uptr gamma, uptr beta, uptr mean, uptr var, uptr y, uptr work, int N, int C,
                             long long S, double eps, int relu, uptr stream);
template <class T>
void batch_norm_backward(uptr x, uptr gy, uptr gamma, uptr beta, uptr mean, uptr var, uptr dx, uptr dgamma,
                         uptr dbeta, uptr work, int N, int C, long long S, double eps, int relu, uptr stream);
// 16-bit launchers (MINIDL_DECLARE_HALF, launcher.h)
MINIDL_DECLARE_HALF(batch_norm_train_forward, uptr x, uptr gamma, uptr beta, uptr y, uptr mean, uptr var,
                    uptr running_mean, uptr running_var, uptr work, int N, int C, long long S, double eps,
                    double momentum, int relu, uptr stream);
MINIDL_DECLARE_HALF(batch_norm_eval_forward, uptr x, uptr gamma, uptr beta, uptr mean, uptr var, uptr y, uptr work,
                    int N, int C, long long S, double eps, int relu, uptr stream);
MINIDL_DECLARE_HALF(batch_norm_backward, uptr x, uptr gy, uptr gamma, uptr beta, uptr mean, uptr var, uptr dx,
                    uptr dgamma, uptr dbeta, uptr work, int N, int C, long long S, double eps, int relu, uptr stream);

template <class T>
void batch_norm_update_running(uptr running_mean, uptr running_var, uptr mean, uptr var, int C, double momentum,
                               long long count, uptr stream);

}  // namespace minidl
