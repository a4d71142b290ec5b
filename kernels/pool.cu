// Host launchers of the pooling family (declared in pool.h, kernels in pool.cuh):
// 1-D grid-stride launches over output cells (forward) or input pixels (backward
// gathers), one warp per plane for the 1x1 adaptive average.
#include "pool.h"

#include "pool.cuh"

namespace minidl {

namespace {
long long planes(const PoolGeometry& g) { return (long long)g.N * g.C; }
}  // namespace

template <class T>
void max_pool2d_forward(uptr x, uptr y, uptr argmax, const PoolGeometry& g, uptr stream) {
    MINIDL_LAUNCH(max_pool2d_forward_kernel<T>, grid_1d(planes(g) * g.OH * g.OW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), mp<int>(argmax), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(max_pool2d_forward);

template <class T>
void max_pool2d_backward(uptr gy, uptr argmax, uptr dx, const PoolGeometry& g, uptr stream) {
    MINIDL_LAUNCH(max_pool2d_backward_kernel<T>, grid_1d(planes(g) * g.H * g.W, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), cp<int>(argmax), mp<T>(dx), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(max_pool2d_backward);

template <class T>
void avg_pool2d_forward(uptr x, uptr y, const PoolGeometry& g, bool count_include_pad, uptr stream) {
    MINIDL_LAUNCH(avg_pool2d_forward_kernel<T>, grid_1d(planes(g) * g.OH * g.OW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), g, count_include_pad);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(avg_pool2d_forward);

template <class T>
void avg_pool2d_backward(uptr gy, uptr dx, const PoolGeometry& g, bool count_include_pad, uptr stream) {
    MINIDL_LAUNCH(avg_pool2d_backward_kernel<T>, grid_1d(planes(g) * g.H * g.W, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), mp<T>(dx), g, count_include_pad);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(avg_pool2d_backward);

template <class T>
void adaptive_avg_pool2d_forward(uptr x, uptr y, const PoolGeometry& g, uptr stream) {
    MINIDL_LAUNCH(adaptive_avg_pool2d_forward_kernel<T>, grid_1d(planes(g) * g.OH * g.OW, kThreads), dim3(kThreads),
                  0, stream, cp<T>(x), mp<T>(y), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adaptive_avg_pool2d_forward);

template <class T>
void adaptive_avg_pool2d_backward(uptr gy, uptr dx, const PoolGeometry& g, uptr stream) {
    MINIDL_LAUNCH(adaptive_avg_pool2d_backward_kernel<T>, grid_1d(planes(g) * g.H * g.W, kThreads), dim3(kThreads),
                  0, stream, cp<T>(gy), mp<T>(dx), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adaptive_avg_pool2d_backward);

template <class T>
void adaptive_avg_pool2d_forward_1x1(uptr x, uptr y, const PoolGeometry& g, uptr stream) {
    MINIDL_LAUNCH(adaptive_avg_pool2d_forward_1x1_kernel<T>, dim3(ceil_div(planes(g), kThreads / kWarp)),
                  dim3(kThreads), 0, stream, cp<T>(x), mp<T>(y), (int)planes(g), g.H * g.W);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adaptive_avg_pool2d_forward_1x1);

}  // namespace minidl
