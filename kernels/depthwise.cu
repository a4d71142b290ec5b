// Host launchers of the depthwise-convolution family (declared in depthwise.h,
// kernels in depthwise.cuh).
#include "depthwise.h"

#include "depthwise.cuh"

namespace minidl {

namespace {

void check_depthwise(const char* op, const ConvGeometry& g) {
    if (g.G != g.C || g.O % g.C != 0)
        throw std::invalid_argument(std::string(op) + ": expected groups == channels and out_channels a multiple "
                                    "of channels, got groups " + std::to_string(g.G) + ", channels " +
                                    std::to_string(g.C) + ", out_channels " + std::to_string(g.O));
}
}  // namespace

template <class T>
void depthwise_conv2d_forward(uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream) {
    check_depthwise("depthwise_conv2d_forward", g);
    const long long total = (long long)g.N * g.O * g.HO * g.WO;
    MINIDL_LAUNCH(depthwise_conv2d_forward_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(x),
                  cp<T>(w), mp<T>(y), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(depthwise_conv2d_forward);

template <class T>
void depthwise_conv2d_backward_data(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {
    check_depthwise("depthwise_conv2d_backward_data", g);
    const long long total = (long long)g.N * g.C * g.H * g.W;
    MINIDL_LAUNCH(depthwise_conv2d_backward_data_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), cp<T>(w), mp<T>(dx), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(depthwise_conv2d_backward_data);

template <class T>
void depthwise_conv2d_backward_weight(uptr x, uptr gy, uptr dw, const ConvGeometry& g, uptr stream) {
    check_depthwise("depthwise_conv2d_backward_weight", g);
    // one block per (o, tap); small reductions get narrower blocks
    const long long per_block = (long long)g.N * g.HO * g.WO;
    const int threads = per_block >= 4096 ? kDepthwiseReduceThreads : per_block >= 512 ? 128 : 32;
    MINIDL_LAUNCH(depthwise_conv2d_backward_weight_kernel<T>, dim3((unsigned)(g.O * g.KH * g.KW)), dim3(threads), 0,
                  stream, cp<T>(x), cp<T>(gy), mp<T>(dw), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(depthwise_conv2d_backward_weight);

}  // namespace minidl
