// Host launchers of the batch-norm family (declared in batchnorm.h, kernels in
// batchnorm.cuh): one block per channel for the statistics passes, grid-stride for
// the eval forward, one thread per channel for the running update.
#include "batchnorm.h"

#include "batchnorm.cuh"

namespace minidl {

namespace {
inline int channel_threads(long long M) { return M >= 8192 ? 512 : (M >= 1024 ? 256 : (M >= 128 ? 128 : 64)); }
}  // namespace

template <class T>
void batch_norm_train_forward(uptr x, uptr gamma, uptr beta, uptr y, uptr mean, uptr var, int N, int C, long long S,
                              double eps, uptr stream) {
    if (N == 0 || C == 0 || S == 0) return;
    MINIDL_LAUNCH(batch_norm_train_forward_kernel<T>, dim3(C), dim3(channel_threads((long long)N * S)), 0, stream,
                  cp<T>(x), cp<T>(gamma), cp<T>(beta), mp<T>(y), mp<T>(mean), mp<T>(var), N, C, S, T(eps));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_train_forward);

template <class T>
void batch_norm_eval_forward(uptr x, uptr gamma, uptr beta, uptr mean, uptr var, uptr y, int N, int C, long long S,
                             double eps, uptr stream) {
    long long total = (long long)N * C * S;
    MINIDL_LAUNCH(batch_norm_eval_forward_kernel<T>, grid_1d(total, 256), dim3(256), 0, stream, cp<T>(x),
                  cp<T>(gamma), cp<T>(beta), cp<T>(mean), cp<T>(var), mp<T>(y), total, C, S, T(eps));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_eval_forward);

template <class T>
void batch_norm_backward(uptr x, uptr gy, uptr gamma, uptr mean, uptr var, uptr dx, uptr dgamma, uptr dbeta, int N,
                         int C, long long S, double eps, uptr stream) {
    if (N == 0 || C == 0 || S == 0) return;
    MINIDL_LAUNCH(batch_norm_backward_kernel<T>, dim3(C), dim3(channel_threads((long long)N * S)), 0, stream,
                  cp<T>(x), cp<T>(gy), cp<T>(gamma), cp<T>(mean), cp<T>(var), mp<T>(dx), mp<T>(dgamma), mp<T>(dbeta),
                  N, C, S, T(eps));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_backward);

template <class T>
void batch_norm_update_running(uptr running_mean, uptr running_var, uptr mean, uptr var, int C, double momentum,
                               long long count, uptr stream) {
    double unbias = count > 1 ? double(count) / double(count - 1) : 1.0;
    MINIDL_LAUNCH(batch_norm_update_running_kernel<T>, dim3(ceil_div(C, 128)), dim3(128), 0, stream,
                  mp<T>(running_mean), mp<T>(running_var), cp<T>(mean), cp<T>(var), C, T(momentum), T(unbias));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_update_running);

}  // namespace minidl
