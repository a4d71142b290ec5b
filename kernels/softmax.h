// Host launchers of the softmax family: kernels in softmax.cuh, launchers in softmax.cu,
// bound in bindings.cpp as <launcher>_f32 / _f64 and called by
// minidl/backend/kernel/softmax.py.  Rows of a contiguous (N, K) array; labels are an
// int64 (N,) array whose values the caller has checked to lie in [0, K).  The 16-bit
// launchers compute in float; cross_entropy_forward's loss and logp are then float32
// (the backward reads the log-probabilities unrounded: it is float32/float64 only).
#pragma once

#include "launcher.h"

namespace minidl {

template <class T> void softmax_forward(uptr x, uptr y, int N, int K, bool log, uptr stream);
template <class T> void softmax_backward(uptr y, uptr gy, uptr gx, int N, int K, bool log, uptr stream);
template <class T>
void cross_entropy_forward(uptr logits, uptr labels, uptr loss, uptr logp, int N, int K, double smoothing,
                           uptr stream);
template <class T>
void cross_entropy_backward(uptr logp, uptr labels, uptr grad_row, uptr dx, int N, int K, double smoothing,
                            uptr stream);

// 16-bit launchers (MINIDL_DECLARE_HALF, launcher.h)
MINIDL_DECLARE_HALF(softmax_forward, uptr x, uptr y, int N, int K, bool log, uptr stream);
MINIDL_DECLARE_HALF(softmax_backward, uptr y, uptr gy, uptr gx, int N, int K, bool log, uptr stream);
MINIDL_DECLARE_HALF(cross_entropy_forward, uptr logits, uptr labels, uptr loss, uptr logp, int N, int K,
                    double smoothing, uptr stream);

}  // namespace minidl
