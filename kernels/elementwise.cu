// Host launchers of the elementwise family (declared in elementwise.h, kernels in
// elementwise.cuh): 1-D grid-stride launches of kThreads-wide blocks, except the
// bias-add backward reduction (one block per channel).
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
void bias_add(uptr x, uptr b, uptr y, int N, int C, long long S, uptr stream) {
    long long total = (long long)N * C * S;
    MINIDL_LAUNCH(bias_add_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(x), cp<T>(b),
                  mp<T>(y), total, C, S);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(bias_add);

template <class T>
void bias_add_backward(uptr gy, uptr db, int N, int C, long long S, uptr stream) {
    long long per = (long long)N * S;
    int threads = per >= 4096 ? 512 : (per >= 256 ? 256 : 64);
    MINIDL_LAUNCH(bias_add_backward_kernel<T>, dim3(C), dim3(threads), 0, stream, cp<T>(gy), mp<T>(db), N, C, S);
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
