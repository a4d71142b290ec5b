// Host launcher of the fused SGD update (kernel in optim.cuh); bound as
// optim_sgd_update_f32 / _f64.  buf may be 0 when momentum == 0.
#include "optim.cuh"

namespace minidl {

template <class T>
void optim_sgd_update(std::uintptr_t param, std::uintptr_t grad, std::uintptr_t buf, long long n, double lr,
                      double momentum, double dampening, double weight_decay, bool nesterov, bool first_step,
                      std::uintptr_t stream) {
    MINIDL_LAUNCH(sgd_update_kernel<T>, grid_1d(n, 256), dim3(256), 0, stream, reinterpret_cast<T*>(param),
                  reinterpret_cast<const T*>(grad), reinterpret_cast<T*>(buf), n, T(lr), T(momentum), T(dampening),
                  T(weight_decay), int(nesterov), int(first_step));
}

template void optim_sgd_update<float>(std::uintptr_t, std::uintptr_t, std::uintptr_t, long long, double, double,
                                      double, double, bool, bool, std::uintptr_t);
template void optim_sgd_update<double>(std::uintptr_t, std::uintptr_t, std::uintptr_t, long long, double, double,
                                       double, double, bool, bool, std::uintptr_t);

}  // namespace minidl
