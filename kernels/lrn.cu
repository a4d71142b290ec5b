// Host launchers of the LRN family (declared in lrn.h, kernels in lrn.cuh): one
// thread per element, 1-D grid-stride.
#include "lrn.h"

#include "lrn.cuh"

namespace minidl {

template <class T>
void lrn_forward(uptr x, uptr y, uptr scale, int N, int C, int HW, int size, double alpha, double beta, double k,
                 uptr stream) {
    using V = compute_t<T>;
    MINIDL_LAUNCH(lrn_forward_kernel<T>, grid_1d((long long)N * C * HW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), mp<V>(scale), N, C, HW, size, V(alpha), V(beta), V(k));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(lrn_forward);
MINIDL_HALF_LAUNCHERS(lrn_forward,
                      (uptr x, uptr y, uptr scale, int N, int C, int HW, int size, double alpha, double beta,
                       double k, uptr stream),
                      (x, y, scale, N, C, HW, size, alpha, beta, k, stream))

template <class T>
void lrn_backward(uptr x, uptr y, uptr scale, uptr gy, uptr dx, int N, int C, int HW, int size, double alpha,
                  double beta, uptr stream) {
    using V = compute_t<T>;
    MINIDL_LAUNCH(lrn_backward_kernel<T>, grid_1d((long long)N * C * HW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), cp<T>(y), cp<V>(scale), cp<T>(gy), mp<T>(dx), N, C, HW, size, V(alpha), V(beta));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(lrn_backward);
MINIDL_HALF_LAUNCHERS(lrn_backward,
                      (uptr x, uptr y, uptr scale, uptr gy, uptr dx, int N, int C, int HW, int size, double alpha,
                       double beta, uptr stream),
                      (x, y, scale, gy, dx, N, C, HW, size, alpha, beta, stream))

}  // namespace minidl
