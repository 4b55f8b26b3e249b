// weft/ops/cuda/lanes.cuh: the shared loops of the CUDA norm and softmax kernels (the GPU side
// of ops/cpu/lanes.hpp): sums and maxima across a warp, a block, or the rows of a 2-D block, the
// way rows are dealt to warps or blocks, and a walk over (channel, position) without a division
// per element.
//
//   using Team = kernels::lanes::RowTeam<Block>;     // a warp (Block = false) or a block per row
//   for (index_t r = Team::first(); r < rows; r += Team::step()) {
//       Acc s = 0;
//       for (index_t i = Team::lane(); i < n; i += Team::size()) s += ...;
//       s = Team::reduce(s, kernels::lanes::Sum{}, Acc(0), smem);   // every thread gets the total
//   }
//   lanes::launch_rows(rows, n, [&](auto block, dim3 grid, dim3 threads) { ... <<<grid, threads, 0, s>>> });
//
// Rows of up to kWarpRowLimit elements get one warp each (8 warps, 8 rows, per block), longer
// rows a block of 256 or 512 threads: a warp keeps a short row's reduction in shuffles, a block
// spreads a long row's reads over more of the machine. A reduction along an axis that is not the
// last (AxisSplit's inner > 1) is done by column teams instead: a block of 32 x kLaneRows threads
// holds 32 neighbouring lanes (threadIdx.x), so each read of the block is a coalesced row of
// memory, and kLaneRows threads share each lane's n positions (threadIdx.y), their partial
// results combined in shared memory.
//
// Every reduction here is a fixed tree: the same input gives the same bits on every run, and all
// threads of a team receive the same total (xor shuffles combine a + b and b + a, which are equal).
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/lanes.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft::cuda {

namespace kernels::lanes {

// Threads along the reduced axis of a column team (blockDim.y of the lane kernels).
inline constexpr unsigned kLaneRows = 8;

struct Sum {
    template <class A>
    __device__ __forceinline__ A operator()(A a, A b) const {
        return a + b;
    }
};

// Keeps the first operand unless the second is larger: a NaN is never kept (as the CPU's
// simd_max); softmax lets NaN through its sum of exponentials instead.
struct Max {
    template <class A>
    __device__ __forceinline__ A operator()(A a, A b) const {
        return b > a ? b : a;
    }
};

__device__ __forceinline__ float exp_of(float x) { return ::expf(x); }
__device__ __forceinline__ double exp_of(double x) { return ::exp(x); }
__device__ __forceinline__ float log_of(float x) { return ::logf(x); }
__device__ __forceinline__ double log_of(double x) { return ::log(x); }
__device__ __forceinline__ float sqrt_of(float x) { return ::sqrtf(x); }
__device__ __forceinline__ double sqrt_of(double x) { return ::sqrt(x); }

// Butterfly over the 32 lanes of a warp (all lanes must take part); every lane gets the result.
template <class Acc, class Op>
__device__ __forceinline__ Acc warp_reduce(Acc v, Op op) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Over a 1-D block (blockDim.x a multiple of 32, at most 1024; every thread must call it);
// every thread gets the result. smem: 32 elements, free for reuse once this returns.
template <class Acc, class Op>
__device__ __forceinline__ Acc block_reduce(Acc v, Op op, Acc identity, Acc* smem) {
    v = warp_reduce(v, op);
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();  // the previous call's readers are done with smem
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = lane < warps ? smem[lane] : identity;
    return warp_reduce(v, op);
}

// Over threadIdx.y of a (32, kLaneRows) block, separately for each threadIdx.x (every thread must
// call it); every thread of a column gets its column's result. smem: 32 * kLaneRows elements.
template <class Acc, class Op>
__device__ __forceinline__ Acc column_reduce(Acc v, Op op, Acc* smem) {
    const unsigned tx = threadIdx.x, ty = threadIdx.y;
    __syncthreads();  // the previous call's readers are done with smem
    smem[ty * 32 + tx] = v;
    __syncthreads();
    if (ty == 0) {
        for (unsigned t = 1; t < blockDim.y; ++t) v = op(v, smem[t * 32 + tx]);
        smem[tx] = v;  // this thread's own slot: nobody else reads or writes it before the barrier
    }
    __syncthreads();
    return smem[tx];
}

// The threads that share one row: a warp of a (32, rows per block) block, or a whole 1-D block.
template <bool Block>
struct RowTeam;

template <>
struct RowTeam<false> {
    __device__ static unsigned lane() { return threadIdx.x; }
    __device__ static unsigned size() { return 32; }
    __device__ static index_t first() { return index_t(blockIdx.x) * blockDim.y + threadIdx.y; }
    __device__ static index_t step() { return index_t(gridDim.x) * blockDim.y; }
    template <class Acc, class Op>
    __device__ static Acc reduce(Acc v, Op op, Acc, Acc*) {
        return warp_reduce(v, op);
    }
};

template <>
struct RowTeam<true> {
    __device__ static unsigned lane() { return threadIdx.x; }
    __device__ static unsigned size() { return blockDim.x; }
    __device__ static index_t first() { return index_t(blockIdx.x); }
    __device__ static index_t step() { return index_t(gridDim.x); }
    template <class Acc, class Op>
    __device__ static Acc reduce(Acc v, Op op, Acc identity, Acc* smem) {
        return block_reduce(v, op, identity, smem);
    }
};

// The segment i / s, channel (i / s) % c and position i % s of a flat index i of a dense
// [N, C, S] tensor, for i = i0, i0 + step, ...: divisions up front, none per element (a 64-bit
// division costs dozens of instructions, more than the memory traffic of the element).
// s >= 1, c >= 1.
struct ChannelWalk {
    index_t seg, ch, j;     // the current segment, its channel, and the position in it
    index_t dseg, dch, dj;  // what one step adds: step / s segments, (step / s) % c channels, step % s positions
    index_t c, s;

    __device__ ChannelWalk(index_t i0, index_t step, index_t c_, index_t s_) : c(c_), s(s_) {
        seg = i0 / s;
        j = i0 - seg * s;
        ch = seg % c;
        dseg = step / s;
        dj = step - dseg * s;
        dch = dseg % c;
    }

    __device__ __forceinline__ void next() {
        seg += dseg;
        j += dj;  // < 2s
        ch += dch;
        if (j >= s) {
            j -= s;
            ++seg;
            ++ch;
        }
        if (ch >= c) ch -= c;  // ch <= (c - 1) + (c - 1) + 1 < 2c before this
    }
};

// Writes the column sums of P [chunks, c] (the partial sums of a two-stage reduction), in chunk
// order, converted to Out.
template <class Out, class Acc>
__global__ void __launch_bounds__(256) column_totals(const Acc* __restrict__ P, Out* __restrict__ out, index_t chunks,
                                                     index_t c) {
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t col = index_t(blockIdx.x) * blockDim.x + threadIdx.x; col < c; col += step) {
        Acc s = Acc(0);
        for (index_t k = 0; k < chunks; ++k) s += P[k * c + col];
        out[col] = convert<Out>(s);
    }
}

}  // namespace kernels::lanes

namespace lanes {

// Rows up to this length get one warp each.
inline constexpr index_t kWarpRowLimit = 1024;
inline constexpr unsigned kWarpRowsPerBlock = 8;

// Calls launch(std::bool_constant<Block>, grid, threads) with the configuration for `rows` rows
// of n elements each: Block = false, threads (32, 8) for short rows; Block = true, threads (256
// or 512) for long ones. The row kernels are __launch_bounds__(512).
template <class Launch>
void launch_rows(index_t rows, index_t n, Launch&& launch) {
    if (n <= kWarpRowLimit) {
        launch(std::false_type{}, dim3(grid_blocks(rows, kWarpRowsPerBlock)), dim3(32, kWarpRowsPerBlock));
    } else {
        const unsigned threads = n >= 8192 ? 512u : 256u;
        launch(std::true_type{}, dim3(grid_blocks(rows, 1)), dim3(threads));
    }
}

// Grid and block of the column-team kernels over `lanes` lanes (32 per block, grid-stride).
inline dim3 lane_grid(index_t lanes) { return dim3(grid_blocks(lanes, 32)); }
inline dim3 lane_block() { return dim3(32, kernels::lanes::kLaneRows); }

// Sums P [chunks, c] over its chunks into out [c].
template <class Out, class Acc>
void column_totals(const Acc* P, Out* out, index_t chunks, index_t c) {
    if (c <= 0) return;
    kernels::lanes::column_totals<Out, Acc>
        <<<grid_blocks(c, block_threads), block_threads, 0, current_stream()>>>(P, out, chunks, c);
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace lanes

}  // namespace weft::cuda
