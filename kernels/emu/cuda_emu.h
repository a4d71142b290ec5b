// Host emulation of the CUDA execution model, so that the very kernel sources in
// kernels/*.cu(h) compile with g++ and run on the CPU (module minidl._emu).
//
// Included by kernels/common.cuh when __CUDACC__ is not defined; never include it
// directly.  What it provides:
//   * qualifiers (__global__, __device__, __host__, __forceinline__, __restrict__,
//     __launch_bounds__) defined away; __shared__ is `static` (correct only because
//     blocks run one after another and launches are serialized by a mutex);
//   * dim3, threadIdx/blockIdx/blockDim/gridDim as thread-local variables, warpSize;
//   * __syncthreads, __syncwarp, __shfl_{,xor_,down_,up_}sync, __ballot_sync,
//     __any_sync, __all_sync (per-warp double-buffered exchange plus a barrier);
//   * atomics through std::atomic_ref; math shims (rsqrtf, __expf, __fdividef, ...);
//     mixed-type min/max;
//   * minidl_emu::run(), the block scheduler used by minidl::launch (common.cuh).
//
// Two execution modes, chosen per launch from the environment variable
// MINIDL_EMU_MODE (read at each launch):
//   fiber  (default) all threads of a block run as fibers on the calling OS
//          thread; __syncthreads / warp collectives switch fibers.  Deterministic and
//          faster.  A barrier that not every live thread reaches (divergent
//          __syncthreads, partial-mask shuffles) is detected and raised as an error.
//   thread one OS thread per CUDA thread of a block (the same pool of threads runs all
//          blocks one after another), a std::barrier per block for __syncthreads and
//          one per warp for warp collectives; exiting threads arrive_and_drop.  Real
//          concurrency: use it under -fsanitize=thread to find missing __syncthreads.
//          A divergent barrier hangs here (tests run under pytest-timeout).
// The kernel profiler (profile.h) records the memory accesses of fiber-mode launches.
// MINIDL_EMU_STACK_KB sets the fiber stack size (default 256).
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#ifndef __CUDACC__

// ------------------------------------------------------------------ qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
// (never define __noinline__: libstdc++ uses it as an attribute name)

// ------------------------------------------------------------------ types
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidConfiguration = 9, cudaErrorLaunchFailure = 719 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : "emulated CUDA error";
}

extern thread_local dim3 threadIdx;
extern thread_local dim3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ------------------------------------------------------------------ math shims
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline int __float2int_rn(float f) { return (int)std::nearbyint(f); }
template <class T> inline T __ldg(const T* p) { return *p; }
using std::exp; using std::log; using std::sqrt; using std::fabs; using std::pow; using std::tanh;
using std::floor; using std::ceil; using std::fma; using std::fmaf; using std::log1p; using std::log1pf;
using std::isnan; using std::isinf; using std::isfinite;

// CUDA's min/max accept mixed argument types; so do these.
template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    return (C)b < (C)a ? (C)b : (C)a;
}
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    return (C)a < (C)b ? (C)b : (C)a;
}

// ------------------------------------------------------------------ atomics
template <class T>
inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <class T>
inline T atomicSub(T* p, T v) { return std::atomic_ref<T>(*p).fetch_sub(v); }
template <class T>
inline T atomicExch(T* p, T v) { return std::atomic_ref<T>(*p).exchange(v); }
template <class T>
inline T atomicCAS(T* p, T cmp, T v) {
    std::atomic_ref<T>(*p).compare_exchange_strong(cmp, v);
    return cmp;
}
template <class T>
inline T atomicMax(T* p, T v) {
    std::atomic_ref<T> r(*p);
    T old = r.load();
    while (old < v && !r.compare_exchange_weak(old, v)) {}
    return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
    std::atomic_ref<T> r(*p);
    T old = r.load();
    while (v < old && !r.compare_exchange_weak(old, v)) {}
    return old;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ------------------------------------------------------------------ the scheduler
namespace minidl_emu {

using Slot = std::uint64_t;  // one exchange slot per lane: values up to 8 bytes

struct Warp {
    Slot slots[2][32];
    std::uint64_t gen[2][32];  // which shuffle of its lane wrote a slot (stale = not participating)
    std::atomic<unsigned> live{0};
    std::unique_ptr<std::barrier<>> bar;  // thread mode
};

struct AsyncCopy {            // one cp.async of kernels/tensor_core.cuh, not yet done
    void* dst;
    const void* src;         // nullptr: zero-fill
    unsigned bytes;
};

struct ThreadState {         // one per CUDA thread of the running block
    std::vector<AsyncCopy> async_pending;               // issued since the last commit_group
    std::vector<std::vector<AsyncCopy>> async_groups;  // committed, oldest first (done at wait_group)
    dim3 tid;
    int lane = 0, warp = 0;
    std::uint64_t nshfl = 0; // warp collectives done so far; its parity picks the buffer half
    int state = 0;           // fiber mode: 0 run, 1 wait block, 2 wait warp, 3 done
    void* fiber = nullptr;   // fiber mode: its FiberContext (cuda_emu.cpp)
};

extern thread_local ThreadState* self;      // the CUDA thread running on this OS thread/fiber
void syncthreads();                          // __syncthreads
void syncwarp();                             // warp-level barrier
Warp& my_warp();
// cp.async bookkeeping (kernels/tensor_core.cuh), kept in cuda_emu.cpp so that the kernel
// profiler, which instruments kernel code only, sees the copies and not this queue.
void async_issue(void* dst, const void* src, unsigned bytes);
void async_commit();
// The oldest copy not yet done while more than `keep` groups are committed (false: none).
bool async_next_landed(std::size_t keep, AsyncCopy& out);
unsigned char* dynamic_smem();               // this launch's dynamic shared memory

using Body = void (*)(void*);
// Runs `body(ctx)` for every thread of every block; throws std::runtime_error naming
// `name` on a bad configuration or a detected barrier deadlock.  `pointer_args` are
// the kernel's pointer arguments, which the profiler takes as allocation starts.
void run(const char* name, dim3 grid, dim3 block, std::size_t smem, Body body, void* ctx,
         std::vector<std::uintptr_t> pointer_args = {});

bool profiling();  // the kernel profiler (profile.h) is recording

// A kernel argument that is a struct holding device pointers says so with a
// `pointers()` member (emu builds only): the profiler rebases on those arrays too.
template <class T, class = void>
struct has_pointer_list : std::false_type {};
template <class T>
struct has_pointer_list<T, std::void_t<decltype(std::declval<const T&>().pointers())>> : std::true_type {};

template <class T>
void note_pointer(std::vector<std::uintptr_t>& out, const T& arg) {
    if constexpr (std::is_pointer_v<T>)
        out.push_back(reinterpret_cast<std::uintptr_t>(arg));
    else if constexpr (has_pointer_list<T>::value)  // a struct of arrays (the optimizers' tensor lists)
        for (const void* p : arg.pointers()) out.push_back(reinterpret_cast<std::uintptr_t>(p));
}

// One warp round: the calling lane posts v in its slot, and every lane waits for the
// others; -> the round's generation (slots written this round carry it).
template <class T>
inline std::uint64_t post(T v) {
    static_assert(sizeof(T) <= sizeof(Slot), "warp exchange of a value over 8 bytes");
    ThreadState* s = self;
    Warp& w = my_warp();
    const std::uint64_t g = ++s->nshfl;
    const int b = (int)(g & 1);
    Slot slot = 0;
    std::memcpy(&slot, &v, sizeof(T));
    w.slots[b][s->lane] = slot;
    w.gen[b][s->lane] = g;
    syncwarp();
    return g;
}

template <class T>
inline T exchange(T v, int src_lane, bool valid) {
    Warp& w = my_warp();
    const std::uint64_t g = post(v);
    const int b = (int)(g & 1);
    // a lane that did not write this round (exited, or absent from a partial warp)
    // yields the caller's own value
    if (!valid || w.gen[b][src_lane] != g) return v;
    T r;
    std::memcpy(&r, &w.slots[b][src_lane], sizeof(T));
    return r;
}

// Every lane's v, in out[lane] (a lane absent from this round yields the caller's v):
// one warp round where 32 __shfl_sync would take 32 (the tensor-core emulation).
template <class T>
inline void gather(T v, T (&out)[32]) {
    Warp& w = my_warp();
    const std::uint64_t g = post(v);
    const int b = (int)(g & 1);
    for (int l = 0; l < 32; ++l) {
        if (w.gen[b][l] == g)
            std::memcpy(&out[l], &w.slots[b][l], sizeof(T));
        else
            out[l] = v;
    }
}

inline unsigned ballot(bool pred) {
    ThreadState* s = self;
    Warp& w = my_warp();
    const std::uint64_t g = ++s->nshfl;
    const int b = (int)(g & 1);
    w.slots[b][s->lane] = pred ? 1 : 0;
    w.gen[b][s->lane] = g;
    syncwarp();
    unsigned r = 0;
    for (int l = 0; l < 32; ++l)
        if (w.gen[b][l] == g && w.slots[b][l]) r |= 1u << l;
    return r;
}

// lanes that took part in the latest collective of the calling lane
inline unsigned participants() {
    ThreadState* s = self;
    Warp& w = my_warp();
    const int b = (int)(s->nshfl & 1);
    unsigned r = 0;
    for (int l = 0; l < 32; ++l)
        if (w.gen[b][l] == s->nshfl) r |= 1u << l;
    return r;
}

}  // namespace minidl_emu

inline void __syncthreads() { minidl_emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { minidl_emu::syncwarp(); }

template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    int lane = minidl_emu::self->lane;
    int base = lane & ~(width - 1);
    return minidl_emu::exchange(v, base + (src & (width - 1)), true);
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    int lane = minidl_emu::self->lane;
    int src = lane ^ mask;
    bool ok = (src & ~(width - 1)) == (lane & ~(width - 1)) && src < 32;
    return minidl_emu::exchange(v, ok ? src : lane, ok);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = minidl_emu::self->lane;
    int src = lane + (int)delta;
    bool ok = (src & ~(width - 1)) == (lane & ~(width - 1)) && src < 32;
    return minidl_emu::exchange(v, ok ? src : lane, ok);
}
template <class T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = minidl_emu::self->lane;
    int src = lane - (int)delta;
    bool ok = src >= 0 && (src & ~(width - 1)) == (lane & ~(width - 1));
    return minidl_emu::exchange(v, ok ? src : lane, ok);
}
inline unsigned __ballot_sync(unsigned, int pred) { return minidl_emu::ballot(pred != 0); }
inline int __any_sync(unsigned, int pred) { return minidl_emu::ballot(pred != 0) != 0; }
inline int __all_sync(unsigned, int pred) {
    unsigned votes = minidl_emu::ballot(pred != 0);
    return votes == minidl_emu::participants();
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }

#endif  // !__CUDACC__
