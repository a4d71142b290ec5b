// Host launchers of the batch-norm family (kernels in batchnorm.cuh): bound as
// batchnorm_{train_forward,eval_forward,backward,update_running}_f32 / _f64.
#include "batchnorm.cuh"

namespace minidl {

namespace {
inline int channel_threads(long long M) { return M >= 8192 ? 512 : (M >= 1024 ? 256 : (M >= 128 ? 128 : 64)); }
}  // namespace

template <class T>
void batchnorm_train_forward(std::uintptr_t x, std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t y,
                             std::uintptr_t mean, std::uintptr_t var, int N, int C, long long S, double eps,
                             std::uintptr_t stream) {
    if (N == 0 || C == 0 || S == 0) return;
    MINIDL_LAUNCH(bn_train_forward_kernel<T>, dim3(C), dim3(channel_threads((long long)N * S)), 0, stream, cp<T>(x),
                  cp<T>(gamma), cp<T>(beta), mp<T>(y), mp<T>(mean), mp<T>(var), N, C, S, T(eps));
}

template <class T>
void batchnorm_eval_forward(std::uintptr_t x, std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t mean,
                            std::uintptr_t var, std::uintptr_t y, int N, int C, long long S, double eps,
                            std::uintptr_t stream) {
    long long total = (long long)N * C * S;
    MINIDL_LAUNCH(bn_eval_forward_kernel<T>, grid_1d(total, 256), dim3(256), 0, stream, cp<T>(x), cp<T>(gamma),
                  cp<T>(beta), cp<T>(mean), cp<T>(var), mp<T>(y), total, C, S, T(eps));
}

template <class T>
void batchnorm_backward(std::uintptr_t x, std::uintptr_t gy, std::uintptr_t gamma, std::uintptr_t mean,
                        std::uintptr_t var, std::uintptr_t dx, std::uintptr_t dgamma, std::uintptr_t dbeta, int N,
                        int C, long long S, double eps, std::uintptr_t stream) {
    if (N == 0 || C == 0 || S == 0) return;
    MINIDL_LAUNCH(bn_backward_kernel<T>, dim3(C), dim3(channel_threads((long long)N * S)), 0, stream, cp<T>(x),
                  cp<T>(gy), cp<T>(gamma), cp<T>(mean), cp<T>(var), mp<T>(dx), mp<T>(dgamma), mp<T>(dbeta), N, C, S,
                  T(eps));
}

template <class T>
void batchnorm_update_running(std::uintptr_t running_mean, std::uintptr_t running_var, std::uintptr_t mean,
                              std::uintptr_t var, int C, double momentum, long long count, std::uintptr_t stream) {
    double unbias = count > 1 ? double(count) / double(count - 1) : 1.0;
    MINIDL_LAUNCH(bn_update_running_kernel<T>, dim3(ceil_div(C, 128)), dim3(128), 0, stream, mp<T>(running_mean),
                  mp<T>(running_var), cp<T>(mean), cp<T>(var), C, T(momentum), T(unbias));
}

#define MINIDL_INSTANTIATE(T)                                                                                     \
    template void batchnorm_train_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t,    \
                                             std::uintptr_t, std::uintptr_t, int, int, long long, double,         \
                                             std::uintptr_t);                                                     \
    template void batchnorm_eval_forward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t,     \
                                            std::uintptr_t, std::uintptr_t, int, int, long long, double,          \
                                            std::uintptr_t);                                                      \
    template void batchnorm_backward<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t,          \
                                        std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t, int, int, \
                                        long long, double, std::uintptr_t);                                       \
    template void batchnorm_update_running<T>(std::uintptr_t, std::uintptr_t, std::uintptr_t, std::uintptr_t, int, \
                                              double, long long, std::uintptr_t);
MINIDL_INSTANTIATE(float)
MINIDL_INSTANTIATE(double)

}  // namespace minidl
