// Host launchers of the elementwise family (declared in elementwise.h, kernels in
// elementwise.cuh): 1-D grid-stride launches of kThreads-wide blocks, except bias-add
// and its backward (the per-channel map and reduction of channel.cuh).
#include "elementwise.h"

#include "elementwise.cuh"

namespace minidl {

// An activation's forward y = f(x) and backward gx = gy * f'(saved), saved being the
// forward input (the forward output for sigmoid).
#define MINIDL_ACTIVATION_LAUNCHERS(op)                                                                    \
    template <class T>                                                                                     \
    void op(uptr x, uptr y, long long n, uptr stream) {                                                    \
        MINIDL_LAUNCH(op##_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(x), mp<T>(y), n); \
    }                                                                                                      \
    template <class T>                                                                                     \
    void op##_backward(uptr saved, uptr gy, uptr gx, long long n, uptr stream) {                           \
        MINIDL_LAUNCH(op##_backward_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(saved), \
                      cp<T>(gy), mp<T>(gx), n);                                                            \
    }                                                                                                      \
    MINIDL_INSTANTIATE_FLOAT_DOUBLE(op);                                                                   \
    MINIDL_INSTANTIATE_FLOAT_DOUBLE(op##_backward)

MINIDL_ACTIVATION_LAUNCHERS(relu);
MINIDL_ACTIVATION_LAUNCHERS(relu6);
MINIDL_ACTIVATION_LAUNCHERS(sigmoid);
MINIDL_ACTIVATION_LAUNCHERS(silu);

template <class T>
void add_relu(uptr a, uptr b, uptr y, long long n, uptr stream) {
    MINIDL_LAUNCH(add_relu_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(a), cp<T>(b), mp<T>(y),
                  n);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(add_relu);

int channel_partials(int N, int C, long long S) { return plan_channel_tiles(N, C, S).chunks; }

template <class T>
void bias_add(uptr x, uptr b, uptr y, int N, int C, long long S, uptr stream) {
    launch_channel_map<T, Map::kAdd>(cp<T>(x), nullptr, cp<T>(b), mp<T>(y), N, C, S, stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(bias_add);

template <class T>
void bias_add_backward(uptr gy, uptr db, uptr work, int N, int C, long long S, uptr stream) {
    if (C == 0) return;
    if ((long long)N * S == 0)
        throw std::runtime_error("bias_add_backward: an empty batch has no reduction (the caller zero-fills)");
    launch_channel_sum<T>(cp<T>(gy), plan_channel_tiles(N, C, S), mp<T>(work), mp<T>(db), stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(bias_add_backward);

template <class T>
void dropout_apply(uptr x, uptr u, uptr y, uptr mask, long long n, double p, uptr stream) {
    T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
    MINIDL_LAUNCH(dropout_apply_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(x), cp<T>(u),
                  mp<T>(y), mp<T>(mask), n, T(p), scale);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(dropout_apply);

template <class T>
void dropout_backward(uptr gy, uptr mask, uptr gx, long long n, uptr stream) {
    MINIDL_LAUNCH(dropout_backward_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(gy),
                  cp<T>(mask), mp<T>(gx), n);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(dropout_backward);

}  // namespace minidl
