// Host launchers of the LRN family (kernels in lrn.cuh).  Pointers are device
// addresses passed as uintptr_t; HW = H*W.  Explicit float and double instantiations
// are bound in bindings.cpp as lrn_<op>_f32 / _f64.
#include "lrn.cuh"

namespace minidl {

template <class T>
void lrn_forward(std::uintptr_t x, std::uintptr_t y, std::uintptr_t scale, int N, int C, int HW, int size,
                 double alpha, double beta, double k, std::uintptr_t stream) {
    MINIDL_LAUNCH(lrn_fwd_kernel<T>, grid_1d((long long)N * C * HW, kThreads), dim3(kThreads), 0, stream, cp<T>(x),
                  mp<T>(y), mp<T>(scale), N, C, HW, size, T(alpha), T(beta), T(k));
}

template <class T>
void lrn_backward(std::uintptr_t x, std::uintptr_t y, std::uintptr_t scale, std::uintptr_t gy, std::uintptr_t dx,
                  int N, int C, int HW, int size, double alpha, double beta, std::uintptr_t stream) {
    MINIDL_LAUNCH(lrn_bwd_kernel<T>, grid_1d((long long)N * C * HW, kThreads), dim3(kThreads), 0, stream, cp<T>(x),
                  cp<T>(y), cp<T>(scale), cp<T>(gy), mp<T>(dx), N, C, HW, size, T(alpha), T(beta));
}

#define MINIDL_INSTANTIATE(T)                                                                                     \
    template void lrn_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, int, int, double,      \
                                 double, double, std::uintptr_t);                                                \
    template void lrn_backward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t, \
                                  int, int, int, int, double, double, std::uintptr_t);
MINIDL_INSTANTIATE(float)
MINIDL_INSTANTIATE(double)

}  // namespace minidl
