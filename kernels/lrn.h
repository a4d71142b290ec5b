// Host launchers of the LRN family: kernels in lrn.cuh, launchers in lrn.cu, bound in
// bindings.cpp as lrn_forward_f32 / _f64 and lrn_backward_f32 / _f64 and called by
// minidl/backend/kernel/lrn.py.  x, y, scale, gy, dx are contiguous (N, C, HW); scale is
// compute_t<T> (float32 beside the 16-bit launchers _f16 / _bf16).
#pragma once

#include "launcher.h"

namespace minidl {

template <class T>
void lrn_forward(uptr x, uptr y, uptr scale, int N, int C, int HW, int size, double alpha, double beta, double k,
                 uptr stream);
template <class T>
void lrn_backward(uptr x, uptr y, uptr scale, uptr gy, uptr dx, int N, int C, int HW, int size, double alpha,
                  double beta, uptr stream);
// 16-bit launchers (MINIDL_DECLARE_HALF, launcher.h)
MINIDL_DECLARE_HALF(lrn_forward, uptr x, uptr y, uptr scale, int N, int C, int HW, int size, double alpha,
                    double beta, double k, uptr stream);
MINIDL_DECLARE_HALF(lrn_backward, uptr x, uptr y, uptr scale, uptr gy, uptr dx, int N, int C, int HW, int size,
                    double alpha, double beta, uptr stream);

}  // namespace minidl
