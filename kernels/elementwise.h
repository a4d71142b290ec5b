// Host launchers of the elementwise family: kernels in elementwise.cuh, launchers in
// elementwise.cu, bound in bindings.cpp as <launcher>_f32 / _f64 and called by
// minidl/backend/kernel/elementwise.py under the backend contract's names.
// n counts the elements of a flat array; bias-add views x as (N, C, S).
#pragma once

#include "launcher.h"

namespace minidl {

template <class T> void relu(uptr x, uptr y, long long n, uptr stream);
template <class T> void relu_backward(uptr x, uptr gy, uptr gx, long long n, uptr stream);
template <class T> void relu6(uptr x, uptr y, long long n, uptr stream);
template <class T> void relu6_backward(uptr x, uptr gy, uptr gx, long long n, uptr stream);
template <class T> void sigmoid(uptr x, uptr y, long long n, uptr stream);
template <class T> void sigmoid_backward(uptr y, uptr gy, uptr gx, long long n, uptr stream);
template <class T> void silu(uptr x, uptr y, long long n, uptr stream);
template <class T> void silu_backward(uptr x, uptr gy, uptr gx, long long n, uptr stream);
template <class T> void add_relu(uptr a, uptr b, uptr y, long long n, uptr stream);
// b is compute_t<T> (float32 beside the 16-bit launchers)
template <class T> void bias_add(uptr x, uptr b, uptr y, int N, int C, long long S, uptr stream);
// work: channel_partials(N, C, S) * C elements of compute_t<T> (at least C for 16-bit T)
template <class T> void bias_add_backward(uptr gy, uptr db, uptr work, int N, int C, long long S, uptr stream);
// P, the partial rows of a per-channel reduction over (N, C, S) (channel.cuh), which
// sizes the work vectors of bias_add_backward and of the batch-norm family
int channel_partials(int N, int C, long long S);

// 16-bit launchers (MINIDL_DECLARE_HALF, launcher.h)
MINIDL_DECLARE_HALF(relu, uptr x, uptr y, long long n, uptr stream);
MINIDL_DECLARE_HALF(relu_backward, uptr x, uptr gy, uptr gx, long long n, uptr stream);
MINIDL_DECLARE_HALF(relu6, uptr x, uptr y, long long n, uptr stream);
MINIDL_DECLARE_HALF(relu6_backward, uptr x, uptr gy, uptr gx, long long n, uptr stream);
MINIDL_DECLARE_HALF(sigmoid, uptr x, uptr y, long long n, uptr stream);
MINIDL_DECLARE_HALF(sigmoid_backward, uptr y, uptr gy, uptr gx, long long n, uptr stream);
MINIDL_DECLARE_HALF(silu, uptr x, uptr y, long long n, uptr stream);
MINIDL_DECLARE_HALF(silu_backward, uptr x, uptr gy, uptr gx, long long n, uptr stream);
MINIDL_DECLARE_HALF(add_relu, uptr a, uptr b, uptr y, long long n, uptr stream);
MINIDL_DECLARE_HALF(bias_add, uptr x, uptr b, uptr y, int N, int C, long long S, uptr stream);
MINIDL_DECLARE_HALF(bias_add_backward, uptr gy, uptr db, uptr work, int N, int C, long long S, uptr stream);
template <class T> void dropout_apply(uptr x, uptr u, uptr y, uptr mask, long long n, double p, uptr stream);
template <class T> void dropout_backward(uptr gy, uptr mask, uptr gx, long long n, uptr stream);

}  // namespace minidl
