// Tensor-core building blocks: the number formats and the warp-level instructions the
// tensor-core kernels are written with, each a __device__ helper that is inline PTX
// under nvcc (sm_80+) and emulated under _emu, so those kernels run and are tested on
// machines without a GPU.
//
// Formats: TF32 (fp32 bits, 10 mantissa bits kept: to_tf32 rounds as cvt.rna.tf32.f32,
// to nearest with ties away from zero), FP16 (half_t: __half / _Float16 under g++ 12)
// and BF16 (bf16_t: __nv_bfloat16 / a 16-bit struct rounding to nearest even).
//
// Fragments, from the PTX ISA ("Matrix Fragments for mma.m16n8k8 / m16n8k16"), with
// g = lane >> 2 (groupID) and t = lane & 3 (threadID_in_group):
//   mma_m16n8k8_tf32:  A (16x8, row)  a[0] (g, t)  a[1] (g+8, t)  a[2] (g, t+4)  a[3] (g+8, t+4)
//                      B (8x8, col)   b[0] (k=t, n=g)  b[1] (k=t+4, n=g)
//   mma_m16n8k16_{f16,bf16}: registers of two 16-bit values, low half first:
//                      A (16x16)  a[0] (g, 2t..2t+1)  a[1] (g+8, 2t..)  a[2] (g, 2t+8..)  a[3] (g+8, 2t+8..)
//                      B (16x8)   b[0] (k=2t..2t+1, n=g)  b[1] (k=2t+8..2t+9, n=g)
//   C, D (16x8, fp32): c[0] (g, 2t)  c[1] (g, 2t+1)  c[2] (g+8, 2t)  c[3] (g+8, 2t+1)
// The emulation gathers every lane's registers (one warp round per register) and multiplies
// in fp32 (products of TF32/FP16/BF16 values are exact in fp32), summing over k in
// order; hardware sums in an unspecified order, so results agree to fp32 rounding.
//
// ldmatrix_x{1,2,4}[_trans]: matrix i (8x8 of 16-bit values) has its rows at the
// addresses of lanes 8i..8i+7; lane l receives r[i] = M_i[l/4][2(l%4) .. +1] (.trans:
// M_i[2(l%4)][l/4], M_i[2(l%4)+1][l/4]).
//
// cp_async<bytes>(smem, gmem, valid) copies 4, 8 or 16 bytes (zero-fills where !valid);
// cp_async_commit() closes a group; cp_async_wait<n>() waits until at most n groups are
// in flight.  The emulation DEFERS each copy until the wait that covers its group, so
// a kernel that reads shared memory without the wait reads stale data in the tests
// instead of passing by luck.
#pragma once
#include "common.cuh"

namespace minidl {

// Two 16-bit values in one register, `lo` in the low half (the fragments' order).
__device__ __forceinline__ std::uint32_t pack16(std::uint16_t lo, std::uint16_t hi) {
    return (std::uint32_t)lo | ((std::uint32_t)hi << 16);
}

// fp32 -> TF32 bit pattern: cvt.rna.tf32.f32 (nearest, ties away; NaN stays NaN).
__device__ __forceinline__ std::uint32_t to_tf32(float x) {
#if MINIDL_EMU
    std::uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffffffu;  // NaN
    return (u + 0x1000u) & 0xffffe000u;  // half an ulp of the kept bits, on the magnitude
#else
    std::uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
#endif
}

#if MINIDL_EMU
namespace emu_tc {
inline float f32(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}
inline int lane() { return minidl_emu::self->lane; }
inline std::uint16_t half_of(std::uint32_t r, int i) { return (std::uint16_t)(i ? r >> 16 : r & 0xffffu); }
inline float f16_value(std::uint32_t r, int i) { return (float)half_from_bits(half_of(r, i)); }
inline float bf16_value(std::uint32_t r, int i) { return bf16_to_float(bf16_t{half_of(r, i)}); }
}  // namespace emu_tc
#endif

// ------------------------------------------------------------------ mma.sync
// d = a * b + c for one warp, TF32 inputs (fp32 bit patterns; the low 13 bits ignored).
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const std::uint32_t (&a)[4],
                                                 const std::uint32_t (&b)[2], const float (&c)[4]) {
#if MINIDL_EMU
    const int l = emu_tc::lane(), g = l >> 2, t = l & 3;
    std::uint32_t ra[4][32], rb[2][32];  // every lane's registers: 6 warp rounds
    for (int i = 0; i < 4; ++i) minidl_emu::gather(a[i], ra[i]);
    for (int i = 0; i < 2; ++i) minidl_emu::gather(b[i], rb[i]);
    float acc[4] = {c[0], c[1], c[2], c[3]};
    for (int k = 0; k < 8; ++k) {
        const int src_a = g * 4 + (k & 3), hi = k >> 2;
        const float a0 = emu_tc::f32(ra[hi ? 2 : 0][src_a] & 0xffffe000u);  // A[g][k]
        const float a1 = emu_tc::f32(ra[hi ? 3 : 1][src_a] & 0xffffe000u);  // A[g+8][k]
        const float b0 = emu_tc::f32(rb[hi][(2 * t) * 4 + (k & 3)] & 0xffffe000u);
        const float b1 = emu_tc::f32(rb[hi][(2 * t + 1) * 4 + (k & 3)] & 0xffffe000u);
        acc[0] += a0 * b0;
        acc[1] += a0 * b1;
        acc[2] += a1 * b0;
        acc[3] += a1 * b1;
    }
    for (int i = 0; i < 4; ++i) d[i] = acc[i];
#else
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#endif
}

#if MINIDL_EMU
namespace emu_tc {
// m16n8k16 with 16-bit inputs; value(r, i) decodes half i of register r.
template <class Value>
inline void mma_m16n8k16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                         const float (&c)[4], Value value) {
    const int l = lane(), g = l >> 2, t = l & 3;
    std::uint32_t ra[4][32], rb[2][32];  // every lane's registers: 6 warp rounds
    for (int i = 0; i < 4; ++i) minidl_emu::gather(a[i], ra[i]);
    for (int i = 0; i < 2; ++i) minidl_emu::gather(b[i], rb[i]);
    float acc[4] = {c[0], c[1], c[2], c[3]};
    for (int k = 0; k < 16; ++k) {
        const int hi = k >> 3, src_a = g * 4 + ((k & 7) >> 1), part = k & 1;
        const float a0 = value(ra[hi ? 2 : 0][src_a], part);  // A[g][k]
        const float a1 = value(ra[hi ? 3 : 1][src_a], part);  // A[g+8][k]
        const float b0 = value(rb[hi][(2 * t) * 4 + ((k & 7) >> 1)], part);
        const float b1 = value(rb[hi][(2 * t + 1) * 4 + ((k & 7) >> 1)], part);
        acc[0] += a0 * b0;
        acc[1] += a0 * b1;
        acc[2] += a1 * b0;
        acc[3] += a1 * b1;
    }
    for (int i = 0; i < 4; ++i) d[i] = acc[i];
}
}  // namespace emu_tc
#endif

__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const std::uint32_t (&a)[4],
                                                 const std::uint32_t (&b)[2], const float (&c)[4]) {
#if MINIDL_EMU
    emu_tc::mma_m16n8k16(d, a, b, c, emu_tc::f16_value);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#endif
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const std::uint32_t (&a)[4],
                                                  const std::uint32_t (&b)[2], const float (&c)[4]) {
#if MINIDL_EMU
    emu_tc::mma_m16n8k16(d, a, b, c, emu_tc::bf16_value);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#endif
}

// ------------------------------------------------------------------ ldmatrix
// r[0..N): N 8x8 matrices of 16-bit values from shared memory; `row` is this lane's row
// address (lanes 8i..8i+7 give matrix i's rows; lanes past 8N are ignored).
template <int N, bool Trans>
__device__ __forceinline__ void ldmatrix(std::uint32_t (&r)[N], const void* row) {
    static_assert(N == 1 || N == 2 || N == 4, "ldmatrix: .x1, .x2 or .x4");
#if MINIDL_EMU
    const int l = emu_tc::lane();
    std::uintptr_t rows[32];  // every lane's row address, in one warp round
    minidl_emu::gather(reinterpret_cast<std::uintptr_t>(row), rows);
    for (int i = 0; i < N; ++i) {
        auto row_of = [&](int rr) { return reinterpret_cast<const std::uint16_t*>(rows[8 * i + rr]); };
        if constexpr (!Trans) {
            const std::uint16_t* p = row_of(l >> 2);
            r[i] = pack16(p[2 * (l & 3)], p[2 * (l & 3) + 1]);
        } else {
            const std::uint16_t* p0 = row_of(2 * (l & 3));
            const std::uint16_t* p1 = row_of(2 * (l & 3) + 1);
            r[i] = pack16(p0[l >> 2], p1[l >> 2]);
        }
    }
#else
    const unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    if constexpr (N == 1) {
        if constexpr (Trans)
            asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(addr));
        else
            asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(addr));
    } else if constexpr (N == 2) {
        if constexpr (Trans)
            asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                         : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
        else
            asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                         : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
    } else {
        if constexpr (Trans)
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
        else
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
    }
#endif
}

// ------------------------------------------------------------------ cp.async
template <int Bytes>
__device__ __forceinline__ void cp_async(void* smem, const void* gmem, bool valid = true) {
    static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if MINIDL_EMU
    minidl_emu::async_issue(smem, valid ? gmem : nullptr, Bytes);
#else
    const unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    const int src_size = valid ? Bytes : 0;  // 0: the destination is zero-filled
    if constexpr (Bytes == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem), "r"(src_size));
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(addr), "l"(gmem), "n"(Bytes),
                     "r"(src_size));
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if MINIDL_EMU
    minidl_emu::async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

#if MINIDL_EMU
namespace emu_tc {
// One deferred copy, moved as the GPU moves it (one access of `bytes`), so the profiler
// sees the same traffic.
inline void do_copy(const minidl_emu::AsyncCopy& c) {
    typedef char Bytes16 __attribute__((vector_size(16)));
    if (c.bytes == 16) {
        Bytes16 v = {};
        if (c.src) v = *static_cast<const Bytes16*>(c.src);
        *static_cast<Bytes16*>(c.dst) = v;
    } else if (c.bytes == 8) {
        *static_cast<std::uint64_t*>(c.dst) = c.src ? *static_cast<const std::uint64_t*>(c.src) : 0;
    } else {
        *static_cast<std::uint32_t*>(c.dst) = c.src ? *static_cast<const std::uint32_t*>(c.src) : 0;
    }
}
}  // namespace emu_tc
#endif

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if MINIDL_EMU
    minidl_emu::AsyncCopy c;  // (a local: the profiler counts only the copy itself)
    while (minidl_emu::async_next_landed(N, c)) emu_tc::do_copy(c);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace minidl
