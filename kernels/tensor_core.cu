// The tensor-core instruction probe (declared in tensor_core.h): one warp, one
// instruction of tensor_core.cuh.  Operands are float32 arrays; the kernel builds each
// lane's fragment registers from them by the PTX ISA's layouts (tensor_core.cuh) and
// writes the result back by the same layouts.
//   kind 0  mma m16n8k8 TF32:    a (16, 8), b (8, 8) as B[k][n], c, d (16, 8)
//   kind 1  mma m16n8k16 FP16:   a (16, 16), b (16, 8), c, d (16, 8)
//   kind 2  mma m16n8k16 BF16:   as kind 1
//   kind 3  ldmatrix .x4:        d (32 lanes, 8): the 4 registers' 16-bit halves, low first,
//                                of matrices holding value m*64 + row*8 + col
//   kind 4  ldmatrix .x4.trans:  as kind 3
//   kind 5  ldmatrix .x2:        d (32, 4)
//   kind 6  ldmatrix .x1.trans:  d (32, 2)
//   kind 7  cp.async 16 B x 16 lanes, commit, wait_group 0:  d (64,) = a (64,)
//   kind 8  the same without the wait: d shows shared memory as it was (zeros) under
//           the emulation, which defers the copies to the wait
//   kind 9  cp.async with odd lanes invalid (zero-filled): d (64,)
#include "tensor_core.h"

#include "tensor_core.cuh"

namespace minidl {

namespace {

__device__ __forceinline__ std::uint16_t f16_bits(float v) { return bits_of(float_to_half(v)); }
__device__ __forceinline__ std::uint16_t bf16_bits(float v) { return bits_of_bf16(float_to_bf16(v)); }

__device__ void store_d(float* d, const float (&r)[4], int g, int t) {
    d[g * 8 + 2 * t] = r[0];
    d[g * 8 + 2 * t + 1] = r[1];
    d[(g + 8) * 8 + 2 * t] = r[2];
    d[(g + 8) * 8 + 2 * t + 1] = r[3];
}

__device__ void load_c(const float* c, float (&r)[4], int g, int t) {
    r[0] = c[g * 8 + 2 * t];
    r[1] = c[g * 8 + 2 * t + 1];
    r[2] = c[(g + 8) * 8 + 2 * t];
    r[3] = c[(g + 8) * 8 + 2 * t + 1];
}

template <bool Bf16>
__device__ void mma_16bit(const float* a, const float* b, const float* c, float* d, int g, int t) {
    auto bits = [](float v) { return Bf16 ? bf16_bits(v) : f16_bits(v); };
    std::uint32_t ra[4], rb[2];
    ra[0] = pack16(bits(a[g * 16 + 2 * t]), bits(a[g * 16 + 2 * t + 1]));
    ra[1] = pack16(bits(a[(g + 8) * 16 + 2 * t]), bits(a[(g + 8) * 16 + 2 * t + 1]));
    ra[2] = pack16(bits(a[g * 16 + 2 * t + 8]), bits(a[g * 16 + 2 * t + 9]));
    ra[3] = pack16(bits(a[(g + 8) * 16 + 2 * t + 8]), bits(a[(g + 8) * 16 + 2 * t + 9]));
    rb[0] = pack16(bits(b[(2 * t) * 8 + g]), bits(b[(2 * t + 1) * 8 + g]));
    rb[1] = pack16(bits(b[(2 * t + 8) * 8 + g]), bits(b[(2 * t + 9) * 8 + g]));
    float rc[4], rd[4];
    load_c(c, rc, g, t);
    if constexpr (Bf16)
        mma_m16n8k16_bf16(rd, ra, rb, rc);
    else
        mma_m16n8k16_f16(rd, ra, rb, rc);
    store_d(d, rd, g, t);
}

template <int N, bool Trans>
__device__ void ldmatrix_probe(std::uint16_t* smem, float* d, int lane) {
    for (int i = lane; i < 4 * 64; i += 32) smem[i] = (std::uint16_t)i;  // m*64 + row*8 + col
    __syncwarp();
    std::uint32_t r[N];
    ldmatrix<N, Trans>(r, smem + (lane / 8) * 64 + (lane % 8) * 8);
    for (int i = 0; i < N; ++i) {
        d[lane * 2 * N + 2 * i] = (float)(r[i] & 0xffffu);
        d[lane * 2 * N + 2 * i + 1] = (float)(r[i] >> 16);
    }
}

__global__ void tensor_core_probe_kernel(int kind, const float* a, const float* b, const float* c, float* d) {
    __shared__ __align__(16) std::uint16_t tile16[4 * 64];
    __shared__ __align__(16) float tile32[64];
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    if (kind == 0) {
        std::uint32_t ra[4] = {to_tf32(a[g * 8 + t]), to_tf32(a[(g + 8) * 8 + t]), to_tf32(a[g * 8 + t + 4]),
                               to_tf32(a[(g + 8) * 8 + t + 4])};
        std::uint32_t rb[2] = {to_tf32(b[t * 8 + g]), to_tf32(b[(t + 4) * 8 + g])};
        float rc[4], rd[4];
        load_c(c, rc, g, t);
        mma_m16n8k8_tf32(rd, ra, rb, rc);
        store_d(d, rd, g, t);
    } else if (kind == 1) {
        mma_16bit<false>(a, b, c, d, g, t);
    } else if (kind == 2) {
        mma_16bit<true>(a, b, c, d, g, t);
    } else if (kind == 3) {
        ldmatrix_probe<4, false>(tile16, d, lane);
    } else if (kind == 4) {
        ldmatrix_probe<4, true>(tile16, d, lane);
    } else if (kind == 5) {
        ldmatrix_probe<2, false>(tile16, d, lane);
    } else if (kind == 6) {
        ldmatrix_probe<1, true>(tile16, d, lane);
    } else {  // cp.async: 16 lanes copy 16 bytes each
        tile32[lane] = 0.0f;
        tile32[lane + 32] = 0.0f;
        __syncwarp();
        if (lane < 16) cp_async<16>(tile32 + 4 * lane, a + 4 * lane, kind != 9 || lane % 2 == 0);
        cp_async_commit();
        if (kind != 8) cp_async_wait<0>();
        __syncwarp();
        d[lane] = tile32[lane];
        d[lane + 32] = tile32[lane + 32];
    }
}
}  // namespace

void tensor_core_probe(int kind, uptr a, uptr b, uptr c, uptr d, uptr stream) {
    if (kind < 0 || kind > 9) throw std::invalid_argument("tensor_core_probe: kind 0..9, got " + std::to_string(kind));
    MINIDL_LAUNCH(tensor_core_probe_kernel, dim3(1), dim3(32), 0, stream, kind, cp<float>(a), cp<float>(b),
                  cp<float>(c), mp<float>(d));
}

}  // namespace minidl
