// Shared infrastructure of every kernel family (see kernels/README.md).
//
// Include this first in every kernels/<family>.cuh.  Under nvcc it pulls
// <cuda_runtime.h>; under g++ it pulls the host-emulation header, so the same source
// builds minidl._cuda and minidl._emu.
//
//   MINIDL_LAUNCH(kernel, grid, block, smem_bytes, stream, args...)
//       launches `kernel` (<<<>>> under nvcc), checks the launch error and throws
//       std::runtime_error naming the kernel (pybind11 turns it into RuntimeError).
//       Wrap a template-id with commas in parentheses: MINIDL_LAUNCH((k<float, 4>), ...).
//   minidl::launch(kernel, grid, block, smem_bytes, stream, args...)
//       the same without a name in the error message (prefer the macro).
//   MINIDL_DYNAMIC_SHARED(T, name)
//       declares `T* name` pointing at the launch's dynamic shared memory.
//   minidl::stage_to_shared
//       copies a contiguous range of global memory to shared memory, coalesced.
//   minidl::warp_sum / warp_max / block_sum / block_max
//       shuffle reductions (block versions need blockDim.x a multiple of 32 and a
//       __shared__ scratch of 32 elements; every thread gets the result).
//   MINIDL_GRID_STRIDE(i, n)
//       `for` over i in [0, n) (long long) with the 1-D grid's stride: the loop of the
//       one-thread-per-element kernels.
//   MINIDL_INSTANTIATE_FLOAT_DOUBLE(launcher)
//       the float and double instantiations of a launcher declared in its family's
//       host header (kernels/<family>.h), which bindings.cpp binds as <launcher>_f32/_f64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define MINIDL_EMU 0
#define MINIDL_DYNAMIC_SHARED(T, name)                                   \
    extern __shared__ __align__(16) unsigned char minidl_dynamic_smem_[]; \
    T* name = reinterpret_cast<T*>(minidl_dynamic_smem_)
#else
#include "emu/cuda_emu.h"
#define MINIDL_EMU 1
#define MINIDL_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::minidl_emu::dynamic_smem())
#endif

#include "launcher.h"
#include "half.cuh"

#define MINIDL_GRID_STRIDE(i, n)                                                                   \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                 \
         i += (long long)gridDim.x * blockDim.x)

// The signature comes from the declaration in the family's host header.
#define MINIDL_INSTANTIATE_FLOAT_DOUBLE(launcher)         \
    template decltype(launcher<float>) launcher<float>; \
    template decltype(launcher<double>) launcher<double>

#define MINIDL_LAUNCH(kernel, grid, block, smem, stream, ...) \
    ::minidl::launch_named(#kernel, kernel, grid, block, smem, stream, __VA_ARGS__)

namespace minidl {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

inline unsigned ceil_div(long long n, long long d) { return (unsigned)((n + d - 1) / d); }

// A 1-D grid of `threads`-wide blocks covering n elements; kernels loop grid-stride,
// so the grid is capped.
inline dim3 grid_1d(long long n, int threads, unsigned cap = 65535u * 4u) {
    long long b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > (long long)cap) b = cap;
    return dim3((unsigned)b);
}

// Launchers receive device addresses as integers (CuPy's a.data.ptr, NumPy's
// a.ctypes.data); cp/mp cast them back to typed pointers.
template <class T> const T* cp(std::uintptr_t p) { return reinterpret_cast<const T*>(p); }
template <class T> T* mp(std::uintptr_t p) { return reinterpret_cast<T*>(p); }

constexpr int kThreads = 256;  // block size of the 1-D elementwise/gather launches

inline void check_cuda(cudaError_t err, const char* what) {
    if (err != cudaSuccess)
        throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

template <class... KArgs, class... Args>
void launch_named(const char* name, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                  std::size_t smem, std::uintptr_t stream, Args&&... args) {
    static_assert(sizeof...(KArgs) == sizeof...(Args), "launch: wrong number of kernel arguments");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;  // nothing to do (empty tensor)
#if MINIDL_EMU
    (void)stream;
    struct Call {
        void (*k)(KArgs...);
        std::tuple<KArgs...> a;
    } call{kernel, std::tuple<KArgs...>(static_cast<KArgs>(args)...)};
    std::vector<std::uintptr_t> pointers;
    if (::minidl_emu::profiling())
        std::apply([&](const auto&... a) { (::minidl_emu::note_pointer(pointers, a), ...); }, call.a);
    ::minidl_emu::run(name, grid, block, smem,
                      [](void* p) {
                          Call* c = static_cast<Call*>(p);
                          std::apply(c->k, c->a);
                      },
                      &call, std::move(pointers));
#else
    kernel<<<grid, block, smem, reinterpret_cast<cudaStream_t>(stream)>>>(static_cast<KArgs>(args)...);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        throw std::runtime_error(std::string(name) + ": kernel launch failed (grid " +
                                 std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" +
                                 std::to_string(grid.z) + ", block " + std::to_string(block.x) + "x" +
                                 std::to_string(block.y) + "x" + std::to_string(block.z) + ", smem " +
                                 std::to_string(smem) + "): " + cudaGetErrorString(err));
#endif
}

template <class... KArgs, class... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, std::size_t smem, std::uintptr_t stream,
            Args&&... args) {
    launch_named("kernel", kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

// ------------------------------------------------------------------ reductions
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

template <class T>
__device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) {
        T u = __shfl_xor_sync(kFullMask, v, o);
        v = u > v ? u : v;
    }
    return v;
}

// Sum over the block (blockDim.x % 32 == 0, 1-D block).  `scratch` is a __shared__
// array of >= 32 elements; returns the total in every thread.  Contains
// __syncthreads, so every thread of the block must call it.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : T(0);
    return warp_sum(v);
}

template <class T>
__device__ __forceinline__ T block_max(T v, T* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : scratch[0];
    return warp_max(v);
}

// dst[0, n) = src[start, start + n) by the whole block, consecutive threads on
// consecutive addresses.  Lanes start at the 32-byte sector below src + start
// (allocations are 256-byte aligned), so each warp's 128 bytes cover 4 whole sectors
// even where the range starts mid-sector; lanes before the range load its first value
// instead of idling, which keeps every lane on the same iteration count.  The caller
// synchronizes (__syncthreads) before reading dst.
// (D may be wider than T: 16-bit values are staged as their compute_t.)
template <class D, class T>
__device__ __forceinline__ void stage_to_shared(D* dst, const T* __restrict__ src, long long start, long long n) {
    if (n <= 0) return;  // (lanes before an empty range must not load its "first" value)
    const long long head = (long long)((start * sizeof(T)) % 32 / sizeof(T));
    for (long long j = (long long)threadIdx.x - head; j < n; j += blockDim.x) {
        const long long jj = j < 0 ? 0 : j;
        if constexpr (std::is_same_v<D, T>)
            dst[jj] = src[start + jj];
        else
            dst[jj] = D(to_compute(src[start + jj]));
    }
}

template <class T> __device__ __forceinline__ T exp_(T x) { return exp(x); }
template <> __device__ __forceinline__ float exp_<float>(float x) { return expf(x); }
template <class T> __device__ __forceinline__ T quiet_nan() { return nan(""); }
template <> __device__ __forceinline__ float quiet_nan<float>() { return nanf(""); }
template <class T> __device__ __forceinline__ T log_(T x) { return log(x); }
template <> __device__ __forceinline__ float log_<float>(float x) { return logf(x); }
template <class T> __device__ __forceinline__ T sqrt_(T x) { return sqrt(x); }
template <> __device__ __forceinline__ float sqrt_<float>(float x) { return sqrtf(x); }

}  // namespace minidl
