// Host launchers of the depthwise-convolution family (kernels in depthwise.cuh).
// Geometry as in conv.cu (the ConvGeom ints, G == C, O = C * multiplier); explicit
// float and double instantiations are bound in bindings.cpp as depthwise_<op>_f32 / _f64.
#include "depthwise.cuh"

namespace minidl {

namespace {

void check_depthwise(const char* op, int C, int O, int G) {
    if (G != C || O % C != 0)
        throw std::runtime_error(std::string(op) + ": expected groups == channels and out_channels a multiple "
                                 "of channels, got groups " + std::to_string(G) + ", channels " +
                                 std::to_string(C) + ", out_channels " + std::to_string(O));
}
}  // namespace

template <class T>
void depthwise_forward(std::uintptr_t x, std::uintptr_t w, std::uintptr_t y, MINIDL_CONV_GEOM_PARAMS,
                       std::uintptr_t stream) {
    check_depthwise("depthwise_forward", C, O, G);
    const long long total = (long long)N * O * HO * WO;
    MINIDL_LAUNCH(depthwise_fwd_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(x),
                  cp<T>(w), mp<T>(y), MINIDL_CONV_GEOM);
}

template <class T>
void depthwise_backward_data(std::uintptr_t gy, std::uintptr_t w, std::uintptr_t dx, MINIDL_CONV_GEOM_PARAMS,
                             std::uintptr_t stream) {
    check_depthwise("depthwise_backward_data", C, O, G);
    const long long total = (long long)N * C * H * W;
    MINIDL_LAUNCH(depthwise_bwd_data_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(gy),
                  cp<T>(w), mp<T>(dx), MINIDL_CONV_GEOM);
}

template <class T>
void depthwise_backward_weight(std::uintptr_t x, std::uintptr_t gy, std::uintptr_t dw_, MINIDL_CONV_GEOM_PARAMS,
                               std::uintptr_t stream) {
    check_depthwise("depthwise_backward_weight", C, O, G);
    // one block per (o, tap); small reductions get narrower blocks
    const long long per_block = (long long)N * HO * WO;
    const int threads = per_block >= 4096 ? kDepthwiseReduceThreads : per_block >= 512 ? 128 : 32;
    MINIDL_LAUNCH(depthwise_bwd_weight_kernel<T>, dim3((unsigned)(O * KH * KW)), dim3(threads), 0, stream, cp<T>(x), cp<T>(gy), mp<T>(dw_), MINIDL_CONV_GEOM);
}

#define MINIDL_INSTANTIATE(T)                                                                                    \
    template void depthwise_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, int, int, int, int, \
                                       int, int, int, int, int, int, int, int, int, int, std::uintptr_t);            \
    template void depthwise_backward_data<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, int, int,    \
                                             int, int, int, int, int, int, int, int, int, int, int, int,            \
                                             std::uintptr_t);                                                       \
    template void depthwise_backward_weight<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, int, int,  \
                                               int, int, int, int, int, int, int, int, int, int, int, int,          \
                                               std::uintptr_t);
MINIDL_INSTANTIATE(float)
MINIDL_INSTANTIATE(double)

}  // namespace minidl
