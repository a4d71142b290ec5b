// Fused optimizer updates: SGD with momentum, dampening, Nesterov and weight decay
// (PyTorch's torch.optim.SGD semantics), one pass over a flat parameter.
//
// Layout: param, grad and momentum buffer are contiguous vectors of n elements.
// Indexing: 1-D grid-stride loop.
// Conventions: updates param and buf IN PLACE; grad is read only.
//   d = grad + weight_decay * param
//   if momentum != 0:
//       buf = d                                  (first step: buf is written, not read)
//       buf = momentum * buf + (1 - dampening) * d   (later steps)
//       d = d + momentum * buf if nesterov else buf
//   param -= lr * d
#pragma once
#include "common.cuh"

namespace minidl {

template <class T>
__global__ void sgd_update_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ buf,
                                  long long n, T lr, T momentum, T dampening, T weight_decay, int nesterov,
                                  int first_step) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        T p = param[i];
        T d = grad[i] + weight_decay * p;
        if (momentum != T(0)) {
            T b = first_step ? d : momentum * buf[i] + (T(1) - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        param[i] = p - lr * d;
    }
}

}  // namespace minidl
