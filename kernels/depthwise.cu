// Host launchers of the depthwise-convolution family (declared in depthwise.h,
// kernels in depthwise.cuh): the row-tile kernels where a tile fits, else the direct
// ones.
#include "depthwise.h"

#include "depthwise.cuh"

namespace minidl {

namespace {

void check_depthwise(const char* op, const ConvGeometry& g) {
    if (g.G != g.C || g.O % g.C != 0)
        throw std::invalid_argument(std::string(op) + ": expected groups == channels and out_channels a multiple "
                                    "of channels, got groups " + std::to_string(g.G) + ", channels " +
                                    std::to_string(g.C) + ", out_channels " + std::to_string(g.O));
}

// Output rows per tile whose input rows (halo included) fit a tile, or 0.
template <class T>
int forward_rows(const ConvGeometry& g) {
    const int in_rows = dw_tile<T>() / (g.W > 0 ? g.W : 1), span = (g.KH - 1) * g.dh + 1;
    return g.KH * g.KW > kDwMaxTaps || in_rows < span ? 0 : (in_rows - span) / g.sh + 1;
}

// Input rows per tile whose covering output rows fit a tile, or 0 (mult == 1 only).
template <class T>
int backward_data_rows(const ConvGeometry& g) {
    if (g.O != g.C || g.KH * g.KW > kDwMaxTaps) return 0;
    const int out_rows = dw_tile<T>() / (g.WO > 0 ? g.WO : 1);  // covering rows <= (rows - 1 + span) / sh + 1
    const int rows = (out_rows - 1) * g.sh - (g.KH - 1) * g.dh + 1;
    return rows < 1 ? 0 : rows;
}

// Output rows per backward-weight tile: the x rows and the gy rows both fit, or 0.
template <class T>
int backward_weight_rows(const ConvGeometry& g) {
    const int rows = forward_rows<T>(g), gy_rows = dw_tile<T>() / (g.WO > 0 ? g.WO : 1);
    return rows < gy_rows ? rows : gy_rows;
}
}  // namespace

template <class T>
void depthwise_conv2d_forward(uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream) {
    check_depthwise("depthwise_conv2d_forward", g);
    const int rows = forward_rows<T>(g);
    if (rows > 0 && g.HO > 0 && g.WO > 0) {
        const int tiles = (int)ceil_div(g.HO, rows);
        MINIDL_LAUNCH(depthwise_conv2d_forward_tiled_kernel<T>, grid_1d((long long)g.N * g.O * tiles, 1),
                      dim3(kDwThreads), 0, stream, cp<T>(x), cp<T>(w), mp<T>(y), g, rows, tiles);
        return;
    }
    const long long total = (long long)g.N * g.O * g.HO * g.WO;
    MINIDL_LAUNCH(depthwise_conv2d_forward_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream, cp<T>(x),
                  cp<T>(w), mp<T>(y), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(depthwise_conv2d_forward);

template <class T>
void depthwise_conv2d_backward_data(uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream) {
    check_depthwise("depthwise_conv2d_backward_data", g);
    const int rows = backward_data_rows<T>(g);
    if (rows > 0 && g.H > 0 && g.W > 0) {
        const int tiles = (int)ceil_div(g.H, rows);
        MINIDL_LAUNCH(depthwise_conv2d_backward_data_tiled_kernel<T>, grid_1d((long long)g.N * g.C * tiles, 1),
                      dim3(kDwThreads), 0, stream, cp<T>(gy), cp<T>(w), mp<T>(dx), g, rows, tiles);
        return;
    }
    const long long total = (long long)g.N * g.C * g.H * g.W;
    MINIDL_LAUNCH(depthwise_conv2d_backward_data_kernel<T>, grid_1d(total, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), cp<T>(w), mp<T>(dx), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(depthwise_conv2d_backward_data);

template <class T>
void depthwise_conv2d_backward_weight(uptr x, uptr gy, uptr dw, uptr work, const ConvGeometry& g, uptr stream) {
    check_depthwise("depthwise_conv2d_backward_weight", g);
    const int rows = backward_weight_rows<T>(g), KK = g.KH * g.KW;
    if (rows > 0 && g.N > 0 && g.HO > 0 && g.WO > 0) {
        MINIDL_LAUNCH(depthwise_conv2d_backward_weight_tiled_kernel<T>, grid_1d((long long)g.N * g.O, 1),
                      dim3(kDwThreads), 0, stream, cp<T>(x), cp<T>(gy), mp<compute_t<T>>(work), g, rows);
        MINIDL_LAUNCH((sum_partials_kernel<compute_t<T>, T>), dim3(ceil_div((long long)g.O * KK, 128)), dim3(128), 0,
                      stream, cp<compute_t<T>>(work), g.N, g.O * KK, mp<T>(dw));
        return;
    }
    // one block per (o, tap); small reductions get narrower blocks
    const long long per_block = (long long)g.N * g.HO * g.WO;
    const int threads = per_block >= 4096 ? kDepthwiseReduceThreads : per_block >= 512 ? 128 : 32;
    MINIDL_LAUNCH(depthwise_conv2d_backward_weight_kernel<T>, dim3((unsigned)(g.O * g.KH * g.KW)), dim3(threads), 0,
                  stream, cp<T>(x), cp<T>(gy), mp<T>(dw), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(depthwise_conv2d_backward_weight);

MINIDL_HALF_LAUNCHERS(depthwise_conv2d_forward, (uptr x, uptr w, uptr y, const ConvGeometry& g, uptr stream),
                      (x, w, y, g, stream))
MINIDL_HALF_LAUNCHERS(depthwise_conv2d_backward_data, (uptr gy, uptr w, uptr dx, const ConvGeometry& g, uptr stream),
                      (gy, w, dx, g, stream))
MINIDL_HALF_LAUNCHERS(depthwise_conv2d_backward_weight,
                      (uptr x, uptr gy, uptr dw, uptr work, const ConvGeometry& g, uptr stream),
                      (x, gy, dw, work, g, stream))

}  // namespace minidl
