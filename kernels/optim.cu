// Host launcher of the fused SGD update (declared in optim.h, kernel in optim.cuh).
#include "optim.h"

#include "optim.cuh"

namespace minidl {

template <class T>
void sgd_update(uptr param, uptr grad, uptr buf, long long n, double lr, double momentum, double dampening,
                double weight_decay, bool nesterov, bool first_step, uptr stream) {
    MINIDL_LAUNCH(sgd_update_kernel<T>, grid_1d(n, 256), dim3(256), 0, stream, mp<T>(param), cp<T>(grad),
                  mp<T>(buf), n, T(lr), T(momentum), T(dampening), T(weight_decay), int(nesterov), int(first_step));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(sgd_update);

}  // namespace minidl
