// Host launchers of the fused multi-tensor optimizer updates: kernels in optim.cuh,
// launchers in optim.cu, bound in bindings.cpp as <launcher>_f32 / _f64 and called by
// minidl/backend/kernel/optim.py.  Each takes lists of device addresses, one entry per
// tensor (params, grads, state), and the tensors' sizes; params and state are updated
// IN PLACE.  An optional state list (SGD without momentum: bufs; Adam without AMSGrad:
// max_exp_avg_sqs; RMSprop not centered: grad_avgs, without momentum: bufs) is empty.
// skip: 0, or the address of a device float; nonzero there, the launch changes nothing
// (GradScaler's overflow flag).  The 16-bit launchers (_f16, _bf16) compute in float.
#pragma once

#include <vector>

#include "launcher.h"

namespace minidl {

using Addresses = std::vector<uptr>;
using Sizes = std::vector<long long>;

template <class T>
void sgd_update(const Addresses& params, const Addresses& grads, const Addresses& bufs, const Sizes& sizes,
                double lr, double momentum, double dampening, double weight_decay, int nesterov, int first_step,
                uptr skip, uptr stream);
// step: the step number t >= 1 of every tensor in the lists (bias corrections)
template <class T>
void adam_update(const Addresses& params, const Addresses& grads, const Addresses& exp_avgs,
                 const Addresses& exp_avg_sqs, const Addresses& max_exp_avg_sqs, const Sizes& sizes, double lr,
                 double beta1, double beta2, double eps, double weight_decay, int decoupled, long long step,
                 uptr skip, uptr stream);
template <class T>
void rmsprop_update(const Addresses& params, const Addresses& grads, const Addresses& square_avgs,
                    const Addresses& grad_avgs, const Addresses& bufs, const Sizes& sizes, double lr, double alpha,
                    double eps, double momentum, double weight_decay, int eps_inside_sqrt, uptr skip, uptr stream);

// grads *= *inv_scale IN PLACE; *found_inf = 1 where a result is not finite (else left);
// inv_scale and found_inf are device float32 scalars.
template <class T>
void amp_unscale(const Addresses& grads, const Sizes& sizes, uptr inv_scale, uptr found_inf, uptr stream);

// 16-bit launchers (MINIDL_DECLARE_HALF, launcher.h)
MINIDL_DECLARE_HALF(amp_unscale, const Addresses& grads, const Sizes& sizes, uptr inv_scale, uptr found_inf,
                    uptr stream);
MINIDL_DECLARE_HALF(sgd_update, const Addresses& params, const Addresses& grads, const Addresses& bufs,
                    const Sizes& sizes, double lr, double momentum, double dampening, double weight_decay,
                    int nesterov, int first_step, uptr skip, uptr stream);
MINIDL_DECLARE_HALF(adam_update, const Addresses& params, const Addresses& grads, const Addresses& exp_avgs,
                    const Addresses& exp_avg_sqs, const Addresses& max_exp_avg_sqs, const Sizes& sizes, double lr,
                    double beta1, double beta2, double eps, double weight_decay, int decoupled, long long step,
                    uptr skip, uptr stream);
MINIDL_DECLARE_HALF(rmsprop_update, const Addresses& params, const Addresses& grads, const Addresses& square_avgs,
                    const Addresses& grad_avgs, const Addresses& bufs, const Sizes& sizes, double lr, double alpha,
                    double eps, double momentum, double weight_decay, int eps_inside_sqrt, uptr skip, uptr stream);

}  // namespace minidl
