// weft/ops/cuda/interpolate.cuh: interpolate's CUDA half, nearest and bilinear resizing of
// [N, C, H, W] on the GPU, forward and backward (ops/interpolate.hpp dispatches here for Cuda
// tensors and checks the arguments first).
//
//   auto y  = cuda::interpolate_forward(x, out_h, out_w, scale, nearest, align_corners);
//   auto gx = cuda::interpolate_backward(grad_out, x.shape(), scale, nearest, align_corners);
//
// The same mapping as the CPU (ops/interpolate.hpp): each axis's step is worked out on the host
// by the CPU's formulas, then a small kernel tabulates, per output index, the input indices i0,
// i1 and weights w0, w1 it reads (the CPU's axis_table, computed on the device so that no table
// has to be copied from the host, which would wait for the stream). The forward reads the
// tables, one thread per output element.
//
// The backward is a gather, one thread per input element, with no atomics: along each axis the
// outputs that read input position h form one run of indices (i0 and i1 never decrease, and
// i1 <= i0 + 1, so they are the outputs with i0 <= h <= i1: nearest, i0 == h), found by a binary
// search over the table and stored per input position. The element then adds, for every output
// in the run of its row times the run of its column, the terms that name it, in the order in
// which the CPU's scatter adds them, with the same products.
//
// float, double, bf16 and half; the tables, weights and sums are in compute_t<T> (float for the
// 16-bit types), as the CPU's are in T for float and double.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/interpolate.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>

#include "../../core/bf16.hpp"
#include "../../core/dtype.hpp"
#include "../../core/half.hpp"
#include "../../core/tensor.hpp"
#include "spatial.cuh"

namespace weft::cuda {

namespace detail {

// One axis of a resize, in -> out. step: nearest, the CPU's float step; bilinear, its step in S
// (the compute type); either is exact as a double.
struct ResizeAxis {
    index_t in = 0, out = 0;
    double step = 0;
};

// The CPU's step for one axis (detail::axis_table in ops/interpolate.hpp); scale is the user's
// scale factor, or 0 when the output size was given.
template <class S>
ResizeAxis resize_axis(index_t in, index_t out, double scale, bool nearest, bool align_corners) {
    ResizeAxis a;
    a.in = in, a.out = out;
    if (nearest) a.step = double(scale > 0 ? float(1.0 / scale) : float(in) / float(out));
    else if (align_corners) a.step = double(out > 1 ? S(in - 1) / S(out - 1) : S(0));
    else a.step = double(scale > 0 ? S(1.0 / scale) : S(in) / S(out));
    return a;
}

// Per-axis tables in device memory: for rows ([0], out_h entries) and columns ([1], out_w
// entries), the input indices i0, i1 and weights w0, w1 of every output index; for the backward,
// for rows ([0], in_h entries) and columns ([1], in_w), the run [lo, hi) of outputs that read each
// input position.
template <class S>
struct ResizeTables {
    index_t* i0[2];
    index_t* i1[2];
    S* w0[2];
    S* w1[2];
    index_t* lo[2];
    index_t* hi[2];
};

}  // namespace detail

namespace kernels {

// Entry d of one axis's table, as the CPU's axis_table computes it (nearest: i1 = i0, w0 = 1).
template <class S>
__device__ inline void resize_entry(const detail::ResizeAxis& a, bool nearest, bool align_corners, index_t d,
                                    index_t& i0, index_t& i1, S& w0, S& w1) {
    if (nearest) {
        index_t src = 0;
        if (a.out == a.in)
            src = d;
        else if (a.out == 2 * a.in)
            src = d >> 1;
        else
            src = std::min<index_t>(index_t(floorf(float(d) * float(a.step))), a.in - 1);
        i0 = i1 = src;
        w0 = S(1), w1 = S(0);
        return;
    }
    if (a.out == a.in) {
        i0 = i1 = d;
        w0 = S(1), w1 = S(0);
        return;
    }
    const S step = S(a.step);
    S src = align_corners ? step * S(d) : S(double(step) * (double(d) + 0.5) - 0.5);
    if (src < S(0)) src = S(0);
    i0 = index_t(src);
    i1 = i0 + (i0 < a.in - 1 ? 1 : 0);
    w1 = src - S(i0);
    w0 = S(1) - w1;
}

// Fills the i0, i1, w0, w1 tables: threads [0, rows.out) the rows, the next cols.out the columns.
template <class S>
__global__ void __launch_bounds__(256)
    resize_tables(detail::ResizeTables<S> tab, const detail::ResizeAxis rows, const detail::ResizeAxis cols,
                  bool nearest, bool align_corners) {
    const index_t total = rows.out + cols.out;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t t = index_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
        const int axis = t < rows.out ? 0 : 1;
        const index_t d = axis == 0 ? t : t - rows.out;
        index_t i0, i1;
        S w0, w1;
        resize_entry<S>(axis == 0 ? rows : cols, nearest, align_corners, d, i0, i1, w0, w1);
        tab.i0[axis][d] = i0;
        tab.i1[axis][d] = i1;
        tab.w0[axis][d] = w0;
        tab.w1[axis][d] = w1;
    }
}

// The first d in [0, n) with a[d] > v (n if none); a never decreases.
__device__ inline index_t first_above(const index_t* a, index_t n, index_t v) {
    index_t lo = 0, hi = n;
    while (lo < hi) {
        const index_t mid = lo + (hi - lo) / 2;
        if (a[mid] > v) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// For each input position h of each axis (threads [0, rows.in) the rows, then the columns): the
// run [lo, hi) of outputs with i0 <= h <= i1, i.e. the outputs that read h.
template <class S>
__global__ void __launch_bounds__(256)
    resize_runs(detail::ResizeTables<S> tab, const detail::ResizeAxis rows, const detail::ResizeAxis cols) {
    const index_t total = rows.in + cols.in;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t t = index_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
        const int axis = t < rows.in ? 0 : 1;
        const index_t h = axis == 0 ? t : t - rows.in;
        const index_t out = axis == 0 ? rows.out : cols.out;
        tab.lo[axis][h] = first_above(tab.i1[axis], out, h - 1);  // the first with i1 >= h
        tab.hi[axis][h] = first_above(tab.i0[axis], out, h);      // the first with i0 > h
    }
}

// One output element per thread (total = planes * OH * OW).
template <class T, class S, class I>
__global__ void __launch_bounds__(256)
    resize_forward(const T* __restrict__ x, T* __restrict__ y, const detail::ResizeTables<S> tab, index_t IH,
                   index_t IW, I OH, I OW, bool nearest, I total) {
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const I ow = rest % OW;
        rest /= OW;
        const I oh = rest % OH;
        const index_t plane = index_t(rest / OH);
        const T* src = x + plane * IH * IW;
        if (nearest) {
            y[t] = src[tab.i0[0][oh] * IW + tab.i0[1][ow]];
            continue;
        }
        const T* row0 = src + tab.i0[0][oh] * IW;
        const T* row1 = src + tab.i1[0][oh] * IW;
        const S a0 = tab.w0[0][oh], a1 = tab.w1[0][oh];
        const index_t c0 = tab.i0[1][ow], c1 = tab.i1[1][ow];
        const S b0 = tab.w0[1][ow], b1 = tab.w1[1][ow];
        y[t] = convert<T>(a0 * (b0 * convert<S>(row0[c0]) + b1 * convert<S>(row0[c1])) +
                          a1 * (b0 * convert<S>(row1[c0]) + b1 * convert<S>(row1[c1])));
    }
}

// One input element per thread (total = planes * IH * IW): the gradient it gets from the outputs
// that read it, summed in the CPU's order.
template <class T, class S, class I>
__global__ void __launch_bounds__(256)
    resize_backward(const T* __restrict__ grad_out, T* __restrict__ gx, const detail::ResizeTables<S> tab,
                    I IH, I IW, index_t OH, index_t OW, bool nearest, I total) {
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const index_t iw = index_t(rest % IW);
        rest /= IW;
        const index_t ih = index_t(rest % IH);
        const index_t plane = index_t(rest / IH);
        const T* src = grad_out + plane * OH * OW;
        const index_t oh_lo = tab.lo[0][ih], oh_hi = tab.hi[0][ih];
        const index_t ow_lo = tab.lo[1][iw], ow_hi = tab.hi[1][iw];
        S acc = S(0);
        for (index_t oh = oh_lo; oh < oh_hi; ++oh) {
            const T* g = src + oh * OW;
            if (nearest) {  // every output of both runs reads exactly this element
                for (index_t ow = ow_lo; ow < ow_hi; ++ow) acc += convert<S>(g[ow]);
                continue;
            }
            const bool top = tab.i0[0][oh] == ih, bottom = tab.i1[0][oh] == ih;
            const S a0 = tab.w0[0][oh], a1 = tab.w1[0][oh];
            for (index_t ow = ow_lo; ow < ow_hi; ++ow) {
                const bool left = tab.i0[1][ow] == iw, right = tab.i1[1][ow] == iw;
                const S b0 = tab.w0[1][ow], b1 = tab.w1[1][ow];
                const S v = convert<S>(g[ow]);
                // The CPU's four scatter statements, in their order: (i0, c0), (i0, c1), (i1, c0), (i1, c1).
                if (top && left) acc += a0 * b0 * v;
                if (top && right) acc += a0 * b1 * v;
                if (bottom && left) acc += a1 * b0 * v;
                if (bottom && right) acc += a1 * b1 * v;
            }
        }
        gx[t] = convert<T>(acc);
    }
}

}  // namespace kernels

namespace detail {

template <class T>
void check_interpolate_types() {
    static_assert(std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, bf16> ||
                      std::same_as<T, half>,
                  "weft: interpolate on CUDA takes float, double, bf16 or half tensors");
}

// Device memory for the tables of a resize (with_runs: the backward's runs too), and the tables
// filled in; the buffers must outlive the kernels that read them (they do: stream order, and
// the caching allocator reuses memory only in that order).
template <class S>
struct ResizeScratch {
    Tensor<index_t, 1, Cuda> indices;
    Tensor<S, 1, Cuda> weights;
    ResizeTables<S> tab{};
};

template <class S>
ResizeScratch<S> make_resize_tables(const ResizeAxis& rows, const ResizeAxis& cols, bool nearest, bool align_corners,
                                    bool with_runs) {
    ResizeScratch<S> s;
    const index_t outs = rows.out + cols.out, ins = with_runs ? rows.in + cols.in : 0;
    s.indices = Tensor<index_t, 1, Cuda>::empty({2 * outs + 2 * ins});
    s.weights = Tensor<S, 1, Cuda>::empty({2 * outs});
    index_t* ip = s.indices.data();
    S* wp = s.weights.data();
    // [i0 rows | i0 cols | i1 rows | i1 cols | lo rows | lo cols | hi rows | hi cols], weights alike
    s.tab.i0[0] = ip, s.tab.i0[1] = ip + rows.out;
    s.tab.i1[0] = ip + outs, s.tab.i1[1] = ip + outs + rows.out;
    s.tab.w0[0] = wp, s.tab.w0[1] = wp + rows.out;
    s.tab.w1[0] = wp + outs, s.tab.w1[1] = wp + outs + rows.out;
    if (with_runs) {
        index_t* rp = ip + 2 * outs;
        s.tab.lo[0] = rp, s.tab.lo[1] = rp + rows.in;
        s.tab.hi[0] = rp + ins, s.tab.hi[1] = rp + ins + rows.in;
    }
    const cudaStream_t stream = current_stream();
    kernels::resize_tables<S><<<grid_blocks(outs, block_threads), block_threads, 0, stream>>>(
        s.tab, rows, cols, nearest, align_corners);
    WEFT_CUDA_CHECK_LAUNCH();
    if (with_runs) {
        kernels::resize_runs<S><<<grid_blocks(ins, block_threads), block_threads, 0, stream>>>(s.tab, rows, cols);
        WEFT_CUDA_CHECK_LAUNCH();
    }
    return s;
}

}  // namespace detail

// x [N, C, H, W] (dense, H, W >= 1) -> [N, C, out_h, out_w] (out_h, out_w >= 1). scale: the
// user's scale factors, or {0, 0} when the size was given.
template <class T>
Tensor<T, 4, Cuda> interpolate_forward(const Tensor<T, 4, Cuda>& x, index_t out_h, index_t out_w,
                                       std::array<double, 2> scale, bool nearest, bool align_corners) {
    detail::check_interpolate_types<T>();
    using S = compute_t<T>;
    auto y = Tensor<T, 4, Cuda>::empty({x.size(0), x.size(1), out_h, out_w});  // [N, C, OH, OW]
    const index_t total = y.numel();
    if (total == 0) return y;
    const auto rows = detail::resize_axis<S>(x.size(2), out_h, scale[0], nearest, align_corners);
    const auto cols = detail::resize_axis<S>(x.size(3), out_w, scale[1], nearest, align_corners);
    const auto scratch = detail::make_resize_tables<S>(rows, cols, nearest, align_corners, false);
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::resize_forward<T, S, I><<<grid, block_threads, 0, current_stream()>>>(
            x.data(), y.data(), scratch.tab, x.size(2), x.size(3), I(out_h), I(out_w), nearest, I(total));
    });
    return y;
}

// grad_out [N, C, OH, OW] (dense, OH, OW >= 1) -> the gradient of the input of shape x_shape.
template <class T>
Tensor<T, 4, Cuda> interpolate_backward(const Tensor<T, 4, Cuda>& grad_out, const Shape<4>& x_shape,
                                        std::array<double, 2> scale, bool nearest, bool align_corners) {
    detail::check_interpolate_types<T>();
    using S = compute_t<T>;
    auto gx = Tensor<T, 4, Cuda>::empty(x_shape);
    const index_t total = gx.numel();
    if (total == 0) return gx;
    const index_t out_h = grad_out.size(2), out_w = grad_out.size(3);
    const auto rows = detail::resize_axis<S>(x_shape[2], out_h, scale[0], nearest, align_corners);
    const auto cols = detail::resize_axis<S>(x_shape[3], out_w, scale[1], nearest, align_corners);
    const auto scratch = detail::make_resize_tables<S>(rows, cols, nearest, align_corners, true);
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::resize_backward<T, S, I><<<grid, block_threads, 0, current_stream()>>>(
            grad_out.data(), gx.data(), scratch.tab, I(x_shape[2]), I(x_shape[3]), out_h, out_w, nearest, I(total));
    });
    return gx;
}

}  // namespace weft::cuda
