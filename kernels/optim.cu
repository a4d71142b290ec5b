// Host launchers of the fused multi-tensor optimizer updates (declared in optim.h,
// kernels in optim.cuh): each packs its tensor lists into TensorList kernel arguments,
// as many launches as kListTensors / kListBlocks require.
#include "optim.h"

#include <cmath>
#include <initializer_list>

#include "optim.cuh"

namespace minidl {

namespace {

// Calls launch(list, blocks) for consecutive pieces of the tensors: arrays[a][k] is
// array a of tensor k (an empty list: nullptr for every tensor).  A tensor whose
// chunks outrun a launch's blocks goes on in the next launch from slot 0.
template <int A, class Launch>
void for_each_tensor_list(const char* op, std::initializer_list<const Addresses*> arrays, const Sizes& sizes,
                          Launch&& launch) {
    for (const Addresses* a : arrays)
        if (!a->empty() && a->size() != sizes.size())
            throw std::invalid_argument(std::string(op) + ": expected " + std::to_string(sizes.size()) +
                                        " addresses per list (one per tensor), got " + std::to_string(a->size()));
    TensorList<A> tl{};
    int slots = 0, blocks = 0;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
        if (sizes[k] <= 0) continue;
        int slot = slots, a = 0;
        for (const Addresses* list : arrays)
            tl.ptr[a++][slot] = list->empty() ? nullptr : reinterpret_cast<void*>((*list)[k]);
        tl.size[slot] = sizes[k];
        const long long chunks = (sizes[k] + kChunk - 1) / kChunk;
        for (long long c = 0; c < chunks; ++c) {
            tl.block_tensor[blocks] = (unsigned char)slot;
            tl.block_chunk[blocks] = (int)c;
            ++blocks;
            const bool last = c + 1 == chunks;
            if (blocks == kListBlocks || (last && slot + 1 == kListTensors)) {
                launch(tl, blocks);
                blocks = 0;
                if (last) {
                    slot = -1;
                } else {  // the rest of this tensor opens the next list
                    for (int i = 0; i < A; ++i) tl.ptr[i][0] = tl.ptr[i][slot];
                    tl.size[0] = tl.size[slot];
                    slot = 0;
                }
            }
        }
        slots = slot + 1;
    }
    if (blocks > 0) launch(tl, blocks);
}
}  // namespace

template <class T>
void sgd_update(const Addresses& params, const Addresses& grads, const Addresses& bufs, const Sizes& sizes,
                double lr, double momentum, double dampening, double weight_decay, int nesterov, int first_step,
                uptr skip, uptr stream) {
    using V = compute_t<T>;
    if (momentum != 0.0 && bufs.empty()) throw std::invalid_argument("sgd_update: momentum needs buffers");
    for_each_tensor_list<3>("sgd_update", {&params, &grads, &bufs}, sizes, [&](const TensorList<3>& tl, int blocks) {
        MINIDL_LAUNCH(sgd_update_kernel<T>, dim3(blocks), dim3(kOptimThreads), 0, stream, tl, V(lr), V(momentum),
                      V(dampening), V(weight_decay), nesterov, first_step, cp<float>(skip));
    });
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(sgd_update);
MINIDL_HALF_LAUNCHERS(sgd_update,
                      (const Addresses& params, const Addresses& grads, const Addresses& bufs, const Sizes& sizes,
                       double lr, double momentum, double dampening, double weight_decay, int nesterov,
                       int first_step, uptr skip, uptr stream),
                      (params, grads, bufs, sizes, lr, momentum, dampening, weight_decay, nesterov, first_step, skip,
                       stream))

template <class T>
void adam_update(const Addresses& params, const Addresses& grads, const Addresses& exp_avgs,
                 const Addresses& exp_avg_sqs, const Addresses& max_exp_avg_sqs, const Sizes& sizes, double lr,
                 double beta1, double beta2, double eps, double weight_decay, int decoupled, long long step,
                 uptr skip, uptr stream) {
    using V = compute_t<T>;
    if (step < 1) throw std::invalid_argument("adam_update: expected step >= 1, got " + std::to_string(step));
    const double bias1 = 1.0 - std::pow(beta1, (double)step), bias2 = 1.0 - std::pow(beta2, (double)step);
    for_each_tensor_list<5>("adam_update", {&params, &grads, &exp_avgs, &exp_avg_sqs, &max_exp_avg_sqs}, sizes,
                            [&](const TensorList<5>& tl, int blocks) {
                                MINIDL_LAUNCH(adam_update_kernel<T>, dim3(blocks), dim3(kOptimThreads), 0, stream, tl,
                                              V(lr), V(beta1), V(beta2), V(eps), V(weight_decay), decoupled,
                                              V(lr / bias1), V(1.0 / std::sqrt(bias2)), cp<float>(skip));
                            });
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adam_update);
MINIDL_HALF_LAUNCHERS(adam_update,
                      (const Addresses& params, const Addresses& grads, const Addresses& exp_avgs,
                       const Addresses& exp_avg_sqs, const Addresses& max_exp_avg_sqs, const Sizes& sizes, double lr,
                       double beta1, double beta2, double eps, double weight_decay, int decoupled, long long step,
                       uptr skip, uptr stream),
                      (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, sizes, lr, beta1, beta2, eps,
                       weight_decay, decoupled, step, skip, stream))

template <class T>
void rmsprop_update(const Addresses& params, const Addresses& grads, const Addresses& square_avgs,
                    const Addresses& grad_avgs, const Addresses& bufs, const Sizes& sizes, double lr, double alpha,
                    double eps, double momentum, double weight_decay, int eps_inside_sqrt, uptr skip, uptr stream) {
    using V = compute_t<T>;
    for_each_tensor_list<5>("rmsprop_update", {&params, &grads, &square_avgs, &grad_avgs, &bufs}, sizes,
                            [&](const TensorList<5>& tl, int blocks) {
                                MINIDL_LAUNCH(rmsprop_update_kernel<T>, dim3(blocks), dim3(kOptimThreads), 0, stream,
                                              tl, V(lr), V(alpha), V(eps), V(momentum), V(weight_decay),
                                              eps_inside_sqrt, cp<float>(skip));
                            });
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(rmsprop_update);

template <class T>
void amp_unscale(const Addresses& grads, const Sizes& sizes, uptr inv_scale, uptr found_inf, uptr stream) {
    for_each_tensor_list<1>("amp_unscale", {&grads}, sizes, [&](const TensorList<1>& tl, int blocks) {
        MINIDL_LAUNCH(amp_unscale_kernel<T>, dim3(blocks), dim3(kOptimThreads), 0, stream, tl, cp<float>(inv_scale),
                      mp<float>(found_inf));
    });
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(amp_unscale);
MINIDL_HALF_LAUNCHERS(amp_unscale, (const Addresses& grads, const Sizes& sizes, uptr inv_scale, uptr found_inf,
                                    uptr stream),
                      (grads, sizes, inv_scale, found_inf, stream))
MINIDL_HALF_LAUNCHERS(rmsprop_update,
                      (const Addresses& params, const Addresses& grads, const Addresses& square_avgs,
                       const Addresses& grad_avgs, const Addresses& bufs, const Sizes& sizes, double lr, double alpha,
                       double eps, double momentum, double weight_decay, int eps_inside_sqrt, uptr skip, uptr stream),
                      (params, grads, square_avgs, grad_avgs, bufs, sizes, lr, alpha, eps, momentum, weight_decay,
                       eps_inside_sqrt, skip, stream))

}  // namespace minidl
