// Host launchers of the batch-norm family: kernels in batchnorm.cuh, launchers in
// batchnorm.cu, bound in bindings.cpp as <launcher>_f32 / _f64 and called by
// minidl/backend/kernel/batchnorm.py.  x is viewed as (N, C, S); the per-channel
// vectors hold C elements; batch_norm_update_running works in place.
#pragma once

#include "launcher.h"

namespace minidl {

template <class T>
void batch_norm_train_forward(uptr x, uptr gamma, uptr beta, uptr y, uptr mean, uptr var, int N, int C, long long S,
                              double eps, uptr stream);
template <class T>
void batch_norm_eval_forward(uptr x, uptr gamma, uptr beta, uptr mean, uptr var, uptr y, int N, int C, long long S,
                             double eps, uptr stream);
template <class T>
void batch_norm_backward(uptr x, uptr gy, uptr gamma, uptr mean, uptr var, uptr dx, uptr dgamma, uptr dbeta, int N,
                         int C, long long S, double eps, uptr stream);
template <class T>
void batch_norm_update_running(uptr running_mean, uptr running_var, uptr mean, uptr var, int C, double momentum,
                               long long count, uptr stream);

}  // namespace minidl
