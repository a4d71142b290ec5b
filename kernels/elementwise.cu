// Host launchers of the elementwise family (declared in elementwise.h, kernels in
// elementwise.cuh): elementwise_map_kernel for every op with one output, dropout's
// mask-apply as a 1-D grid-stride launch, bias-add and its backward as the per-channel
// map and reduction of channel.cuh.
#include "elementwise.h"

#include "elementwise.cuh"

namespace minidl {

namespace {

// elementwise_map_kernel with the widest vector every pointer's alignment allows and
// the narrowest index that holds n.
template <class T, class Op, bool Binary>
void launch_map(const char* name, const T* a, const T* b, T* out, long long n, uptr stream) {
    if (n <= 0) return;
    constexpr int kV = 16 / (int)sizeof(T);
    const bool aligned = ((reinterpret_cast<uptr>(a) | reinterpret_cast<uptr>(b) | reinterpret_cast<uptr>(out)) % 16) == 0;
    const int v = aligned ? kV : 1;
    const dim3 grid = grid_1d(ceil_div(n, (long long)v * kMapUnroll), kThreads);
    const bool narrow = n < (1LL << 30);  // index + grid stride stay below 2^31
    if (aligned && narrow)
        launch_named(name, elementwise_map_kernel<T, kV, int, Op, Binary>, grid, dim3(kThreads), 0, stream, a, b, out,
                     (int)n, Op());
    else if (aligned)
        launch_named(name, elementwise_map_kernel<T, kV, long long, Op, Binary>, grid, dim3(kThreads), 0, stream, a,
                     b, out, n, Op());
    else if (narrow)
        launch_named(name, elementwise_map_kernel<T, 1, int, Op, Binary>, grid, dim3(kThreads), 0, stream, a, b, out,
                     (int)n, Op());
    else
        launch_named(name, elementwise_map_kernel<T, 1, long long, Op, Binary>, grid, dim3(kThreads), 0, stream, a, b,
                     out, n, Op());
}
}  // namespace

// An activation's forward y = f(x) and backward gx = gy * f'(saved), saved being the
// forward input (the forward output for sigmoid).
#define MINIDL_ACTIVATION_LAUNCHERS(op, Forward, Backward)                                                            \
    template <class T>                                                                                                \
    void op(uptr x, uptr y, long long n, uptr stream) {                                                               \
        launch_map<T, Forward<compute_t<T>>, false>("elementwise_map_kernel<" #Forward ">", cp<T>(x), nullptr,       \
                                                    mp<T>(y), n, stream);                                             \
    }                                                                                                                 \
    template <class T>                                                                                                \
    void op##_backward(uptr saved, uptr gy, uptr gx, long long n, uptr stream) {                                      \
        launch_map<T, Backward<compute_t<T>>, true>("elementwise_map_kernel<" #Backward ">", cp<T>(saved),          \
                                                    cp<T>(gy), mp<T>(gx), n, stream);                                 \
    }                                                                                                                 \
    MINIDL_INSTANTIATE_FLOAT_DOUBLE(op);                                                                              \
    MINIDL_INSTANTIATE_FLOAT_DOUBLE(op##_backward);                                                                   \
    MINIDL_HALF_LAUNCHERS(op, (uptr x, uptr y, long long n, uptr stream), (x, y, n, stream));                          \
    MINIDL_HALF_LAUNCHERS(op##_backward, (uptr s, uptr gy, uptr gx, long long n, uptr stream), (s, gy, gx, n, stream))

MINIDL_ACTIVATION_LAUNCHERS(relu, Relu, ReluBackward);
MINIDL_ACTIVATION_LAUNCHERS(relu6, Relu6, Relu6Backward);
MINIDL_ACTIVATION_LAUNCHERS(sigmoid, Sigmoid, SigmoidBackward);
MINIDL_ACTIVATION_LAUNCHERS(silu, Silu, SiluBackward);

template <class T>
void add_relu(uptr a, uptr b, uptr y, long long n, uptr stream) {
    launch_map<T, AddRelu<compute_t<T>>, true>("elementwise_map_kernel<AddRelu>", cp<T>(a), cp<T>(b), mp<T>(y), n,
                                               stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(add_relu);
MINIDL_HALF_LAUNCHERS(add_relu, (uptr a, uptr b, uptr y, long long n, uptr stream), (a, b, y, n, stream));

int channel_partials(int N, int C, long long S) { return plan_channel_tiles(N, C, S).chunks; }

template <class T>
void bias_add(uptr x, uptr b, uptr y, int N, int C, long long S, uptr stream) {
    launch_channel_map<T, Map::kAdd>(cp<T>(x), nullptr, cp<compute_t<T>>(b), mp<T>(y), N, C, S, stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(bias_add);
MINIDL_HALF_LAUNCHERS(bias_add, (uptr x, uptr b, uptr y, int N, int C, long long S, uptr stream),
                      (x, b, y, N, C, S, stream));

template <class T>
void bias_add_backward(uptr gy, uptr db, uptr work, int N, int C, long long S, uptr stream) {
    if (C == 0) return;
    if ((long long)N * S == 0)
        throw std::runtime_error("bias_add_backward: an empty batch has no reduction (the caller zero-fills)");
    launch_channel_sum<T>(cp<T>(gy), plan_channel_tiles(N, C, S), mp<compute_t<T>>(work), mp<T>(db), stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(bias_add_backward);
MINIDL_HALF_LAUNCHERS(bias_add_backward, (uptr gy, uptr db, uptr work, int N, int C, long long S, uptr stream),
                      (gy, db, work, N, C, S, stream));

template <class T>
void dropout_apply(uptr x, uptr u, uptr y, uptr mask, long long n, double p, uptr stream) {
    T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
    MINIDL_LAUNCH(dropout_apply_kernel<T>, grid_1d(n, kThreads), dim3(kThreads), 0, stream, cp<T>(x), cp<T>(u),
                  mp<T>(y), mp<T>(mask), n, T(p), scale);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(dropout_apply);

template <class T>
void dropout_backward(uptr gy, uptr mask, uptr gx, long long n, uptr stream) {
    launch_map<T, Mul<T>, true>("elementwise_map_kernel<Mul>", cp<T>(gy), cp<T>(mask), mp<T>(gx), n, stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(dropout_backward);

}  // namespace minidl
