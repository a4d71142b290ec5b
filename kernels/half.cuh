// The 16-bit floating-point types of the kernels and their conversions: half_t (FP16:
// __half under nvcc, _Float16 under g++ 12) and bf16_t (BF16: __nv_bfloat16 under nvcc,
// a 16-bit struct under g++, which has no __bf16 here).  Kernels instantiated for them
// load and store 16-bit values and compute in float:
// compute_t<T> is float for both, T otherwise; to_compute / from_compute<T> convert
// (float -> 16 bits rounds to nearest even, as NumPy and ml_dtypes do).
#pragma once

#if !MINIDL_EMU
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#include <cstring>
#include <type_traits>

namespace minidl {

#if MINIDL_EMU
using half_t = _Float16;
struct bf16_t {
    std::uint16_t bits;
};
inline bf16_t float_to_bf16(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{0x7fc0};  // NaN
    u += 0x7fffu + ((u >> 16) & 1u);                             // round to nearest even
    return bf16_t{(std::uint16_t)(u >> 16)};
}
inline float bf16_to_float(bf16_t h) {
    const std::uint32_t u = (std::uint32_t)h.bits << 16;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}
inline std::uint16_t bits_of(half_t h) {
    std::uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
}
inline half_t half_from_bits(std::uint16_t b) {
    half_t h;
    std::memcpy(&h, &b, 2);
    return h;
}
#else
using half_t = __half;
using bf16_t = __nv_bfloat16;
__device__ __forceinline__ bf16_t float_to_bf16(float x) { return __float2bfloat16_rn(x); }
__device__ __forceinline__ float bf16_to_float(bf16_t h) { return __bfloat162float(h); }
__device__ __forceinline__ std::uint16_t bits_of(half_t h) { return __half_as_ushort(h); }
__device__ __forceinline__ half_t half_from_bits(std::uint16_t b) { return __ushort_as_half(b); }
#endif

#if MINIDL_EMU
inline std::uint16_t bits_of_bf16(bf16_t h) { return h.bits; }
#else
__device__ __forceinline__ std::uint16_t bits_of_bf16(bf16_t h) { return __bfloat16_as_ushort(h); }
#endif
__device__ __forceinline__ float half_to_float(half_t h) { return (float)h; }
__device__ __forceinline__ half_t float_to_half(float x) { return (half_t)x; }


template <class T> struct compute_type { using type = T; };
template <> struct compute_type<half_t> { using type = float; };
template <> struct compute_type<bf16_t> { using type = float; };
template <class T> using compute_t = typename compute_type<T>::type;

template <class T> __device__ __forceinline__ compute_t<T> to_compute(T v) {
    if constexpr (std::is_same_v<T, bf16_t>)
        return bf16_to_float(v);
    else if constexpr (std::is_same_v<T, half_t>)
        return half_to_float(v);
    else
        return v;
}
template <class T> __device__ __forceinline__ T from_compute(compute_t<T> v) {
    if constexpr (std::is_same_v<T, bf16_t>)
        return float_to_bf16(v);
    else if constexpr (std::is_same_v<T, half_t>)
        return float_to_half(v);
    else
        return v;
}

}  // namespace minidl

// The definitions of a family's <launcher>_f16 / _bf16 (declared with MINIDL_DECLARE_HALF):
// the half_t / bf16_t instances of the launcher template.
#define MINIDL_HALF_LAUNCHERS(op, params, args) \
    void op##_f16 params { op<half_t> args; }   \
    void op##_bf16 params { op<bf16_t> args; }
