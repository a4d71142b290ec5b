// What every family's host header (kernels/<family>.h) needs, and nothing CUDA: the
// pointer type of the launchers and the geometry structs that cross the binding.
//
// Launchers take device addresses as integers (uptr: CuPy's a.data.ptr, NumPy's
// a.ctypes.data), then the geometry or sizes, then scalars, then the stream (0 is the
// default stream; ignored by _emu).  The geometry structs are bound with pybind11 in
// bindings.cpp under the same names and fields as minidl/backend/geometry.py, which
// computes and validates them (output sizes, int32 ranges) before any launch.
#pragma once

#include <cstdint>

namespace minidl {

using uptr = std::uintptr_t;

// The 16-bit launchers of a family (FP16 / BF16 storage, float compute) are plain
// functions <launcher>_f16 / _bf16 with the launcher's parameters, so that no CUDA
// type crosses the binding: declared with this in the family's header, defined with
// MINIDL_HALF_LAUNCHERS (half.cuh) in its .cu.
#define MINIDL_DECLARE_HALF(op, ...) \
    void op##_f16(__VA_ARGS__);      \
    void op##_bf16(__VA_ARGS__)

// One 2-D convolution: x (N, C, H, W), weight (O, C/G, KH, KW), y (N, O, HO, WO).
// Input row of output row ho and tap kh: ho*sh - pt + kh*dh (columns alike).  The
// kernels read pt/pl only; pb/pr are the bottom/right padding that set HO/WO.
struct ConvGeometry {
    int N, C, H, W;       // input
    int O, KH, KW;        // weight
    int HO, WO;           // output
    int sh, sw;           // stride
    int pt, pb, pl, pr;   // padding: top, bottom, left, right
    int dh, dw;           // dilation
    int G;                // groups
};

// One 2-D pooling: x (N, C, H, W) -> y (N, C, OH, OW), window KH x KW at stride
// (sh, sw) with symmetric padding (ph, pw).  Adaptive pooling uses N..OW only.
struct PoolGeometry {
    int N, C, H, W;   // input
    int OH, OW;       // output
    int KH, KW;       // window
    int sh, sw;       // stride
    int ph, pw;       // padding
};

}  // namespace minidl
