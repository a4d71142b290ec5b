// Host launchers of the softmax family (kernels in softmax.cuh): bound as
// softmax_forward_f32, softmax_backward_f32, softmax_cross_entropy_forward_f32,
// softmax_cross_entropy_backward_f32 (and _f64).  Labels are an int64 pointer.
#include "softmax.cuh"

namespace minidl {

namespace {
constexpr int kWarpRowMaxK = 1024;  // up to this many columns: one warp per row
constexpr int kRowsPerBlock = 4;    // warp variant: 128 threads = 4 rows
constexpr int kBlockThreads = 256;  // block variant
inline bool use_warp(int K) { return K <= kWarpRowMaxK; }
inline dim3 warp_grid(int N) { return dim3(ceil_div(N, kRowsPerBlock)); }
}  // namespace

template <class T>
void softmax_forward(std::uintptr_t x, std::uintptr_t y, int N, int K, bool log, std::uintptr_t stream) {
    if (N == 0 || K == 0) return;
    if (use_warp(K))
        MINIDL_LAUNCH((softmax_forward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream, cp<T>(x),
                      mp<T>(y), N, K, int(log));
    else
        MINIDL_LAUNCH((softmax_forward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream, cp<T>(x), mp<T>(y),
                      N, K, int(log));
}

template <class T>
void softmax_backward(std::uintptr_t y, std::uintptr_t gy, std::uintptr_t gx, int N, int K, bool log,
                      std::uintptr_t stream) {
    if (N == 0 || K == 0) return;
    if (use_warp(K))
        MINIDL_LAUNCH((softmax_backward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream,
                      cp<T>(y), cp<T>(gy), mp<T>(gx), N, K, int(log));
    else
        MINIDL_LAUNCH((softmax_backward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream, cp<T>(y),
                      cp<T>(gy), mp<T>(gx), N, K, int(log));
}

template <class T>
void softmax_cross_entropy_forward(std::uintptr_t logits, std::uintptr_t labels, std::uintptr_t loss,
                                   std::uintptr_t logp, int N, int K, double smoothing, std::uintptr_t stream) {
    if (N == 0 || K == 0) return;
    const long long* lab = reinterpret_cast<const long long*>(labels);
    if (use_warp(K))
        MINIDL_LAUNCH((cross_entropy_forward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream,
                      cp<T>(logits), lab, mp<T>(loss), mp<T>(logp), N, K, T(smoothing));
    else
        MINIDL_LAUNCH((cross_entropy_forward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream,
                      cp<T>(logits), lab, mp<T>(loss), mp<T>(logp), N, K, T(smoothing));
}

template <class T>
void softmax_cross_entropy_backward(std::uintptr_t logp, std::uintptr_t labels, std::uintptr_t grad_row,
                                    std::uintptr_t dx, int N, int K, double smoothing, std::uintptr_t stream) {
    if (N == 0 || K == 0) return;
    const long long* lab = reinterpret_cast<const long long*>(labels);
    if (use_warp(K))
        MINIDL_LAUNCH((cross_entropy_backward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream,
                      cp<T>(logp), lab, cp<T>(grad_row), mp<T>(dx), N, K, T(smoothing));
    else
        MINIDL_LAUNCH((cross_entropy_backward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream,
                      cp<T>(logp), lab, cp<T>(grad_row), mp<T>(dx), N, K, T(smoothing));
}

#define MINIDL_INSTANTIATE(T)                                                                                      \
    template void softmax_forward<T>(std::uintptr_t, std::uintptr_t, int, int, bool, std::uintptr_t);             \
    template void softmax_backward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, bool,            \
                                      std::uintptr_t);                                                             \
    template void softmax_cross_entropy_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t, \
                                                   int, int, double, std::uintptr_t);                              \
    template void softmax_cross_entropy_backward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t,               \
                                                    std::uintptr_t, int, int, double, std::uintptr_t);
MINIDL_INSTANTIATE(float)
MINIDL_INSTANTIATE(double)

}  // namespace minidl
