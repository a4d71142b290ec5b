// Host launchers of the convolution family: kernels in conv.cuh, launchers in conv.cu,
// bound in bindings.cpp as <launcher>_f32 / _f64 and called by
// minidl/backend/kernel/conv.py (the contract's conv2d_forward / conv2d_backward).
// Arrays are contiguous NCHW / (O, C/G, KH, KW) in the geometry's sizes.
#pragma once

#include "launcher.h"

namespace minidl {

// col (n_count, C*KH*KW, HO*WO) <- images [n0, n0 + n_count) of x
template <class T> void conv2d_im2col(uptr x, uptr col, const ConvGeometry& g, int n0, int n_count, uptr stream);
// images [n0, n0 + n_count) of dx <- col (n_count, C*KH*KW, HO*WO)
template <class T> void conv2d_col2im(uptr col, uptr dx, const ConvGeometry& g, int n0, int n_count, uptr stream);
template <class T> void conv2d_igemm_forward(uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream);
template <class T> void conv2d_igemm_backward_data(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream);
// ws (splits, O, C/G*KH*KW): one partial weight gradient per slice of the N*HO*WO
// output pixels; with splits == 1, ws is dw itself.
template <class T>
void conv2d_igemm_backward_weight(uptr x, uptr gy, uptr ws, const ConvGeometry& g, int splits, uptr stream);
// On tensor cores (conv_tc.cuh): float32 tensors in TF32 (bound as conv2d_tc_<pass>_f32),
// float16 / bfloat16 tensors (conv2d_tc_<pass>_f16 / _bf16).  The forward's bias is 0 or
// (O,) float32 for every input type; it and the ReLU (relu != 0) are applied before the
// output's one rounding.  splits > 1 splits the GEMM's K (forward: C/G*KH*KW; weight
// gradient: N*HO*WO) over that many blocks, whose float32 partials go to ws
// (splits * y or dw elements) and are summed into y / dw by a second kernel; with
// splits == 1, ws is not used (0).
#define MINIDL_DECLARE_TC(sfx)                                                                                \
    void conv2d_tc_forward_##sfx(uptr x, uptr w, uptr bias, uptr y, uptr ws, const ConvGeometry& g, int splits, \
                                 int relu, uptr stream);                                                      \
    void conv2d_tc_backward_data_##sfx(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream);         \
    void conv2d_tc_backward_weight_##sfx(uptr x, uptr gy, uptr dw, uptr ws, const ConvGeometry& g, int splits, \
                                         uptr stream)
MINIDL_DECLARE_TC(tf32);
MINIDL_DECLARE_TC(f16);
MINIDL_DECLARE_TC(bf16);

}  // namespace minidl
