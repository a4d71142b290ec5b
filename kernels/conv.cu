// Host launchers of the convolution family (kernels in conv.cuh).  Pointers are
// device addresses passed as uintptr_t; the geometry arrives as the 16 ints of
// ConvGeom (N, C, H, W, O, KH, KW, HO, WO, sh, sw, pt, pl, dh, dw, G order, see
// MINIDL_CONV_GEOM_PARAMS); explicit float and double instantiations are bound in
// bindings.cpp as conv_<op>_f32 / _f64.
#include "conv.cuh"

namespace minidl {

// col (n_count, C*KH*KW, HO*WO) <- images [n0, n0 + n_count) of x
template <class T>
void conv_im2col(std::uintptr_t x, std::uintptr_t col, MINIDL_CONV_GEOM_PARAMS, int n0, int n_count,
                 std::uintptr_t stream) {
    const long long total = (long long)n_count * C * KH * KW * HO * WO;
    MINIDL_LAUNCH(conv_im2col_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(x),
                  mp<T>(col), MINIDL_CONV_GEOM, n0, n_count);
}

// images [n0, n0 + n_count) of dx <- col (n_count, C*KH*KW, HO*WO)
template <class T>
void conv_col2im(std::uintptr_t col, std::uintptr_t dx, MINIDL_CONV_GEOM_PARAMS, int n0, int n_count,
                 std::uintptr_t stream) {
    const long long total = (long long)n_count * C * H * W;
    MINIDL_LAUNCH(conv_col2im_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(col),
                  mp<T>(dx), MINIDL_CONV_GEOM, n0, n_count);
}

template <class T>
void conv_igemm_forward(std::uintptr_t x, std::uintptr_t w, std::uintptr_t y, MINIDL_CONV_GEOM_PARAMS,
                        std::uintptr_t stream) {
    const dim3 grid(ceil_div((long long)N * HO * WO, kConvBN), ceil_div(O / G, kConvBM), G);
    MINIDL_LAUNCH(conv_igemm_fwd_kernel<T>, grid, dim3(kConvThreads), 0, stream, cp<T>(x), cp<T>(w), mp<T>(y),
                  MINIDL_CONV_GEOM);
}

template <class T>
void conv_igemm_backward_data(std::uintptr_t gy, std::uintptr_t w, std::uintptr_t dx, MINIDL_CONV_GEOM_PARAMS,
                              std::uintptr_t stream) {
    const dim3 grid(ceil_div((long long)N * H * W, kConvBN), ceil_div(C / G, kConvBM), G);
    MINIDL_LAUNCH(conv_igemm_bwd_data_kernel<T>, grid, dim3(kConvThreads), 0, stream, cp<T>(gy), cp<T>(w),
                  mp<T>(dx), MINIDL_CONV_GEOM);
}

// ws (splits, O, C/G*KH*KW): one partial weight gradient per slice of the N*HO*WO
// output pixels; with splits == 1, ws is dw itself.
template <class T>
void conv_igemm_backward_weight(std::uintptr_t x, std::uintptr_t gy, std::uintptr_t ws, MINIDL_CONV_GEOM_PARAMS,
                                int splits, std::uintptr_t stream) {
    if (splits < 1) throw std::runtime_error("conv_igemm_backward_weight: splits must be >= 1, got " +
                                             std::to_string(splits));
    const long long P = (long long)N * HO * WO;
    long long chunk = (P + splits - 1) / splits;
    chunk = (chunk + kConvBK - 1) / kConvBK * kConvBK;
    const dim3 grid(ceil_div((long long)(C / G) * KH * KW, kConvBN), ceil_div(O / G, kConvBM), G * splits);
    MINIDL_LAUNCH(conv_igemm_bwd_weight_kernel<T>, grid, dim3(kConvThreads), 0, stream, cp<T>(x), cp<T>(gy),
                  mp<T>(ws), MINIDL_CONV_GEOM, splits, chunk);
}

#define MINIDL_INSTANTIATE(T)                                                                                   \
    template void conv_im2col<T>(std::uintptr_t, std::uintptr_t, int, int, int, int, int, int, int, int, int, int, \
                                 int, int, int, int, int, int, int, int, std::uintptr_t);                         \
    template void conv_col2im<T>(std::uintptr_t, std::uintptr_t, int, int, int, int, int, int, int, int, int, int, \
                                 int, int, int, int, int, int, int, int, std::uintptr_t);                         \
    template void conv_igemm_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, int, int, int,   \
                                        int, int, int, int, int, int, int, int, int, int, int, std::uintptr_t);   \
    template void conv_igemm_backward_data<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, int, int,  \
                                              int, int, int, int, int, int, int, int, int, int, int, int,         \
                                              std::uintptr_t);                                                    \
    template void conv_igemm_backward_weight<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, int,    \
                                                int, int, int, int, int, int, int, int, int, int, int, int, int,  \
                                                int, std::uintptr_t);
MINIDL_INSTANTIATE(float)
MINIDL_INSTANTIATE(double)

}  // namespace minidl
