// weft/ops/cuda/gather.cuh: gather, index_select and scatter_add on the GPU (the CUDA half of
// ops/gather.hpp).
//
//   cuda::gather_lines(out, x, index, axis);        // out[.., k, ..] = x[.., index[.., k, ..], ..]
//   cuda::scatter_add_lines(out, src, index, axis); // out[.., index[.., k, ..], ..] += src[.., k, ..]
//   index_select: the row kernels of ops/cuda/index_rows.cuh on [outer, n, inner].
//
// Every tensor is passed with its own strides, as on the CPU (x, src and out may be views).
// gather reads one element per thread, any order. scatter_add gives each line along `axis`
// (all positions that differ only along it) to one thread, which adds its line's elements in
// order, as the CPU does: lines write disjoint parts of out (index extents never exceed out's
// outside `axis`), so no atomics are needed, and the results are the CPU's bits on every run.
// The price is parallelism over lines only: fine for the short lines these ops see (class axes,
// a few slots), slow for a handful of very long lines. Index math in 32 bits when the element
// (or line) count fits; offsets are 64-bit.
//
// Indices are validated by the callers (ops/cuda/index_check.cuh), whose error messages name the op.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/gather.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"
#include "index_rows.cuh"

namespace weft {

namespace cuda {

namespace kernels {

// The iteration shape (index's) and the strides of the three tensors, in elements. The strides
// along `axis` are copied out as well: indexing the arrays with the run-time axis would make
// nvcc copy the whole parameter struct into local memory.
template <int R, class I>
struct AxisLayout {
    I shape[R];
    index_t out_stride[R];
    index_t src_stride[R];
    index_t idx_stride[R];
    index_t out_axis_stride, src_axis_stride, idx_axis_stride;
    int axis;
};

// out[pos] = src[pos with index[pos] along axis], one thread per position of index's shape.
template <class T, int R, class I>
__global__ void __launch_bounds__(256) gather_elements(T* out, const T* src, const std::int64_t* idx,
                                                       const AxisLayout<R, I> g, I total) {
    const I step = I(gridDim.x) * blockDim.x;
    for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
        I rem = e;
        index_t o = 0, s = 0, x = 0;
#pragma unroll
        for (int d = R - 1; d >= 0; --d) {
            I r;
            if (d > 0) {
                const I q = rem / g.shape[d];
                r = rem - q * g.shape[d];
                rem = q;
            } else {
                r = rem;
            }
            o += index_t(r) * g.out_stride[d];
            x += index_t(r) * g.idx_stride[d];
            if (d != g.axis) s += index_t(r) * g.src_stride[d];
        }
        s += idx[x] * g.src_axis_stride;
        out[o] = src[s];
    }
}

// One thread per line of index's shape along g.axis (`lines` of them, `length` long): out at the
// index's position along the axis += src, in the line's order, in compute_t<T> rounded to T after
// each addition (the CPU's arithmetic).
template <class T, int R, class I>
__global__ void __launch_bounds__(256) scatter_add_lines(T* out, const T* src, const std::int64_t* idx,
                                                         const AxisLayout<R, I> g, I lines, index_t length) {
    using C = compute_t<T>;
    const I step = I(gridDim.x) * blockDim.x;
    const int a = g.axis;
    for (I l = I(blockIdx.x) * blockDim.x + threadIdx.x; l < lines; l += step) {
        I rem = l;
        index_t o = 0, s = 0, x = 0;
#pragma unroll
        for (int d = R - 1; d >= 0; --d) {
            if (d == a) continue;
            const I q = rem / g.shape[d];
            const I r = rem - q * g.shape[d];
            rem = q;
            o += index_t(r) * g.out_stride[d];
            s += index_t(r) * g.src_stride[d];
            x += index_t(r) * g.idx_stride[d];
        }
        const index_t os = g.out_axis_stride, ss = g.src_axis_stride, xs = g.idx_axis_stride;
        for (index_t k = 0; k < length; ++k) {
            T& dst = out[o + idx[x + k * xs] * os];
            dst = convert<T>(convert<C>(dst) + convert<C>(src[s + k * ss]));
        }
    }
}

}  // namespace kernels

namespace detail {

template <int R, class I, class T>
kernels::AxisLayout<R, I> axis_layout(const Shape<R>& shape, const Tensor<T, R, Cuda>& out,
                                      const Tensor<T, R, Cuda>& src, const Tensor<std::int64_t, R, Cuda>& index,
                                      int axis) {
    kernels::AxisLayout<R, I> g{};
    for (int d = 0; d < R; ++d) {
        g.shape[d] = I(shape[d]);
        g.out_stride[d] = out.stride(d);
        g.src_stride[d] = src.stride(d);
        g.idx_stride[d] = index.stride(d);
    }
    g.out_axis_stride = out.stride(axis);
    g.src_axis_stride = src.stride(axis);
    g.idx_axis_stride = index.stride(axis);
    g.axis = axis;
    return g;
}

}  // namespace detail

// out[p] = x[p with index[p] along axis] over index's shape (out has index's shape; any strides).
template <class T, int R>
void gather_lines(const Tensor<T, R, Cuda>& out, const Tensor<T, R, Cuda>& x,
                  const Tensor<std::int64_t, R, Cuda>& index, int axis) {
    const index_t total = index.numel();
    if (total <= 0) return;
    const unsigned grid = grid_blocks(total, block_threads);
    const cudaStream_t stream = current_stream();
    if (total <= index_t(std::numeric_limits<std::int32_t>::max())) {
        using I = std::uint32_t;
        kernels::gather_elements<T, R, I><<<grid, block_threads, 0, stream>>>(
            out.data(), x.data(), index.data(), detail::axis_layout<R, I>(index.shape(), out, x, index, axis),
            I(total));
    } else {
        kernels::gather_elements<T, R, index_t><<<grid, block_threads, 0, stream>>>(
            out.data(), x.data(), index.data(), detail::axis_layout<R, index_t>(index.shape(), out, x, index, axis),
            total);
    }
    WEFT_CUDA_CHECK_LAUNCH();
}

// out[p with index[p] along axis] += src[p] over index's shape, each line along axis in order.
template <class T, int R>
void scatter_add_lines(const Tensor<T, R, Cuda>& out, const Tensor<T, R, Cuda>& src,
                       const Tensor<std::int64_t, R, Cuda>& index, int axis) {
    const index_t length = index.size(axis);
    if (index.numel() <= 0) return;
    const index_t lines = index.numel() / length;
    const unsigned grid = grid_blocks(lines, block_threads);
    const cudaStream_t stream = current_stream();
    if (lines <= index_t(std::numeric_limits<std::int32_t>::max())) {
        using I = std::uint32_t;
        kernels::scatter_add_lines<T, R, I><<<grid, block_threads, 0, stream>>>(
            out.data(), src.data(), index.data(), detail::axis_layout<R, I>(index.shape(), out, src, index, axis),
            I(lines), length);
    } else {
        kernels::scatter_add_lines<T, R, index_t><<<grid, block_threads, 0, stream>>>(
            out.data(), src.data(), index.data(),
            detail::axis_layout<R, index_t>(index.shape(), out, src, index, axis), lines, length);
    }
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda

}  // namespace weft
