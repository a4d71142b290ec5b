// Pooling kernels (NCHW, viewed as P = N*C independent H x W planes).  Semantics are
// PyTorch's and the CPU backend's (minidl/backend/cpu/pool.py):
//  * geometry: PoolGeometry (launcher.h); window of output oh: rows
//    [oh*sh - ph, oh*sh - ph + KH), clipped to the input; the output size (incl.
//    ceil_mode) is the caller's (minidl/backend/geometry.py).
//  * max: padded cells never win; ties keep the first maximum in row-major window
//    order; NaN wins.  argmax (int32) is the flat h*W + w index in the input plane.
//  * average: divisor is the window clipped to the padded input (KH*KW unless ceil_mode
//    overhangs) with count_include_pad, else the number of real input cells.
//  * adaptive average: bins [floor(i*H/OH), ceil((i+1)*H/OH)).
// Global average pooling (the 1x1 adaptive output) is the per-channel reduction and
// map of channel.cuh over the N*C planes viewed as (1, N*C, H*W): coalesced for any
// plane size (7x7 included).
// Every kernel overwrites its output.  Backward passes are gathers: one thread per input
// pixel visits the output windows that contain it, in row-major output order, so
// overlapping windows (3x3/2) need no atomics and results are deterministic.
// Max and average pooling run on row tiles staged in shared memory (below); the direct
// kernels serve planes too wide for a tile.
#pragma once

#include "channel.cuh"

namespace minidl {

// ------------------------------------------------------------ one pixel's window
// The per-pixel math, shared by the direct kernels and the row-tile kernels below:
// `rows` holds a plane's rows from `row0` on (the plane itself, row0 = 0, for the
// direct kernels; the staged rows for the tiles), W (or OW) values a row.  Sums and
// comparisons run in compute_t<T> (float for the 16-bit instances).

// Output rows whose window [o*s - p, o*s - p + k) contains input row h: [lo, hi].
__device__ __forceinline__ void pool_covering(int h, int k, int s, int p, int out, int& lo, int& hi) {
    lo = h + p < k ? 0 : (h + p - k) / s + 1;
    hi = min((h + p) / s, out - 1);
}

// Window [start, end) of output o along one axis and its divisor length.
__device__ __forceinline__ void avg_window(int o, int s, int p, int k, int size, bool include_pad,
                                           int& start, int& end, int& len) {
    start = o * s - p;
    end = min(start + k, size + p);
    const int padded = end - start;
    start = max(start, 0);
    end = min(end, size);
    len = include_pad ? padded : end - start;
}

template <typename T>
__device__ __forceinline__ void max_of_window(const T* rows, int row0, const PoolGeometry& g, int oh, int ow,
                                              compute_t<T>& best, int& best_idx) {
    int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    const int h1 = min(h0 + g.KH, g.H), w1 = min(w0 + g.KW, g.W);
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    best = -INFINITY;
    best_idx = h0 * g.W + w0;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) {
            const compute_t<T> v = to_compute(rows[(h - row0) * g.W + w]);
            if (v > best || isnan(v)) {
                best = v;
                best_idx = h * g.W + w;
            }
        }
}

// dx of input pixel (h, w) from the gy and argmax rows of its covering outputs
template <typename T>
__device__ __forceinline__ T max_gradient(const T* gy_rows, const int* argmax_rows, int row0, const PoolGeometry& g,
                                          int h, int w) {
    using C = compute_t<T>;
    int oh0, oh1, ow0, ow1;
    pool_covering(h, g.KH, g.sh, g.ph, g.OH, oh0, oh1);
    pool_covering(w, g.KW, g.sw, g.pw, g.OW, ow0, ow1);
    const int idx = h * g.W + w;
    C acc = C(0);
    for (int oh = oh0; oh <= oh1; ++oh)
        for (int ow = ow0; ow <= ow1; ++ow) {
            const int o = (oh - row0) * g.OW + ow;
            if (argmax_rows[o] == idx) acc += to_compute(gy_rows[o]);
        }
    return from_compute<T>(acc);
}

template <typename T>
__device__ __forceinline__ T avg_of_window(const T* rows, int row0, const PoolGeometry& g, int oh, int ow,
                                           bool include_pad) {
    using C = compute_t<T>;
    int h0, h1, dh, w0, w1, dw;
    avg_window(oh, g.sh, g.ph, g.KH, g.H, include_pad, h0, h1, dh);
    avg_window(ow, g.sw, g.pw, g.KW, g.W, include_pad, w0, w1, dw);
    C acc = C(0);
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) acc += to_compute(rows[(h - row0) * g.W + w]);
    return from_compute<T>((h0 < h1 && w0 < w1) ? acc / C(dh * dw) : C(0));
}

template <typename T>
__device__ __forceinline__ T avg_gradient(const T* gy_rows, int row0, const PoolGeometry& g, int h, int w,
                                          bool include_pad) {
    using C = compute_t<T>;
    int oh0, oh1, ow0, ow1;
    pool_covering(h, g.KH, g.sh, g.ph, g.OH, oh0, oh1);
    pool_covering(w, g.KW, g.sw, g.pw, g.OW, ow0, ow1);
    C acc = C(0);
    for (int oh = oh0; oh <= oh1; ++oh) {
        int a, b, dh;
        avg_window(oh, g.sh, g.ph, g.KH, g.H, include_pad, a, b, dh);
        for (int ow = ow0; ow <= ow1; ++ow) {
            int c, d, dw;
            avg_window(ow, g.sw, g.pw, g.KW, g.W, include_pad, c, d, dw);
            acc += to_compute(gy_rows[(oh - row0) * g.OW + ow]) / C(dh * dw);
        }
    }
    return from_compute<T>(acc);
}

// ------------------------------------------------------------ direct kernels
// One thread per output cell (forward) or input pixel (backward), grid-stride; the
// planes too wide for a row tile.
template <typename T>
__global__ void max_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                          int* __restrict__ argmax, PoolGeometry g) {
    const long long total = (long long)g.N * g.C * g.OH * g.OW;
    MINIDL_GRID_STRIDE(i, total) {
        const long long r = i / g.OW;
        compute_t<T> best;
        int idx;
        max_of_window(x + (r / g.OH) * g.H * g.W, 0, g, (int)(r % g.OH), (int)(i % g.OW), best, idx);
        y[i] = from_compute<T>(best);
        argmax[i] = idx;
    }
}

template <typename T>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ gy, const int* __restrict__ argmax,
                                           T* __restrict__ dx, PoolGeometry g) {
    const long long total = (long long)g.N * g.C * g.H * g.W;
    MINIDL_GRID_STRIDE(i, total) {
        const long long r = i / g.W, off = (r / g.H) * g.OH * g.OW;
        dx[i] = max_gradient(gy + off, argmax + off, 0, g, (int)(r % g.H), (int)(i % g.W));
    }
}

template <typename T>
__global__ void avg_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeometry g,
                                          bool include_pad) {
    const long long total = (long long)g.N * g.C * g.OH * g.OW;
    MINIDL_GRID_STRIDE(i, total) {
        const long long r = i / g.OW;
        y[i] = avg_of_window(x + (r / g.OH) * g.H * g.W, 0, g, (int)(r % g.OH), (int)(i % g.OW), include_pad);
    }
}

template <typename T>
__global__ void avg_pool2d_backward_kernel(const T* __restrict__ gy, T* __restrict__ dx, PoolGeometry g,
                                           bool include_pad) {
    const long long total = (long long)g.N * g.C * g.H * g.W;
    MINIDL_GRID_STRIDE(i, total) {
        const long long r = i / g.W;
        dx[i] = avg_gradient(gy + (r / g.H) * g.OH * g.OW, 0, g, (int)(r % g.H), (int)(i % g.W), include_pad);
    }
}

// ------------------------------------------------------------ row tiles
// The main path of max and average pooling.  A block takes a (plane, row tile) work
// item and first stages the rows it reads into shared memory: the input rows of a tile
// of output rows (forward), or the output rows (gy, and argmax) that cover a tile of
// input rows (backward).  Rows of one plane are one contiguous range, so the staging is
// coalesced; each input value is then read once from global memory (plus the rows two
// tiles share), where per-output windows at stride 2 would use half of every sector
// and read each input 2.25 times.
// staged elements per array: 16 KB (4096 floats, 2048 doubles)
template <class T> __host__ __device__ constexpr int pool_tile() { return 16384 / (int)sizeof(T); }
constexpr int kPoolThreads = 256;

// A forward work item: output rows [o0, o1) of `plane`, reading input rows [i0, i1).
struct PoolForwardTile {
    long long plane;
    int o0, o1, i0, i1;
    __device__ PoolForwardTile(const PoolGeometry& g, long long item, int tiles, int rows) {
        plane = item / tiles;
        o0 = (int)(item % tiles) * rows;
        o1 = min(g.OH, o0 + rows);
        i0 = max(0, o0 * g.sh - g.ph);
        i1 = min(g.H, (o1 - 1) * g.sh - g.ph + g.KH);
    }
};

// A backward work item: input rows [i0, i1) of `plane`, covered by output rows [lo, hi].
struct PoolBackwardTile {
    long long plane;
    int i0, i1, lo, hi;
    __device__ PoolBackwardTile(const PoolGeometry& g, long long item, int tiles, int rows) {
        plane = item / tiles;
        i0 = (int)(item % tiles) * rows;
        i1 = min(g.H, i0 + rows);
        int unused;
        pool_covering(i0, g.KH, g.sh, g.ph, g.OH, lo, unused);
        pool_covering(i1 - 1, g.KH, g.sh, g.ph, g.OH, unused, hi);
    }
    __device__ long long staged_start(const PoolGeometry& g) const { return plane * g.OH * g.OW + (long long)lo * g.OW; }
    __device__ long long staged_count(const PoolGeometry& g) const { return hi >= lo ? (long long)(hi - lo + 1) * g.OW : 0; }
};

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    max_pool2d_forward_tiled_kernel(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                                    PoolGeometry g, int rows, int tiles) {
    __shared__ T xs[pool_tile<T>()];
    for (long long item = blockIdx.x; item < (long long)g.N * g.C * tiles; item += gridDim.x) {
        const PoolForwardTile t(g, item, tiles, rows);
        __syncthreads();  // the previous item's rows are consumed
        stage_to_shared(xs, x, t.plane * g.H * g.W + (long long)t.i0 * g.W, (long long)(t.i1 - t.i0) * g.W);
        __syncthreads();
        const long long out = t.plane * g.OH * g.OW + (long long)t.o0 * g.OW;
        for (int o = threadIdx.x; o < (t.o1 - t.o0) * g.OW; o += blockDim.x) {
            compute_t<T> best;
            int idx;
            max_of_window(xs, t.i0, g, t.o0 + o / g.OW, o % g.OW, best, idx);
            y[out + o] = from_compute<T>(best);
            argmax[out + o] = idx;
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    max_pool2d_backward_tiled_kernel(const T* __restrict__ gy, const int* __restrict__ argmax, T* __restrict__ dx,
                                     PoolGeometry g, int rows, int tiles) {
    __shared__ T gs[pool_tile<T>()];
    __shared__ int as[pool_tile<T>()];
    for (long long item = blockIdx.x; item < (long long)g.N * g.C * tiles; item += gridDim.x) {
        const PoolBackwardTile t(g, item, tiles, rows);
        __syncthreads();
        stage_to_shared(gs, gy, t.staged_start(g), t.staged_count(g));
        stage_to_shared(as, argmax, t.staged_start(g), t.staged_count(g));
        __syncthreads();
        const long long base = t.plane * g.H * g.W + (long long)t.i0 * g.W;
        for (int i = threadIdx.x; i < (t.i1 - t.i0) * g.W; i += blockDim.x)
            dx[base + i] = max_gradient(gs, as, t.lo, g, t.i0 + i / g.W, i % g.W);
    }
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    avg_pool2d_forward_tiled_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeometry g, bool include_pad,
                                    int rows, int tiles) {
    __shared__ T xs[pool_tile<T>()];
    for (long long item = blockIdx.x; item < (long long)g.N * g.C * tiles; item += gridDim.x) {
        const PoolForwardTile t(g, item, tiles, rows);
        __syncthreads();
        stage_to_shared(xs, x, t.plane * g.H * g.W + (long long)t.i0 * g.W, (long long)(t.i1 - t.i0) * g.W);
        __syncthreads();
        const long long out = t.plane * g.OH * g.OW + (long long)t.o0 * g.OW;
        for (int o = threadIdx.x; o < (t.o1 - t.o0) * g.OW; o += blockDim.x)
            y[out + o] = avg_of_window(xs, t.i0, g, t.o0 + o / g.OW, o % g.OW, include_pad);
    }
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    avg_pool2d_backward_tiled_kernel(const T* __restrict__ gy, T* __restrict__ dx, PoolGeometry g, bool include_pad,
                                     int rows, int tiles) {
    __shared__ T gs[pool_tile<T>()];
    for (long long item = blockIdx.x; item < (long long)g.N * g.C * tiles; item += gridDim.x) {
        const PoolBackwardTile t(g, item, tiles, rows);
        __syncthreads();
        stage_to_shared(gs, gy, t.staged_start(g), t.staged_count(g));
        __syncthreads();
        const long long base = t.plane * g.H * g.W + (long long)t.i0 * g.W;
        for (int i = threadIdx.x; i < (t.i1 - t.i0) * g.W; i += blockDim.x)
            dx[base + i] = avg_gradient(gs, t.lo, g, t.i0 + i / g.W, i % g.W, include_pad);
    }
}

template <typename T>
__global__ void adaptive_avg_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeometry g) {
    const long long total = (long long)g.N * g.C * g.OH * g.OW;
    MINIDL_GRID_STRIDE(i, total) {
        const int ow = (int)(i % g.OW);
        const long long r = i / g.OW;
        const int oh = (int)(r % g.OH);
        const T* xp = x + (r / g.OH) * g.H * g.W;
        const int h0 = oh * g.H / g.OH, h1 = ((oh + 1) * g.H + g.OH - 1) / g.OH;
        const int w0 = ow * g.W / g.OW, w1 = ((ow + 1) * g.W + g.OW - 1) / g.OW;
        compute_t<T> acc = 0;
        for (int h = h0; h < h1; ++h)
            for (int w = w0; w < w1; ++w) acc += to_compute(xp[h * g.W + w]);
        y[i] = from_compute<T>(acc / compute_t<T>((h1 - h0) * (w1 - w0)));
    }
}

// Input row h lies in the bins [floor(h*OH/H), ceil((h+1)*OH/H) - 1].
template <typename T>
__global__ void adaptive_avg_pool2d_backward_kernel(const T* __restrict__ gy, T* __restrict__ dx, PoolGeometry g) {
    const long long total = (long long)g.N * g.C * g.H * g.W;
    MINIDL_GRID_STRIDE(i, total) {
        const int w = (int)(i % g.W);
        const long long r = i / g.W;
        const int h = (int)(r % g.H);
        const T* gp = gy + (r / g.H) * g.OH * g.OW;
        const int oh0 = h * g.OH / g.H, oh1 = ((h + 1) * g.OH + g.H - 1) / g.H;
        const int ow0 = w * g.OW / g.W, ow1 = ((w + 1) * g.OW + g.W - 1) / g.W;
        compute_t<T> acc = 0;
        for (int oh = oh0; oh < oh1; ++oh) {
            const int h0 = oh * g.H / g.OH, h1 = ((oh + 1) * g.H + g.OH - 1) / g.OH;
            for (int ow = ow0; ow < ow1; ++ow) {
                const int w0 = ow * g.W / g.OW, w1 = ((ow + 1) * g.W + g.OW - 1) / g.OW;
                acc += to_compute(gp[oh * g.OW + ow]) / compute_t<T>((h1 - h0) * (w1 - w0));
            }
        }
        dx[i] = from_compute<T>(acc);
    }
}

}  // namespace minidl
