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

void conv2d_tc_forward_tf32(uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream) {
    const dim3 grid(ceil_div((long long)g.N * g.HO * g.WO, kTcBN), ceil_div(g.O / g.G, kTcBM), g.G);
    MINIDL_LAUNCH(conv2d_tc_tf32_kernel<TcForward>, grid, dim3(kTcThreads), 0, stream,
                  TcForward{cp<float>(x), cp<float>(w), mp<float>(y), g});
}

void conv2d_tc_backward_data_tf32(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {
    const dim3 grid(ceil_div((long long)g.N * g.H * g.W, kTcBN), ceil_div(g.C / g.G, kTcBM), g.G);
    MINIDL_LAUNCH(conv2d_tc_tf32_kernel<TcBackwardData>, grid, dim3(kTcThreads), 0, stream,
                  TcBackwardData{cp<float>(gy), cp<float>(w), mp<float>(dx), g});
}

void conv2d_tc_backward_weight_tf32(uptr x, uptr gy, uptr ws, const ConvGeometry& g, int splits, uptr stream) {
    if (splits < 1)
        throw std::invalid_argument("conv2d_tc_backward_weight: splits must be >= 1, got " + std::to_string(splits));
    const long long P = (long long)g.N * g.HO * g.WO;
    const long long chunk = (P + splits - 1) / splits;
    const long long K = (long long)(g.C / g.G) * g.KH * g.KW;
    const dim3 grid(ceil_div(K, kTcBN), ceil_div(g.O / g.G, kTcBM), g.G * splits);
    MINIDL_LAUNCH(conv2d_tc_tf32_kernel<TcBackwardWeight>, grid, dim3(kTcThreads), 0, stream,
                  TcBackwardWeight{cp<float>(x), cp<float>(gy), mp<float>(ws), g, splits, chunk});
}

}  // namespace minidl
