// Host launchers of the pooling family (kernels in pool.cuh).  Pointers are device
// addresses passed as uintptr_t; P = N*C planes; argmax is int32.  Explicit float and
// double instantiations are bound in bindings.cpp as pool_<op>_f32 / _f64.
#include "pool.cuh"

#define MINIDL_POOL_GEOM_PARAMS int P, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw
#define MINIDL_POOL_GEOM PoolGeom{P, H, W, OH, OW, kh, kw, sh, sw, ph, pw}

namespace minidl {

template <class T>
void pool_max_forward(std::uintptr_t x, std::uintptr_t y, std::uintptr_t argmax, MINIDL_POOL_GEOM_PARAMS,
                      std::uintptr_t stream) {
    MINIDL_LAUNCH(max_pool_fwd_kernel<T>, grid_1d((long long)P * OH * OW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), mp<int>(argmax), MINIDL_POOL_GEOM);
}

template <class T>
void pool_max_backward(std::uintptr_t gy, std::uintptr_t argmax, std::uintptr_t dx, MINIDL_POOL_GEOM_PARAMS,
                       std::uintptr_t stream) {
    MINIDL_LAUNCH(max_pool_bwd_kernel<T>, grid_1d((long long)P * H * W, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), cp<int>(argmax), mp<T>(dx), MINIDL_POOL_GEOM);
}

template <class T>
void pool_avg_forward(std::uintptr_t x, std::uintptr_t y, MINIDL_POOL_GEOM_PARAMS, bool count_include_pad,
                      std::uintptr_t stream) {
    MINIDL_LAUNCH(avg_pool_fwd_kernel<T>, grid_1d((long long)P * OH * OW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), MINIDL_POOL_GEOM, count_include_pad);
}

template <class T>
void pool_avg_backward(std::uintptr_t gy, std::uintptr_t dx, MINIDL_POOL_GEOM_PARAMS, bool count_include_pad,
                       std::uintptr_t stream) {
    MINIDL_LAUNCH(avg_pool_bwd_kernel<T>, grid_1d((long long)P * H * W, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), mp<T>(dx), MINIDL_POOL_GEOM, count_include_pad);
}

template <class T>
void pool_adaptive_avg_forward(std::uintptr_t x, std::uintptr_t y, int P, int H, int W, int OH, int OW,
                               std::uintptr_t stream) {
    const PoolGeom g{P, H, W, OH, OW, 0, 0, 0, 0, 0, 0};
    MINIDL_LAUNCH(adaptive_avg_fwd_kernel<T>, grid_1d((long long)P * OH * OW, kThreads), dim3(kThreads), 0,
                  stream, cp<T>(x), mp<T>(y), g);
}

template <class T>
void pool_adaptive_avg_backward(std::uintptr_t gy, std::uintptr_t dx, int P, int H, int W, int OH, int OW,
                                std::uintptr_t stream) {
    const PoolGeom g{P, H, W, OH, OW, 0, 0, 0, 0, 0, 0};
    MINIDL_LAUNCH(adaptive_avg_bwd_kernel<T>, grid_1d((long long)P * H * W, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), mp<T>(dx), g);
}

template <class T>
void pool_global_avg_forward(std::uintptr_t x, std::uintptr_t y, int P, int HW, std::uintptr_t stream) {
    MINIDL_LAUNCH(global_avg_fwd_kernel<T>, dim3(ceil_div(P, kThreads / kWarp)), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), P, HW);
}

#define MINIDL_GEOM_TYPES int, int, int, int, int, int, int, int, int, int, int
#define MINIDL_INSTANTIATE(T)                                                                                     \
    template void pool_max_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, MINIDL_GEOM_TYPES,          \
                                      std::uintptr_t);                                                           \
    template void pool_max_backward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, MINIDL_GEOM_TYPES,         \
                                       std::uintptr_t);                                                          \
    template void pool_avg_forward<T>(std::uintptr_t, std::uintptr_t, MINIDL_GEOM_TYPES, bool, std::uintptr_t);   \
    template void pool_avg_backward<T>(std::uintptr_t, std::uintptr_t, MINIDL_GEOM_TYPES, bool, std::uintptr_t);  \
    template void pool_adaptive_avg_forward<T>(std::uintptr_t, std::uintptr_t, int, int, int, int, int,           \
                                               std::uintptr_t);                                                  \
    template void pool_adaptive_avg_backward<T>(std::uintptr_t, std::uintptr_t, int, int, int, int, int,          \
                                                std::uintptr_t);                                                 \
    template void pool_global_avg_forward<T>(std::uintptr_t, std::uintptr_t, int, int, std::uintptr_t);
MINIDL_INSTANTIATE(float)
MINIDL_INSTANTIATE(double)

}  // namespace minidl
