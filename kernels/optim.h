// Host launcher of the fused optimizer updates: kernel in optim.cuh, launcher in
// optim.cu, bound in bindings.cpp as sgd_update_f32 / _f64 and called by
// minidl/backend/kernel/optim.py.  param and buf are updated in place; buf may be 0
// when momentum == 0.
#pragma once

#include "launcher.h"

namespace minidl {

template <class T>
void sgd_update(uptr param, uptr grad, uptr buf, long long n, double lr, double momentum, double dampening,
                double weight_decay, bool nesterov, bool first_step, uptr stream);

}  // namespace minidl
