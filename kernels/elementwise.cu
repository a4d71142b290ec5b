// Host launchers of the elementwise family (kernels in elementwise.cuh).  Pointers
// are device addresses passed as uintptr_t; explicit instantiations for float and
// double are bound in bindings.cpp as elementwise_<op>_f32 / _f64.
#include "elementwise.cuh"

namespace minidl {

#define MINIDL_UNARY_LAUNCHER(op)                                                                  \
    template <class T>                                                                             \
    void elementwise_##op##_forward(std::uintptr_t x, std::uintptr_t y, long long n, std::uintptr_t stream) { \
        MINIDL_LAUNCH(op##_forward_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream,    \
                      cp<T>(x), mp<T>(y), n);                                                      \
    }                                                                                              \
    template <class T>                                                                             \
    void elementwise_##op##_backward(std::uintptr_t xy, std::uintptr_t gy, std::uintptr_t gx, long long n, \
                                     std::uintptr_t stream) {                                      \
        MINIDL_LAUNCH(op##_backward_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream,   \
                      cp<T>(xy), cp<T>(gy), mp<T>(gx), n);                                         \
    }                                                                                              \
    template void elementwise_##op##_forward<float>(std::uintptr_t, std::uintptr_t, long long, std::uintptr_t); \
    template void elementwise_##op##_forward<double>(std::uintptr_t, std::uintptr_t, long long, std::uintptr_t); \
    template void elementwise_##op##_backward<float>(std::uintptr_t, std::uintptr_t, std::uintptr_t, long long, std::uintptr_t); \
    template void elementwise_##op##_backward<double>(std::uintptr_t, std::uintptr_t, std::uintptr_t, long long, std::uintptr_t);

MINIDL_UNARY_LAUNCHER(relu)
MINIDL_UNARY_LAUNCHER(relu6)
MINIDL_UNARY_LAUNCHER(sigmoid)
MINIDL_UNARY_LAUNCHER(silu)

template <class T>
void elementwise_bias_add(std::uintptr_t x, std::uintptr_t b, std::uintptr_t y, int N, int C, long long S,
                          std::uintptr_t stream) {
    long long total = (long long)N * C * S;
    MINIDL_LAUNCH(bias_add_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(x), cp<T>(b),
                  mp<T>(y), total, C, S);
}

template <class T>
void elementwise_bias_add_backward(std::uintptr_t gy, std::uintptr_t db, int N, int C, long long S,
                                   std::uintptr_t stream) {
    long long per = (long long)N * S;
    int threads = per >= 4096 ? 512 : (per >= 256 ? 256 : 64);
    MINIDL_LAUNCH(bias_add_backward_kernel<T>, dim3(C), dim3(threads), 0, stream, cp<T>(gy), mp<T>(db), N, C, S);
}

template <class T>
void elementwise_dropout_forward(std::uintptr_t x, std::uintptr_t u, std::uintptr_t y, std::uintptr_t mask,
                                 long long n, double p, std::uintptr_t stream) {
    T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
    MINIDL_LAUNCH(dropout_forward_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(x), cp<T>(u),
                  mp<T>(y), mp<T>(mask), n, T(p), scale);
}

template <class T>
void elementwise_dropout_backward(std::uintptr_t gy, std::uintptr_t mask, std::uintptr_t gx, long long n,
                                  std::uintptr_t stream) {
    MINIDL_LAUNCH(dropout_backward_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(gy),
                  cp<T>(mask), mp<T>(gx), n);
}

#define MINIDL_INSTANTIATE(T)                                                                                 \
    template void elementwise_bias_add<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, long long, \
                                          std::uintptr_t);                                                    \
    template void elementwise_bias_add_backward<T>(std::uintptr_t, std::uintptr_t, int, int, long long,       \
                                                   std::uintptr_t);                                           \
    template void elementwise_dropout_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t, \
                                                 long long, double, std::uintptr_t);                          \
    template void elementwise_dropout_backward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, long long,  \
                                                  std::uintptr_t);
MINIDL_INSTANTIATE(float)
MINIDL_INSTANTIATE(double)

}  // namespace minidl
