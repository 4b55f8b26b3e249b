// weft/ops/cuda/spatial.cuh: what the CUDA halves of the [N, C, H, W] ops share (conv2d.cuh,
// conv_transpose2d.cuh, pool.cuh, interpolate.cuh): launching a grid-stride kernel over a flat
// range of elements.
//
//   cuda::detail::launch_spatial(total, [&](auto index, unsigned grid) {
//       using I = decltype(index);
//       kernels::my_kernel<T, I><<<grid, cuda::block_threads, 0, cuda::current_stream()>>>(..., I(total));
//   });
//
// Every spatial kernel runs one thread per element of some tensor (an output element, or an input
// element for the gather-style backward passes) and splits its flat index into coordinates with
// divisions and remainders. 32-bit divisions are several times cheaper than 64-bit ones, so the
// index type I is std::uint32_t when the range fits in 31 bits (a grid-stride step then never
// wraps) and index_t otherwise. Memory offsets are always computed in index_t: a small output can
// still read a large input.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/spatial.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cstdint>
#include <limits>

#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../exec/cuda/stream.cuh"
#include "../detail/spatial.hpp"

namespace weft::cuda::detail {

// Calls launch(I{}, grid) for a kernel over `total` elements (nothing when there are none) and
// checks the launch.
template <class F>
void launch_spatial(index_t total, F&& launch) {
    if (total <= 0) return;
    const unsigned grid = grid_blocks(total, block_threads);
    if (total <= index_t(std::numeric_limits<std::int32_t>::max())) launch(std::uint32_t{}, grid);
    else launch(index_t{}, grid);
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace weft::cuda::detail
