// Host launchers of the depthwise-convolution family: kernels in depthwise.cuh,
// launchers in depthwise.cu, bound in bindings.cpp as <launcher>_f32 / _f64 and called
// by minidl/backend/kernel/conv.py when groups == channels.  Geometry as in conv.h
// (G == C, O = C * multiplier).
#pragma once

#include "launcher.h"

namespace minidl {

template <class T> void depthwise_conv2d_forward(uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream);
template <class T> void depthwise_conv2d_backward_data(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream);
// work: N * O * KH * KW values (per-image partials of dw), float32 for 16-bit tensors
template <class T>
void depthwise_conv2d_backward_weight(uptr x, uptr gy, uptr dw, uptr work, const ConvGeometry& g, uptr stream);

// 16-bit launchers (MINIDL_DECLARE_HALF, launcher.h)
MINIDL_DECLARE_HALF(depthwise_conv2d_forward, uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream);
MINIDL_DECLARE_HALF(depthwise_conv2d_backward_data, uptr gy, uptr w, uptr dx, const ConvGeometry& g,
                              uptr stream);
MINIDL_DECLARE_HALF(depthwise_conv2d_backward_weight, uptr x, uptr gy, uptr dw, uptr work,
                              const ConvGeometry& g, uptr stream);

}  // namespace minidl
