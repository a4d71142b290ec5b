// Host launchers of the pooling family: kernels in pool.cuh, launchers in pool.cu,
// bound in bindings.cpp as <launcher>_f32 / _f64 and called by
// minidl/backend/kernel/pool.py.  Arrays are contiguous NCHW in the geometry's sizes;
// argmax is int32 (N, C, OH, OW), the flat h*W + w index in the input plane.
#pragma once

#include "launcher.h"

namespace minidl {

template <class T> void max_pool2d_forward(uptr x, uptr y, uptr argmax, const PoolGeometry& g, uptr stream);
template <class T> void max_pool2d_backward(uptr gy, uptr argmax, uptr dx, const PoolGeometry& g, uptr stream);
template <class T>
void avg_pool2d_forward(uptr x, uptr y, const PoolGeometry& g, bool count_include_pad, uptr stream);
template <class T>
void avg_pool2d_backward(uptr gy, uptr dx, const PoolGeometry& g, bool count_include_pad, uptr stream);
// adaptive pooling reads N, C, H, W, OH, OW of the geometry
template <class T> void adaptive_avg_pool2d_forward(uptr x, uptr y, const PoolGeometry& g, uptr stream);
template <class T> void adaptive_avg_pool2d_backward(uptr gy, uptr dx, const PoolGeometry& g, uptr stream);
// the 1x1 output (global average pooling): a per-channel reduction over the N*C planes;
// work holds channel_partials(1, N*C, H*W) * N*C values of compute_t<T> (elementwise.h)
// where that is > 1 or T is 16-bit
template <class T>
void adaptive_avg_pool2d_forward_1x1(uptr x, uptr y, uptr work, const PoolGeometry& g, uptr stream);
template <class T> void adaptive_avg_pool2d_backward_1x1(uptr gy, uptr dx, const PoolGeometry& g, uptr stream);

// 16-bit launchers (MINIDL_DECLARE_HALF, launcher.h)
MINIDL_DECLARE_HALF(max_pool2d_forward, uptr x, uptr y, uptr argmax, const PoolGeometry& g, uptr stream);
MINIDL_DECLARE_HALF(max_pool2d_backward, uptr gy, uptr argmax, uptr dx, const PoolGeometry& g, uptr stream);
MINIDL_DECLARE_HALF(avg_pool2d_forward, uptr x, uptr y, const PoolGeometry& g, bool count_include_pad,
                         uptr stream);
MINIDL_DECLARE_HALF(avg_pool2d_backward, uptr gy, uptr dx, const PoolGeometry& g, bool count_include_pad,
                         uptr stream);
MINIDL_DECLARE_HALF(adaptive_avg_pool2d_forward, uptr x, uptr y, const PoolGeometry& g, uptr stream);
MINIDL_DECLARE_HALF(adaptive_avg_pool2d_backward, uptr gy, uptr dx, const PoolGeometry& g, uptr stream);
MINIDL_DECLARE_HALF(adaptive_avg_pool2d_forward_1x1, uptr x, uptr y, uptr work, const PoolGeometry& g, uptr stream);
MINIDL_DECLARE_HALF(adaptive_avg_pool2d_backward_1x1, uptr gy, uptr dx, const PoolGeometry& g, uptr stream);

}  // namespace minidl
