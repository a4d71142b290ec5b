// Host launchers of the softmax family (declared in softmax.h, kernels in
// softmax.cuh): one warp per row up to kWarpRowMaxK columns, one block per row beyond.
#include "softmax.h"

#include "softmax.cuh"

namespace minidl {

namespace {
constexpr int kWarpRowMaxK = kRowStage;   // up to this many columns: one warp per row
constexpr int kRowsPerBlock = kRowStageRows;  // warp variant: 128 threads = 4 rows
constexpr int kBlockThreads = 256;  // block variant
inline bool use_warp(int K) { return K <= kWarpRowMaxK; }
inline dim3 warp_grid(int N) { return dim3(ceil_div(N, kRowsPerBlock)); }
}  // namespace

template <class T>
void softmax_forward(uptr x, uptr y, int N, int K, bool log, uptr stream) {
    if (N == 0 || K == 0) return;
    if (use_warp(K))
        MINIDL_LAUNCH((softmax_forward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream, cp<T>(x),
                      mp<T>(y), N, K, int(log));
    else
        MINIDL_LAUNCH((softmax_forward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream, cp<T>(x), mp<T>(y),
                      N, K, int(log));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(softmax_forward);
MINIDL_HALF_LAUNCHERS(softmax_forward, (uptr x, uptr y, int N, int K, bool log, uptr stream), (x, y, N, K, log, stream))

template <class T>
void softmax_backward(uptr y, uptr gy, uptr gx, int N, int K, bool log, uptr stream) {
    if (N == 0 || K == 0) return;
    if (use_warp(K))
        MINIDL_LAUNCH((softmax_backward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream,
                      cp<T>(y), cp<T>(gy), mp<T>(gx), N, K, int(log));
    else
        MINIDL_LAUNCH((softmax_backward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream, cp<T>(y),
                      cp<T>(gy), mp<T>(gx), N, K, int(log));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(softmax_backward);
MINIDL_HALF_LAUNCHERS(softmax_backward, (uptr y, uptr gy, uptr gx, int N, int K, bool log, uptr stream),
                      (y, gy, gx, N, K, log, stream))

template <class T>
void cross_entropy_forward(uptr logits, uptr labels, uptr loss, uptr logp, int N, int K, double smoothing,
                           uptr stream) {
    using V = compute_t<T>;
    if (N == 0 || K == 0) return;
    const long long* lab = reinterpret_cast<const long long*>(labels);
    if (use_warp(K))
        MINIDL_LAUNCH((cross_entropy_forward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream,
                      cp<T>(logits), lab, mp<V>(loss), mp<V>(logp), N, K, V(smoothing));
    else
        MINIDL_LAUNCH((cross_entropy_forward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream,
                      cp<T>(logits), lab, mp<V>(loss), mp<V>(logp), N, K, V(smoothing));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(cross_entropy_forward);
MINIDL_HALF_LAUNCHERS(cross_entropy_forward,
                      (uptr logits, uptr labels, uptr loss, uptr logp, int N, int K, double smoothing, uptr stream),
                      (logits, labels, loss, logp, N, K, smoothing, stream))

template <class T>
void cross_entropy_backward(uptr logp, uptr labels, uptr grad_row, uptr dx, int N, int K, double smoothing,
                            uptr stream) {
    if (N == 0 || K == 0) return;
    const long long* lab = reinterpret_cast<const long long*>(labels);
    if (use_warp(K))
        MINIDL_LAUNCH((cross_entropy_backward_kernel<T, true>), warp_grid(N), dim3(32 * kRowsPerBlock), 0, stream,
                      cp<T>(logp), lab, cp<T>(grad_row), mp<T>(dx), N, K, T(smoothing));
    else
        MINIDL_LAUNCH((cross_entropy_backward_kernel<T, false>), dim3(N), dim3(kBlockThreads), 0, stream,
                      cp<T>(logp), lab, cp<T>(grad_row), mp<T>(dx), N, K, T(smoothing));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(cross_entropy_backward);

}  // namespace minidl
