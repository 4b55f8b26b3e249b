// weft/ops/cuda/index_check.cuh: finding the first out-of-range index of a GPU tensor, for the
// error messages of the indexing ops and of cross_entropy's targets.
//
//   const index_t j = weft::cuda::first_bad_index(ids.data(), ids.numel(), rows);   // -1: all in range
//   if (j >= 0) WEFT_FAIL("embedding: index ", weft::cuda::index_at(ids.data(), j), ...);
//
// The CPU ops check every index before they use one and throw weft::Error naming the first bad
// value and its flat position (docs/ops-indexing.md, DESIGN.md §6: bad input is an error, never a
// silent read out of bounds). On the GPU the check is one kernel: each failing position takes part
// in an atomicMin, so the result is the lowest failing position, the one the CPU loop names. The
// op must know that answer before it may throw or hand out a result, so the 8 bytes come back to
// the host, which waits for the stream here: the one synchronisation of these ops. It costs the
// host's lead over the GPU at that point (the queue drains, then refills), not a copy of the
// indices; indices are checked where the user hands them in (each forward and each plain
// backward function), not per element read.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/index_check.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <cstdint>

#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft {

namespace cuda {

namespace kernels {

// *first = min(*first, j) over every j whose index lies outside [0, bound) and is not `skip`
// (when has_skip). *first starts as all ones bits (no failure). (A template, as every weft
// kernel: a header's kernels must not clash between translation units.)
template <class Index>
__global__ void __launch_bounds__(256) find_bad_index(const Index* idx, index_t n, Index bound, Index skip,
                                                      bool has_skip, unsigned long long* first) {
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t j = index_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += step) {
        const Index v = idx[j];
        if ((v < 0 || v >= bound) && !(has_skip && v == skip)) atomicMin(first, static_cast<unsigned long long>(j));
    }
}

}  // namespace kernels

// The lowest flat position j < n of the dense device array idx whose value is outside [0, bound)
// (and is not *skip, when given), or -1 when there is none. Waits for the current stream.
inline index_t first_bad_index(const std::int64_t* idx, index_t n, std::int64_t bound, const std::int64_t* skip = nullptr) {
    if (n <= 0) return -1;
    auto first = Tensor<std::int64_t, 1, Cuda>::empty({1});
    const cudaStream_t stream = current_stream();
    WEFT_CUDA_CHECK(cudaMemsetAsync(first.data(), 0xff, sizeof(std::int64_t), stream));
    kernels::find_bad_index<<<grid_blocks(n, block_threads), block_threads, 0, stream>>>(
        idx, n, bound, skip ? *skip : 0, skip != nullptr, reinterpret_cast<unsigned long long*>(first.data()));
    WEFT_CUDA_CHECK_LAUNCH();
    std::uint64_t host = 0;
    Backend<Cuda>::copy_between(&host, Cpu{}, first.data(), Cuda{}, sizeof(host));  // waits for the stream
    return host == ~std::uint64_t(0) ? index_t(-1) : index_t(host);
}

// The value at flat position j of a device array (for an error message).
inline std::int64_t index_at(const std::int64_t* idx, index_t j) {
    std::int64_t v = 0;
    Backend<Cuda>::copy_between(&v, Cpu{}, idx + j, Cuda{}, sizeof(v));
    return v;
}

}  // namespace cuda

}  // namespace weft
