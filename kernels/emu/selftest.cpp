// Self-tests of the host emulation, bound only into minidl._emu as
// _emu.emu_selftest(name) (tests/test_kernels_emu.py calls them).  The *_copy, *_gather,
// lane_loop and transpose_* kernels have known memory-access patterns for the profiler's tests
// (tests/kernels/test_emu_profile.py); they work on heap buffers, as the profiler
// does not count the launching thread's stack as device memory.
#include "../common.cuh"

#include <string>
#include <vector>

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

// one float per thread, consecutive lanes on consecutive addresses
__global__ void coalesced_copy_kernel(const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = x[i];
}

// lane i reads x[32 i]: one 32-byte sector per 4 useful bytes
__global__ void strided_gather_kernel(const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = x[32 * i];
}

// a 32x32 tile through shared memory; the transposed read walks a column of `tile`,
// which sits in one bank unless each row is padded by one float
template <int Pad>
__global__ void transpose_kernel(const float* x, float* y) {
    __shared__ float tile[32][32 + Pad];
    int tx = threadIdx.x, ty = threadIdx.y;
    tile[ty][tx] = x[ty * 32 + tx];
    __syncthreads();
    y[ty * 32 + tx] = tile[tx][ty];
}

// lane l sums x[0..l]: the loop's trip count differs between lanes (divergence)
__global__ void lane_loop_kernel(const float* x, float* y) {
    float s = 0;
    for (int k = 0; k <= (int)threadIdx.x; ++k) s += x[k];
    y[threadIdx.x] = s;
}

std::string check_copy(const std::vector<float>& y, const std::vector<float>& want, const char* what) {
    for (std::size_t i = 0; i < want.size(); ++i)
        if (y[i] != want[i]) return std::string(what) + ": wrong at " + std::to_string(i);
    return "ok";
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
    if (name == "coalesced_copy" || name == "strided_gather") {
        const int n = 256;
        const bool strided = name == "strided_gather";
        const std::size_t nx = strided ? 32 * n : n;
        std::vector<float> x(nx), y(n), want(n);
        for (std::size_t i = 0; i < nx; ++i) x[i] = float(i);
        for (int i = 0; i < n; ++i) want[i] = x[strided ? 32 * i : i];
        if (strided) MINIDL_LAUNCH(strided_gather_kernel, dim3(n / 64), dim3(64), 0, 0, x.data(), y.data());
        else MINIDL_LAUNCH(coalesced_copy_kernel, dim3(n / 64), dim3(64), 0, 0, x.data(), y.data());
        return check_copy(y, want, name.c_str());
    }
    if (name == "lane_loop") {
        std::vector<float> x(32, 1.0f), y(32), want(32);
        for (int i = 0; i < 32; ++i) want[i] = float(i + 1);
        MINIDL_LAUNCH(lane_loop_kernel, dim3(1), dim3(32), 0, 0, x.data(), y.data());
        return check_copy(y, want, "lane_loop");
    }
    if (name == "transpose_padded" || name == "transpose_unpadded") {
        std::vector<float> x(32 * 32), y(32 * 32), want(32 * 32);
        for (int r = 0; r < 32; ++r)
            for (int c = 0; c < 32; ++c) x[r * 32 + c] = float(r * 32 + c), want[c * 32 + r] = float(r * 32 + c);
        if (name == "lane_loop") {
        std::vector<float> x(32, 1.0f), y(32), want(32);
        for (int i = 0; i < 32; ++i) want[i] = float(i + 1);
        MINIDL_LAUNCH(lane_loop_kernel, dim3(1), dim3(32), 0, 0, x.data(), y.data());
        return check_copy(y, want, "lane_loop");
    }
    if (name == "transpose_padded") MINIDL_LAUNCH(transpose_kernel<1>, dim3(1), dim3(32, 32), 0, 0, x.data(), y.data());
        else MINIDL_LAUNCH(transpose_kernel<0>, dim3(1), dim3(32, 32), 0, 0, x.data(), y.data());
        return check_copy(y, want, name.c_str());
    }
    throw std::invalid_argument("emu_selftest: unknown test '" + name + "'");
}
