// weft/ops/cuda/index_rows.cuh: the GPU kernels behind embedding and index_select (the CUDA
// half of ops/cpu/index_rows.hpp).
//
//   cuda::index_rows_forward(out, src, outer, rows, inner, idx, n);    // out[a, j, :] = src[a, idx[j], :]
//   cuda::index_rows_backward(grad_src, grad_out, outer, rows, inner, idx, n);
//
// The forward is a gather, one thread per output element, consecutive threads along the row
// (coalesced). The backward adds rows back, and indices repeat (the padding token fills most of a
// CLIP text batch), so threads would collide on a gradient row. Rather than float atomics, whose
// order of addition varies from run to run, the positions are grouped by the row they name with
// CUB's stable radix sort of (index, position) pairs: each row's positions come out ascending, as
// ops/cpu/index_rows.hpp orders them. Then one thread per (segment, element of the row) adds its
// positions in that order, in compute_t<T>, from zero: the same additions as the CPU in the same
// order, so float results are bitwise the CPU's and equal on every run. A row with many positions
// is summed by one thread per element (a sequential loop), which bounds the speed of heavily
// repeated indices; the ops using it (token embeddings, index_select of a few rows) are small.
//
// Indices are validated by the callers (ops/cuda/index_check.cuh), whose error messages name the op.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/index_rows.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft {

namespace cuda {

namespace kernels {

// out[a, j, :] = src[a, idx[j], :] for e = (a·n + j)·inner + i < total (both dense). I counts the
// output elements (32 bits when they fit); offsets into src are 64-bit (the table may be larger).
template <class T, class I>
__global__ void __launch_bounds__(256) index_rows_forward(T* out, const T* src, index_t rows, I inner,
                                                          const std::int64_t* idx, I n, I total) {
    const I step = I(gridDim.x) * blockDim.x;
    for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
        const I t = e / inner, i = e - t * inner;
        const I a = t / n, j = t - a * n;
        out[e] = src[(index_t(a) * rows + idx[j]) * index_t(inner) + index_t(i)];
    }
}

template <class I>
__global__ void __launch_bounds__(256) iota(std::int64_t* out, I n) {
    const I step = I(gridDim.x) * blockDim.x;
    for (I j = I(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += step) out[j] = std::int64_t(j);
}

// grad_src[a, r, :] = sum of grad_out[a, j, :] over the positions j of row r, given the sorted
// (key, position) pairs. Thread (a, q, i) works only when q starts a segment (the first position
// of its row): it finds the segment's end by binary search and adds its positions in order.
// Rows that no position names are left as they are (zero, filled by the caller).
template <class T, class I>
__global__ void __launch_bounds__(256) index_rows_backward(T* grad_src, const T* grad_out, index_t rows, I inner,
                                                           const std::uint64_t* keys, const std::int64_t* positions,
                                                           I n, I total) {
    using C = compute_t<T>;
    const I step = I(gridDim.x) * blockDim.x;
    for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
        const I t = e / inner, i = e - t * inner;
        const I a = t / n, q = t - a * n;
        const std::uint64_t r = keys[q];
        if (q > 0 && keys[q - 1] == r) continue;  // not the first position of its row
        I lo = q + 1, hi = n;                     // the segment ends at the first key above r
        while (lo < hi) {
            const I mid = lo + (hi - lo) / 2;
            if (keys[mid] == r) lo = mid + 1;
            else hi = mid;
        }
        const T* g = grad_out + index_t(a) * index_t(n) * index_t(inner) + index_t(i);
        C acc = C(0);
        for (I k = q; k < lo; ++k) acc += convert<C>(g[positions[k] * index_t(inner)]);
        grad_src[(index_t(a) * rows + index_t(r)) * index_t(inner) + index_t(i)] = convert<T>(acc);
    }
}

}  // namespace kernels

// out[a, j, :] = src[a, idx[j], :] for a < outer, j < n; dense device arrays.
template <class T>
void index_rows_forward(T* out, const T* src, index_t outer, index_t rows, index_t inner, const std::int64_t* idx,
                        index_t n) {
    const index_t total = outer * n * inner;
    if (total <= 0) return;
    const unsigned grid = grid_blocks(total, block_threads);
    const cudaStream_t stream = current_stream();
    if (total <= index_t(std::numeric_limits<std::int32_t>::max()))
        kernels::index_rows_forward<T, std::uint32_t><<<grid, block_threads, 0, stream>>>(
            out, src, rows, std::uint32_t(inner), idx, std::uint32_t(n), std::uint32_t(total));
    else
        kernels::index_rows_forward<T, index_t><<<grid, block_threads, 0, stream>>>(out, src, rows, inner, idx, n, total);
    WEFT_CUDA_CHECK_LAUNCH();
}

// grad_src[a, r, :] = sum over j with idx[j] == r of grad_out[a, j, :]; every row written (zero
// where no position names it). Dense device arrays; indices already checked to lie in [0, rows).
template <class T>
void index_rows_backward(T* grad_src, const T* grad_out, index_t outer, index_t rows, index_t inner,
                         const std::int64_t* idx, index_t n) {
    const cudaStream_t stream = current_stream();
    const index_t grad_elems = outer * rows * inner;
    if (grad_elems <= 0) return;
    // All-zero bits are 0 for float, double, bf16 and half alike.
    WEFT_CUDA_CHECK(cudaMemsetAsync(grad_src, 0, std::size_t(grad_elems) * sizeof(T), stream));
    const index_t total = outer * n * inner;
    if (total <= 0) return;
    WEFT_CHECK(n <= index_t(std::numeric_limits<int>::max()), "index_rows_backward: ", n,
               " indices exceed the sort's int range");

    // (index, position) pairs sorted by index, stably: each row's positions stay ascending. Only
    // the bits that an index below `rows` can set take part.
    int bits = 1;
    while (bits < 64 && (std::uint64_t(rows - 1) >> bits) != 0) ++bits;
    auto positions = Tensor<std::int64_t, 1, Cuda>::empty({n});
    auto sorted_positions = Tensor<std::int64_t, 1, Cuda>::empty({n});
    auto sorted_keys = Tensor<std::int64_t, 1, Cuda>::empty({n});
    const auto* keys_in = reinterpret_cast<const std::uint64_t*>(idx);  // every index is >= 0
    auto* keys_out = reinterpret_cast<std::uint64_t*>(sorted_keys.data());
    kernels::iota<index_t><<<grid_blocks(n, block_threads), block_threads, 0, stream>>>(positions.data(), n);
    WEFT_CUDA_CHECK_LAUNCH();
    std::size_t temp_bytes = 0;
    WEFT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, positions.data(),
                                                    sorted_positions.data(), int(n), 0, bits, stream));
    auto temp = Tensor<std::uint8_t, 1, Cuda>::empty({index_t(temp_bytes > 0 ? temp_bytes : 1)});
    WEFT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, keys_in, keys_out, positions.data(),
                                                    sorted_positions.data(), int(n), 0, bits, stream));

    const unsigned grid = grid_blocks(total, block_threads);
    if (total <= index_t(std::numeric_limits<std::int32_t>::max()))
        kernels::index_rows_backward<T, std::uint32_t><<<grid, block_threads, 0, stream>>>(
            grad_src, grad_out, rows, std::uint32_t(inner), keys_out, sorted_positions.data(), std::uint32_t(n),
            std::uint32_t(total));
    else
        kernels::index_rows_backward<T, index_t><<<grid, block_threads, 0, stream>>>(
            grad_src, grad_out, rows, inner, keys_out, sorted_positions.data(), n, total);
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda

}  // namespace weft
