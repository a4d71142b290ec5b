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

// The tensor-core problems index a group's rows, columns and K in 32 bits.
void tc_check_32bit(const char* name, std::initializer_list<long long> sizes) {
    for (long long v : sizes)
        if (v >= (1ll << 31))
            throw std::invalid_argument(std::string(name) + ": a GEMM dimension of " + std::to_string(v) +
                                        " exceeds the 32-bit indices of the tensor-core kernels (< 2^31)");
}

// Split-K: K per split as a whole number of slices; the partials' sum into out.
unsigned tc_chunk(long long K, int splits, const char* name) {
    if (splits < 1) throw std::invalid_argument(std::string(name) + ": splits must be >= 1, got " + std::to_string(splits));
    return (unsigned)(ceil_div(ceil_div(K, splits), kTcBK) * kTcBK);
}

template <class E>
TcOutput<E> tc_output(uptr out, uptr ws, int splits, uptr bias, int relu, long long count) {
    return TcOutput<E>{mp<E>(out), splits > 1 ? mp<float>(ws) : nullptr, cp<float>(bias), relu, count};
}

template <class E>
void tc_reduce(uptr ws, int splits, long long count, uptr bias, int channels, int inner, int relu, uptr out,
               uptr stream) {
    if (splits > 1)
        MINIDL_LAUNCH(tc_reduce_splits_kernel<E>, grid_1d(count, kThreads), dim3(kThreads), 0, stream, cp<float>(ws),
                      splits, count, cp<float>(bias), channels, inner, relu, mp<E>(out));
}

template <class E>
void tc_forward(uptr x, uptr w, uptr bias, uptr y, uptr ws, const ConvGeometry& g, int splits, int relu,
                uptr stream) {
    const long long P = (long long)g.N * g.HO * g.WO, K = (long long)(g.C / g.G) * g.KH * g.KW;
    tc_check_32bit("conv2d_tc_forward", {P, K});
    const unsigned chunk = tc_chunk(K, splits, "conv2d_tc_forward");
    const long long count = P * g.O;
    const dim3 grid(ceil_div(P, kTcBN), ceil_div(g.O / g.G, kTcBM), g.G * splits);
    const TcForward<E> pr{cp<E>(x), cp<E>(w), tc_output<E>(y, ws, splits, bias, relu, count), g, TcDivisors(g),
                          TcSplitK{splits, chunk}};
    launch_tc<TcForward<E>, E>("conv2d_tc_forward", grid, pr, stream);
    tc_reduce<E>(ws, splits, count, bias, g.O, g.HO * g.WO, relu, y, stream);
}

template <class E>
void tc_backward_data(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {
    const long long pixels = (long long)g.N * ceil_div(g.H, g.sh) * ceil_div(g.W, g.sw);
    tc_check_32bit("conv2d_tc_backward_data", {pixels, (long long)(g.O / g.G) * g.KH * g.KW});
    const dim3 grid(ceil_div(pixels, kTcBN), ceil_div(g.C / g.G, kTcBM), g.G * g.sh * g.sw);  // z: group, phase
    const TcBackwardData<E> pr{cp<E>(gy), cp<E>(w), tc_output<E>(dx, 0, 1, 0, 0, (long long)g.N * g.C * g.H * g.W),
                               g};
    launch_tc<TcBackwardData<E>, E>("conv2d_tc_backward_data", grid, pr, stream);
}

template <class E>
void tc_backward_weight(uptr x, uptr gy, uptr dw, uptr ws, const ConvGeometry& g, int splits, uptr stream) {
    const long long P = (long long)g.N * g.HO * g.WO, K = (long long)(g.C / g.G) * g.KH * g.KW;
    tc_check_32bit("conv2d_tc_backward_weight", {P, K});
    const unsigned chunk = tc_chunk(P, splits, "conv2d_tc_backward_weight");
    const long long count = (long long)g.O * K;
    const dim3 grid(ceil_div(K, kTcBN), ceil_div(g.O / g.G, kTcBM), g.G * splits);
    const TcBackwardWeight<E> pr{cp<E>(x), cp<E>(gy), tc_output<E>(dw, ws, splits, 0, 0, count), g,
                                 TcDivisors(g), TcSplitK{splits, chunk}};
    launch_tc<TcBackwardWeight<E>, E>("conv2d_tc_backward_weight", grid, pr, stream);
    tc_reduce<E>(ws, splits, count, 0, 1, 1, 0, dw, stream);
}
}  // namespace

#define MINIDL_TC_LAUNCHERS(sfx, E)                                                                          \
    void conv2d_tc_forward_##sfx(uptr x, uptr w, uptr bias, uptr y, uptr ws, const ConvGeometry& g, int splits, \
                                 int relu, uptr stream) {                                                    \
        tc_forward<E>(x, w, bias, y, ws, g, splits, relu, stream);                                           \
    }                                                                                                        \
    void conv2d_tc_backward_data_##sfx(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {       \
        tc_backward_data<E>(gy, w, dx, g, stream);                                                           \
    }                                                                                                        \
    void conv2d_tc_backward_weight_##sfx(uptr x, uptr gy, uptr dw, uptr ws, const ConvGeometry& g, int splits, \
                                         uptr stream) {                                                      \
        tc_backward_weight<E>(x, gy, dw, ws, g, splits, stream);                                             \
    }
MINIDL_TC_LAUNCHERS(tf32, float)
MINIDL_TC_LAUNCHERS(f16, half_t)
MINIDL_TC_LAUNCHERS(bf16, bf16_t)

}  // namespace minidl
