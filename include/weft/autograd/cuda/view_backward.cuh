// weft/autograd/cuda/view_backward.cuh: the backward of a view on the GPU, the scatter-add of the
// view's gradient into its base's (autograd/tape.hpp, Slot::accumulate_view).
//
//   cuda::view_scatter_add(dst, g, merged_to, base_offset);   // dst[pos - base_offset] += g[i]
//
// A view's element i sits at position pos(i) = to.offset + Σ idx_d · to.strides_d of one address
// space (the storage); its gradient g is dense in the view's row-major order. Positions are
// distinct along the axes whose stride is not 0. Axes of stride 0 (an expanded view) send several
// elements to one position. So the kernel gives each position of the non-zero-stride axes one
// thread, and that thread adds the elements that share the position serially, in row-major order
// of the stride-0 axes, which is the order of i. The CPU (detail::scatter_add) adds into a
// position in the order of i too, rounding to T after each addition; this kernel does exactly
// that, so both devices produce the same bits, with no atomics. (A base that is itself expanded
// would share positions among the base's own elements; tape.hpp refuses it before calling here.)
//
// Index arithmetic: the thread index is 32-bit when there are fewer than 2^31 positions (checked
// on the host), 64-bit otherwise; positions and offsets are always 64-bit.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/autograd/cuda/view_backward.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/error.hpp"
#include "../../core/grad_slot.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft {

namespace cuda {

namespace kernels {

// A view's layout split in two: `spread` axes (stride not 0: one thread per position) and
// `shared` axes (stride 0: walked serially by that thread). `*_src` are the strides of the dense
// gradient (the view's row-major order). `offset`: element 0's position, relative to dst.
struct ViewScatter {
    index_t spread_shape[8];
    index_t spread_pos[8];
    index_t spread_src[8];
    index_t shared_shape[8];
    index_t shared_src[8];
    index_t offset;
    int spread_rank;
    int shared_rank;
};

template <class T, class I>
__global__ void __launch_bounds__(256)
    view_scatter_add(T* dst, const T* src, const ViewScatter a, const I positions, const I shared) {
    using C = compute_t<T>;
    const I step = I(gridDim.x) * blockDim.x;
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < positions; i += step) {
        I rem = i;
        index_t pos = a.offset, first = 0;
        for (int d = a.spread_rank - 1; d >= 0; --d) {  // innermost axis first
            const I ext = I(a.spread_shape[d]);
            const I q = rem / ext;
            const index_t r = index_t(rem - q * ext);
            pos += r * a.spread_pos[d];
            first += r * a.spread_src[d];
            rem = q;
        }
        T acc = dst[pos];
        for (I k = 0; k < shared; ++k) {  // row-major over the shared axes: increasing i
            I kr = k;
            index_t at = first;
            for (int d = a.shared_rank - 1; d >= 0; --d) {
                const I ext = I(a.shared_shape[d]);
                const I q = kr / ext;
                at += index_t(kr - q * ext) * a.shared_src[d];
                kr = q;
            }
            acc = convert<T>(convert<C>(acc) + convert<C>(src[at]));
        }
        dst[pos] = acc;
    }
}

}  // namespace kernels

// dst[pos - base_offset] += src[i] for every element i of the view `to` at position pos, src dense
// in to's row-major order. `to` should be merged (autograd::detail::merged: size-1 axes dropped,
// contiguous runs folded), which only saves index arithmetic.
template <class T>
void view_scatter_add(T* dst, const T* src, const StridedLayout& to, index_t base_offset) {
    WEFT_CHECK(to.rank >= 0 && to.rank <= 8, "view_scatter_add: rank ", to.rank, " is outside 0..8");
    const index_t n = to.numel();
    if (n == 0) return;
    kernels::ViewScatter a{};
    a.offset = to.offset - base_offset;
    // Both lists outermost axis first, in the view's order; `dense` is the gradient's stride of
    // axis d (n > 0, so no extent is 0).
    index_t positions = 1, shared = 1, dense = n;
    for (int d = 0; d < to.rank; ++d) {
        dense /= to.shape[d];
        if (to.strides[d] == 0) {
            a.shared_shape[a.shared_rank] = to.shape[d];
            a.shared_src[a.shared_rank] = dense;
            ++a.shared_rank;
            shared *= to.shape[d];
        } else {
            a.spread_shape[a.spread_rank] = to.shape[d];
            a.spread_pos[a.spread_rank] = to.strides[d];
            a.spread_src[a.spread_rank] = dense;
            ++a.spread_rank;
            positions *= to.shape[d];
        }
    }
    const unsigned grid = grid_blocks(positions, block_threads);
    const cudaStream_t stream = current_stream();
    if (positions <= std::numeric_limits<std::int32_t>::max() && shared <= std::numeric_limits<std::int32_t>::max()) {
        kernels::view_scatter_add<T, std::uint32_t>
            <<<grid, block_threads, 0, stream>>>(dst, src, a, std::uint32_t(positions), std::uint32_t(shared));
    } else {
        kernels::view_scatter_add<T, index_t><<<grid, block_threads, 0, stream>>>(dst, src, a, positions, shared);
    }
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda

}  // namespace weft
