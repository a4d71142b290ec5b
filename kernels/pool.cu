// Host launchers of the pooling family (declared in pool.h, kernels in pool.cuh):
// max and average pooling on row tiles (a block per plane and tile, grid-stride over
// them; the direct kernels where a tile does not fit), adaptive pooling 1-D
// grid-stride launches over output cells (forward) or input pixels (backward gathers); the 1x1 adaptive average
// (global pooling) takes channel.cuh's reduction and map over the planes.
#include "pool.h"

#include "pool.cuh"

namespace minidl {

namespace {
long long planes(const PoolGeometry& g) { return (long long)g.N * g.C; }

// Output rows per forward tile (its input rows fit a tile), or 0 if one does not fit.
template <class T>
int forward_tile_rows(const PoolGeometry& g) {
    const int in_rows = pool_tile<T>() / (g.W > 0 ? g.W : 1);
    return in_rows < g.KH ? 0 : (in_rows - g.KH) / g.sh + 1;
}

// Input rows per backward tile (the output rows covering them fit a tile), or 0.
template <class T>
int backward_tile_rows(const PoolGeometry& g) {
    const int out_rows = pool_tile<T>() / (g.OW > 0 ? g.OW : 1);  // covering rows <= (rows - 1 + KH) / sh + 1
    const int rows = (out_rows - 1) * g.sh - g.KH + 1;
    return rows < 1 ? 0 : rows;
}
}  // namespace

template <class T>
void max_pool2d_forward(uptr x, uptr y, uptr argmax, const PoolGeometry& g, uptr stream) {
    const int rows = forward_tile_rows<T>(g);
    if (rows > 0 && g.OH > 0 && g.OW > 0) {
        const int tiles = (int)ceil_div(g.OH, rows);
        MINIDL_LAUNCH(max_pool2d_forward_tiled_kernel<T>, grid_1d(planes(g) * tiles, 1), dim3(kPoolThreads), 0,
                      stream, cp<T>(x), mp<T>(y), mp<int>(argmax), g, rows, tiles);
        return;
    }
    MINIDL_LAUNCH(max_pool2d_forward_kernel<T>, grid_1d(planes(g) * g.OH * g.OW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), mp<int>(argmax), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(max_pool2d_forward);

template <class T>
void max_pool2d_backward(uptr gy, uptr argmax, uptr dx, const PoolGeometry& g, uptr stream) {
    const int rows = backward_tile_rows<T>(g);
    if (rows > 0 && g.H > 0 && g.W > 0) {
        const int tiles = (int)ceil_div(g.H, rows);
        MINIDL_LAUNCH(max_pool2d_backward_tiled_kernel<T>, grid_1d(planes(g) * tiles, 1), dim3(kPoolThreads), 0,
                      stream, cp<T>(gy), cp<int>(argmax), mp<T>(dx), g, rows, tiles);
        return;
    }
    MINIDL_LAUNCH(max_pool2d_backward_kernel<T>, grid_1d(planes(g) * g.H * g.W, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), cp<int>(argmax), mp<T>(dx), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(max_pool2d_backward);

template <class T>
void avg_pool2d_forward(uptr x, uptr y, const PoolGeometry& g, bool count_include_pad, uptr stream) {
    const int rows = forward_tile_rows<T>(g);
    if (rows > 0 && g.OH > 0 && g.OW > 0) {
        const int tiles = (int)ceil_div(g.OH, rows);
        MINIDL_LAUNCH(avg_pool2d_forward_tiled_kernel<T>, grid_1d(planes(g) * tiles, 1), dim3(kPoolThreads), 0,
                      stream, cp<T>(x), mp<T>(y), g, count_include_pad, rows, tiles);
        return;
    }
    MINIDL_LAUNCH(avg_pool2d_forward_kernel<T>, grid_1d(planes(g) * g.OH * g.OW, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(x), mp<T>(y), g, count_include_pad);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(avg_pool2d_forward);

template <class T>
void avg_pool2d_backward(uptr gy, uptr dx, const PoolGeometry& g, bool count_include_pad, uptr stream) {
    const int rows = backward_tile_rows<T>(g);
    if (rows > 0 && g.H > 0 && g.W > 0) {
        const int tiles = (int)ceil_div(g.H, rows);
        MINIDL_LAUNCH(avg_pool2d_backward_tiled_kernel<T>, grid_1d(planes(g) * tiles, 1), dim3(kPoolThreads), 0,
                      stream, cp<T>(gy), mp<T>(dx), g, count_include_pad, rows, tiles);
        return;
    }
    MINIDL_LAUNCH(avg_pool2d_backward_kernel<T>, grid_1d(planes(g) * g.H * g.W, kThreads), dim3(kThreads), 0, stream,
                  cp<T>(gy), mp<T>(dx), g, count_include_pad);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(avg_pool2d_backward);

template <class T>
void adaptive_avg_pool2d_forward(uptr x, uptr y, const PoolGeometry& g, uptr stream) {
    MINIDL_LAUNCH(adaptive_avg_pool2d_forward_kernel<T>, grid_1d(planes(g) * g.OH * g.OW, kThreads), dim3(kThreads),
                  0, stream, cp<T>(x), mp<T>(y), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adaptive_avg_pool2d_forward);

template <class T>
void adaptive_avg_pool2d_backward(uptr gy, uptr dx, const PoolGeometry& g, uptr stream) {
    MINIDL_LAUNCH(adaptive_avg_pool2d_backward_kernel<T>, grid_1d(planes(g) * g.H * g.W, kThreads), dim3(kThreads),
                  0, stream, cp<T>(gy), mp<T>(dx), g);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adaptive_avg_pool2d_backward);

// planes viewed as the channels of one image: (1, N*C, H*W)
template <class T>
void adaptive_avg_pool2d_forward_1x1(uptr x, uptr y, uptr work, const PoolGeometry& g, uptr stream) {
    const long long hw = (long long)g.H * g.W;
    if (planes(g) == 0 || hw == 0) return;
    using V = compute_t<T>;
    launch_channel_sum<T>(cp<T>(x), plan_channel_tiles(1, (int)planes(g), hw), mp<V>(work), mp<T>(y), stream,
                          V(1) / V(hw));
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adaptive_avg_pool2d_forward_1x1);

template <class T>
void adaptive_avg_pool2d_backward_1x1(uptr gy, uptr dx, const PoolGeometry& g, uptr stream) {
    const long long hw = (long long)g.H * g.W;
    if (hw == 0) return;
    if constexpr (std::is_same_v<T, compute_t<T>>)  // the map takes its coefficients (gy) in compute_t<T>
        launch_channel_map<T, Map::kFill>(nullptr, nullptr, cp<T>(gy), mp<T>(dx), 1, (int)planes(g), hw, stream,
                                          T(1) / T(hw));
    else
        adaptive_avg_pool2d_backward<T>(gy, dx, g, stream);
}
MINIDL_INSTANTIATE_FLOAT_DOUBLE(adaptive_avg_pool2d_backward_1x1);

MINIDL_HALF_LAUNCHERS(adaptive_avg_pool2d_forward, (uptr x, uptr y, const PoolGeometry& g, uptr stream),
                      (x, y, g, stream))
MINIDL_HALF_LAUNCHERS(adaptive_avg_pool2d_backward, (uptr gy, uptr dx, const PoolGeometry& g, uptr stream),
                      (gy, dx, g, stream))
MINIDL_HALF_LAUNCHERS(adaptive_avg_pool2d_forward_1x1,
                      (uptr x, uptr y, uptr work, const PoolGeometry& g, uptr stream), (x, y, work, g, stream))
MINIDL_HALF_LAUNCHERS(adaptive_avg_pool2d_backward_1x1, (uptr gy, uptr dx, const PoolGeometry& g, uptr stream),
                      (gy, dx, g, stream))

MINIDL_HALF_LAUNCHERS(max_pool2d_forward, (uptr x, uptr y, uptr argmax, const PoolGeometry& g, uptr stream),
                 (x, y, argmax, g, stream))
MINIDL_HALF_LAUNCHERS(max_pool2d_backward, (uptr gy, uptr argmax, uptr dx, const PoolGeometry& g, uptr stream),
                 (gy, argmax, dx, g, stream))
MINIDL_HALF_LAUNCHERS(avg_pool2d_forward, (uptr x, uptr y, const PoolGeometry& g, bool include_pad, uptr stream),
                 (x, y, g, include_pad, stream))
MINIDL_HALF_LAUNCHERS(avg_pool2d_backward, (uptr gy, uptr dx, const PoolGeometry& g, bool include_pad, uptr stream),
                 (gy, dx, g, include_pad, stream))

}  // namespace minidl
