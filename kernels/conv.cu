// Host launchers of the convolution family (declared in conv.h, kernels in conv.cuh):
// 1-D grid-stride launches for im2col / col2im, 64x64 output tiles for implicit GEMM
// (SIMT, and the TF32 tensor-core forward of conv_tc.cuh).
#include "conv.h"

#include "conv.cuh"
#include "conv_tc.cuh"

namespace minidl {

template <class T>
void conv2d_im2col(uptr x, uptr col, const ConvGeometry& g, int n0, int n_count, uptr stream) {
    const long long total = (long long)n_count * g.C * g.KH * g.KW * g.HO * g.WO;
    MINIDL_LAUNCH(conv2d_im2col_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(x),
                  mp<T>(col), g, n0, n_count);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(conv2d_im2col);

template <class T>
void conv2d_col2im(uptr col, uptr dx, const ConvGeometry& g, int n0, int n_count, uptr stream) {
    const long long total = (long long)n_count * g.C * g.H * g.W;
    MINIDL_LAUNCH(conv2d_col2im_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(col),
                  mp<T>(dx), g, n0, n_count);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(conv2d_col2im);

template <class T>
void conv2d_igemm_forward(uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream) {
    const dim3 grid(ceil_div((long long)g.N * g.HO * g.WO, kConvBN), ceil_div(g.O / g.G, kConvBM), g.G);
    MINIDL_LAUNCH(conv2d_igemm_forward_kernel<T>, grid, dim3(kConvThreads), 0, stream, cp<T>(x), cp<T>(w), mp<T>(y),
                  g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(conv2d_igemm_forward);

template <class T>
void conv2d_igemm_backward_data(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {
    const dim3 grid(ceil_div((long long)g.N * g.H * g.W, kConvBN), ceil_div(g.C / g.G, kConvBM), g.G);
    MINIDL_LAUNCH(conv2d_igemm_backward_data_kernel<T>, grid, dim3(kConvThreads), 0, stream, cp<T>(gy), cp<T>(w),
                  mp<T>(dx), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(conv2d_igemm_backward_data);

template <class T>
void conv2d_igemm_backward_weight(uptr x, uptr gy, uptr ws, const ConvGeometry& g, int splits, uptr stream) {
    if (splits < 1)
        throw std::invalid_argument("conv2d_igemm_backward_weight: splits must be >= 1, got " +
                                    std::to_string(splits));
    const long long P = (long long)g.N * g.HO * g.WO;
    long long chunk = (P + splits - 1) / splits;
    chunk = (chunk + kConvBK - 1) / kConvBK * kConvBK;
    const dim3 grid(ceil_div((long long)(g.C / g.G) * g.KH * g.KW, kConvBN), ceil_div(g.O / g.G, kConvBM),
                    g.G * splits);
    MINIDL_LAUNCH(conv2d_igemm_backward_weight_kernel<T>, grid, dim3(kConvThreads), 0, stream, cp<T>(x), cp<T>(gy),
                  mp<T>(ws), g, splits, chunk);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(conv2d_igemm_backward_weight);

namespace {
// The launches of the tensor-core convolutions for element type E (float: TF32; half_t,
// bf16_t: the 16-bit kernel).
template <class Problem, class E>
void launch_tc(const char* name, dim3 grid, const Problem& pr, uptr stream) {
    if constexpr (std::is_same_v<E, float>)
        launch_named(name, conv2d_tc_tf32_kernel<Problem>, grid, dim3(kTcThreads), 0, stream, pr);
    else
        launch_named(name, conv2d_tc_16bit_kernel<Problem, E>, grid, dim3(kTcThreads), 0, stream, pr);
}

template <class E>
void tc_forward(uptr x, uptr w, uptr bias, uptr y, const ConvGeometry& g, uptr stream) {
    const dim3 grid(ceil_div((long long)g.N * g.HO * g.WO, kTcBN), ceil_div(g.O / g.G, kTcBM), g.G);
    launch_tc<TcForward<E>, E>("conv2d_tc_forward", grid,
                               TcForward<E>{cp<E>(x), cp<E>(w), cp<float>(bias), mp<E>(y), g}, stream);
}

template <class E>
void tc_backward_data(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {
    const dim3 grid(ceil_div((long long)g.N * g.H * g.W, kTcBN), ceil_div(g.C / g.G, kTcBM), g.G);
    launch_tc<TcBackwardData<E>, E>("conv2d_tc_backward_data", grid,
                                    TcBackwardData<E>{cp<E>(gy), cp<E>(w), mp<E>(dx), g}, stream);
}

template <class E>
void tc_backward_weight(uptr x, uptr gy, uptr ws, const ConvGeometry& g, int splits, uptr stream) {
    if (splits < 1)
        throw std::invalid_argument("conv2d_tc_backward_weight: splits must be >= 1, got " + std::to_string(splits));
    const long long P = (long long)g.N * g.HO * g.WO;
    const long long chunk = (P + splits - 1) / splits;
    const long long K = (long long)(g.C / g.G) * g.KH * g.KW;
    const dim3 grid(ceil_div(K, kTcBN), ceil_div(g.O / g.G, kTcBM), g.G * splits);
    launch_tc<TcBackwardWeight<E>, E>("conv2d_tc_backward_weight", grid,
                                      TcBackwardWeight<E>{cp<E>(x), cp<E>(gy), mp<float>(ws), g, splits, chunk},
                                      stream);
}
}  // namespace

#define MINIDL_TC_LAUNCHERS(sfx, E)                                                                          \
    void conv2d_tc_forward_##sfx(uptr x, uptr w, uptr bias, uptr y, const ConvGeometry& g, uptr stream) {    \
        tc_forward<E>(x, w, bias, y, g, stream);                                                             \
    }                                                                                                        \
    void conv2d_tc_backward_data_##sfx(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {       \
        tc_backward_data<E>(gy, w, dx, g, stream);                                                           \
    }                                                                                                        \
    void conv2d_tc_backward_weight_##sfx(uptr x, uptr gy, uptr ws, const ConvGeometry& g, int splits,        \
                                         uptr stream) {                                                      \
        tc_backward_weight<E>(x, gy, ws, g, splits, stream);                                                 \
    }
MINIDL_TC_LAUNCHERS(tf32, float)
MINIDL_TC_LAUNCHERS(f16, half_t)
MINIDL_TC_LAUNCHERS(bf16, bf16_t)

}  // namespace minidl
