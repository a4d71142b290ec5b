// Host launchers of the batch-norm family (declared in batchnorm.h, kernels in
// batchnorm.cuh and channel.cuh).  Train forward: statistics reduction -> finalize
// (stats, coefficients, running update) -> normalizing map; backward: gradient
// reduction -> finalize (dgamma, dbeta, dx coefficients) -> dx map.
#include "batchnorm.h"

#include "batchnorm.cuh"

namespace minidl {

namespace {
constexpr int kChannelThreads = 128;  // finalize kernels: a thread per channel

}  // namespace

template <class T>
void batch_norm_train_forward(uptr x, uptr gamma, uptr beta, uptr y, uptr mean, uptr var, uptr running_mean,
                              uptr running_var, uptr work, int N, int C, long long S, double eps, double momentum,
                              int relu, uptr stream) {
    if (N == 0 || C == 0 || S == 0) return;
    using V = compute_t<T>;
    const ChannelTiles t = plan_channel_tiles(N, C, S);
    V* partial = mp<V>(work);
    V* coef = partial + 2LL * t.chunks * C;
    launch_channel_reduce<T, Reduce::kShiftedSq>(cp<T>(x), nullptr, nullptr, t, partial,
                                                 partial + (long long)t.chunks * C, stream);
    MINIDL_LAUNCH(batch_norm_finalize_stats_kernel<V>, dim3(ceil_div(C, kChannelThreads)), dim3(kChannelThreads), 0,
                  stream, partial, partial + (long long)t.chunks * C, cp<V>(gamma), cp<V>(beta), t, eps, mp<V>(mean),
                  mp<V>(var), coef, mp<V>(running_mean), mp<V>(running_var), momentum);
    if (relu)
        launch_channel_map<T, Map::kAffineRelu>(cp<T>(x), nullptr, coef, mp<T>(y), N, C, S, stream);
    else
        launch_channel_map<T, Map::kAffine>(cp<T>(x), nullptr, coef, mp<T>(y), N, C, S, stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_train_forward);
MINIDL_HALF_LAUNCHERS(batch_norm_train_forward,
                      (uptr x, uptr gamma, uptr beta, uptr y, uptr mean, uptr var, uptr running_mean,
                       uptr running_var, uptr work, int N, int C, long long S, double eps, double momentum, int relu,
                       uptr stream),
                      (x, gamma, beta, y, mean, var, running_mean, running_var, work, N, C, S, eps, momentum, relu,
                       stream));

template <class T>
void batch_norm_eval_forward(uptr x, uptr gamma, uptr beta, uptr mean, uptr var, uptr y, uptr work, int N, int C,
                             long long S, double eps, int relu, uptr stream) {
    if (N == 0 || C == 0 || S == 0) return;
    using V = compute_t<T>;
    V* coef = mp<V>(work);
    MINIDL_LAUNCH(batch_norm_affine_coefficients_kernel<V>, dim3(ceil_div(C, kChannelThreads)),
                  dim3(kChannelThreads), 0, stream, cp<V>(gamma), cp<V>(beta), cp<V>(mean), cp<V>(var), C, eps, coef,
                  coef + C, static_cast<V*>(nullptr));
    if (relu)
        launch_channel_map<T, Map::kAffineRelu>(cp<T>(x), nullptr, coef, mp<T>(y), N, C, S, stream);
    else
        launch_channel_map<T, Map::kAffine>(cp<T>(x), nullptr, coef, mp<T>(y), N, C, S, stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_eval_forward);
MINIDL_HALF_LAUNCHERS(batch_norm_eval_forward,
                      (uptr x, uptr gamma, uptr beta, uptr mean, uptr var, uptr y, uptr work, int N, int C,
                       long long S, double eps, int relu, uptr stream),
                      (x, gamma, beta, mean, var, y, work, N, C, S, eps, relu, stream));

template <class T>
void batch_norm_backward(uptr x, uptr gy, uptr gamma, uptr beta, uptr mean, uptr var, uptr dx, uptr dgamma,
                         uptr dbeta, uptr work, int N, int C, long long S, double eps, int relu, uptr stream) {
    if (N == 0 || C == 0 || S == 0) return;
    using V = compute_t<T>;
    const ChannelTiles t = plan_channel_tiles(N, C, S);
    V* partial = mp<V>(work);
    V* coef = partial + 2LL * t.chunks * C;  // a, b, d of dx; then the ReLU mask's scale, shift
    V* reduce_coef = coef + 2LL * C;         // mean, scale, shift for the reduction (rows 2..4)
    const dim3 channel_grid(ceil_div(C, kChannelThreads)), channel_block(kChannelThreads);
    if (relu) {
        // rows 3, 4 = the forward's scale and shift (the mask); row 2 = mean until the
        // finalize overwrites it with d, after the reduction has read it
        MINIDL_LAUNCH(batch_norm_affine_coefficients_kernel<V>, channel_grid, channel_block, 0, stream, cp<V>(gamma),
                      cp<V>(beta), cp<V>(mean), cp<V>(var), C, eps, coef + 3LL * C, coef + 4LL * C, reduce_coef);
        launch_channel_reduce<T, Reduce::kGradStatsRelu>(cp<T>(x), cp<T>(gy), reduce_coef, t, partial,
                                                         partial + (long long)t.chunks * C, stream);
    } else {
        launch_channel_reduce<T, Reduce::kGradStats>(cp<T>(x), cp<T>(gy), cp<V>(mean), t, partial,
                                                     partial + (long long)t.chunks * C, stream);
    }
    MINIDL_LAUNCH(batch_norm_finalize_backward_kernel<V>, channel_grid, channel_block, 0, stream, partial,
                  partial + (long long)t.chunks * C, cp<V>(gamma), cp<V>(mean), cp<V>(var), t, eps, mp<V>(dgamma),
                  mp<V>(dbeta), coef);
    if (relu)
        launch_channel_map<T, Map::kGradAffineRelu>(cp<T>(x), cp<T>(gy), coef, mp<T>(dx), N, C, S, stream);
    else
        launch_channel_map<T, Map::kGradAffine>(cp<T>(x), cp<T>(gy), coef, mp<T>(dx), N, C, S, stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_backward);
MINIDL_HALF_LAUNCHERS(batch_norm_backward,
                      (uptr x, uptr gy, uptr gamma, uptr beta, uptr mean, uptr var, uptr dx, uptr dgamma,
                       uptr dbeta, uptr work, int N, int C, long long S, double eps, int relu, uptr stream),
                      (x, gy, gamma, beta, mean, var, dx, dgamma, dbeta, work, N, C, S, eps, relu, stream));

template <class T>
void batch_norm_update_running(uptr running_mean, uptr running_var, uptr mean, uptr var, int C, double momentum,
                               long long count, uptr stream) {
    double unbias = count > 1 ? double(count) / double(count - 1) : 1.0;
    MINIDL_LAUNCH(batch_norm_update_running_kernel<T>, dim3(ceil_div(C, kChannelThreads)), dim3(kChannelThreads), 0,
                  stream, mp<T>(running_mean), mp<T>(running_var), cp<T>(mean), cp<T>(var), C, T(momentum),
                  T(unbias));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(batch_norm_update_running);

}  // namespace minidl
