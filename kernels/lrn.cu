// Host launchers of the LRN family (declared in lrn.h, kernels in lrn.cuh): one
// thread per element, 1-D grid-stride.
#include "lrn.h"

#include "lrn.cuh"

namespace minidl {

template <class T>
void lrn_forward(uptr x, uptr y, uptr scale, int N, int C, int HW, int size, double alpha, double beta, double k,
                 uptr stream) {
    MINIDL_LAUNCH(lrn_forward_kernel<T>, grid_1d((long long)N * C * HW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), mp<T>(scale), N, C, HW, size, T(alpha), T(beta), T(k));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(lrn_forward);

template <class T>
void lrn_backward(uptr x, uptr y, uptr scale, uptr gy, uptr dx, int N, int C, int HW, int size, double alpha,
                  double beta, uptr stream) {
    MINIDL_LAUNCH(lrn_backward_kernel<T>, grid_1d((long long)N * C * HW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), cp<T>(y), cp<T>(scale), cp<T>(gy), mp<T>(dx), N, C, HW, size, T(alpha), T(beta));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(lrn_backward);

}  // namespace minidl
