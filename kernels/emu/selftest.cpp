// Self-tests of the host emulation, bound only into minidl._emu as
// _emu.emu_selftest(name) (tests/test_kernels_emu.py calls them).
#include "../common.cuh"

#include <string>

namespace {

__global__ void divergent_barrier_kernel(int* out) {
    // a bug: half of warp 0 waits at a block barrier, the other half at a warp barrier
    if (threadIdx.x < 16) __syncthreads();
    else __syncwarp();
    out[threadIdx.x] = 1;
}

__global__ void oversized_block_kernel(int*) {}

// warp reductions, shuffles and ballot on a block of 2 full warps + a partial one
__global__ void warp_ops_kernel(int* out) {
    int lane = threadIdx.x & 31;
    int s = minidl::warp_sum(lane);                       // 496 in full warps
    int d = __shfl_down_sync(0xffffffffu, lane, 1);       // lane + 1, last lane keeps its own
    int u = __shfl_up_sync(0xffffffffu, lane, 3);         // lane - 3, first 3 keep their own
    int b = __shfl_sync(0xffffffffu, lane * 10, 5);       // 50
    unsigned v = __ballot_sync(0xffffffffu, lane % 2);    // 0xaaaaaaaa in full warps
    int ok = s == 496 && d == (lane == 31 ? 31 : lane + 1) && u == (lane < 3 ? lane : lane - 3) && b == 50 &&
             v == 0xaaaaaaaau;
    out[threadIdx.x] = ok;
}

__global__ void block_sum_kernel(double* out, int n) {
    __shared__ double scratch[32];
    double v = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += i;
    double t = minidl::block_sum(v, scratch);
    if (threadIdx.x == blockDim.x - 1) out[blockIdx.x] = t;
}

__global__ void dynamic_smem_kernel(float* out) {
    MINIDL_DYNAMIC_SHARED(float, buf);
    buf[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = buf[blockDim.x - 1 - threadIdx.x];
}

}  // namespace

std::string emu_selftest(const std::string& name) {
    if (name == "divergent_barrier") {
        int out[64];
        MINIDL_LAUNCH(divergent_barrier_kernel, dim3(1), dim3(64), 0, 0, out);
        return "no error";
    }
    if (name == "oversized_block") {
        MINIDL_LAUNCH(oversized_block_kernel, dim3(1), dim3(2048), 0, 0, nullptr);
        return "no error";
    }
    if (name == "warp_ops") {
        int out[64];
        MINIDL_LAUNCH(warp_ops_kernel, dim3(1), dim3(64), 0, 0, out);
        for (int i = 0; i < 64; ++i)
            if (!out[i]) return "warp_ops: thread " + std::to_string(i) + " wrong";
        return "ok";
    }
    if (name == "block_sum") {
        double out[3];
        MINIDL_LAUNCH(block_sum_kernel, dim3(3), dim3(96), 0, 0, out, 1000);
        for (double v : out)
            if (v != 499500.0) return "block_sum: got " + std::to_string(v);
        return "ok";
    }
    if (name == "dynamic_smem") {
        float out[40];
        MINIDL_LAUNCH(dynamic_smem_kernel, dim3(2), dim3(40), 40 * sizeof(float), 0, out);
        for (int i = 0; i < 40; ++i)
            if (out[i] != 39 - i) return "dynamic_smem: wrong at " + std::to_string(i);
        return "ok";
    }
    throw std::invalid_argument("emu_selftest: unknown test '" + name + "'");
}
