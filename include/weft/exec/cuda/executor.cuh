// weft/exec/cuda/executor.cuh: runs expressions and reductions on the GPU.
//
// Assignment launches one kernel per fused expression; the evaluator (a trivially copyable
// struct of pointers and broadcast strides, see expr/expression.hpp) is a kernel parameter.
//  - linear: destination dense and every operand dense in the same order: a grid-stride loop over
//    the flat index, four elements per thread per step (all loads issued before the stores). It
//    counts in 32 bits; tensors beyond 2^30 elements take one launch per 2^30.
//  - strided: otherwise (broadcasting, transposed or sliced operands or destination): a kernel
//    templated on the rank unravels the flat index into a multi-index and calls `ev.at(idx)`.
//    Its index arithmetic is 32-bit when the element count is below 2^31 (integer division is
//    several times faster), 64-bit otherwise. Offsets are always 64-bit.
//
// Reductions (same contract as Executor<Cpu>::reduce): outputs are spread over blocks, and the
// reduced positions of one output over the threads of a block, which combine their partial
// accumulators in a warp-shuffle / shared-memory tree with op.merge. When the innermost axis is
// reduced, the threads of a warp walk the reduced positions (consecutive in memory); when it is
// kept, they walk neighbouring outputs, so loads are coalesced either way. When there are too few
// outputs to fill the GPU and many reduced positions, the positions are split over several blocks
// per output (gridDim.y) and a second kernel merges the partial accumulators.
//
// Positions passed to op.combine are row-major positions within the reduced index space, as on
// the CPU. argmax/argmin keep "first position of the best value" whatever the order in which
// partial results meet: accumulators carrying a position are merged lowest position first.
// Accumulator types come from the ops: on CUDA, float sums accumulate in float.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/exec/cuda/executor.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/tensor.hpp"
#include "../../expr/executor.hpp"
#include "stream.cuh"

namespace weft {

namespace cuda {

// CUDA's portable limit on the bytes of one kernel's parameters.
inline constexpr std::size_t max_kernel_param_bytes = 4096;

namespace kernels {

inline constexpr int assign_unroll = 4;

template <int R, class I>
struct StridedDst {
    I shape[R > 0 ? R : 1];
    index_t stride[R > 0 ? R : 1];
};

// Elements [offset, offset + n) of a dense destination; n < 2^31, so the loop counts in 32 bits
// (larger tensors take several launches).
template <class T, class Ev>
__global__ void __launch_bounds__(256) assign_linear(T* out, const Ev ev, const index_t offset, const std::uint32_t n) {
    using I = std::uint32_t;
    constexpr int U = assign_unroll;
    const I tile = I(blockDim.x) * U;
    const I step = I(gridDim.x) * tile;
    out += offset;
    for (I base = I(blockIdx.x) * tile + threadIdx.x; base < n; base += step) {
        typename Ev::type v[U];
#pragma unroll
        for (int k = 0; k < U; ++k) {
            const I i = base + I(k) * blockDim.x;
            if (i < n) v[k] = ev.linear(offset + index_t(i));
        }
#pragma unroll
        for (int k = 0; k < U; ++k) {
            const I i = base + I(k) * blockDim.x;
            if (i < n) out[i] = convert<T>(v[k]);
        }
    }
}

template <class T, int R, class Ev, class I>
__global__ void __launch_bounds__(256) assign_strided(T* out, const Ev ev, const StridedDst<R, I> dst, const I n) {
    const I step = I(gridDim.x) * blockDim.x;
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        index_t idx[R > 0 ? R : 1] = {};
        index_t off = 0;
        if constexpr (R > 0) {
            I rem = i;
#pragma unroll
            for (int d = R - 1; d > 0; --d) {
                const I q = rem / dst.shape[d];
                const I r = rem - q * dst.shape[d];
                idx[d] = index_t(r);
                off += index_t(r) * dst.stride[d];
                rem = q;
            }
            idx[0] = index_t(rem);
            off += index_t(rem) * dst.stride[0];
        }
        out[off] = convert<T>(ev.at(idx));
    }
}

// ---- reductions ------------------------------------------------------------------------------

// Which input axes are reduced, and the extents to unravel output and position indices with.
template <int R, class I>
struct ReducePlan {
    I ext[R > 0 ? R : 1];  // input extents
    unsigned reduced;      // bit d: axis d is reduced
    unsigned outer;        // bit d: axis d is the outermost kept or the outermost reduced axis; it
                           // takes the whole remaining quotient. (Bits, not axis numbers: comparing
                           // d with a run-time axis lets nvcc index idx[] dynamically, in local memory.)
    I outputs;             // M: number of outputs
    I count;               // K: number of reduced positions per output
    I chunk;               // positions per blockIdx.y (== count without a split)
    bool inner;            // the innermost axis is reduced (or rank 0): lanes walk positions
};

template <class Acc>
concept PositionedAcc = requires(Acc a) {
    a.value;
    a.index;
};

// op.merge(a, b) wants b to cover later positions than a. The threads of a block see interleaved
// positions, so for accumulators that carry a position (argmax/argmin) the one with the lower
// position goes first: ties then keep the first position, whatever the tree's shape.
template <class Op, class Acc>
__device__ __forceinline__ Acc merge_ordered(const Op& op, const Acc& a, const Acc& b) {
    if constexpr (PositionedAcc<Acc>) {
        if (b.index >= 0 && (a.index < 0 || b.index < a.index)) return op.merge(b, a);
    }
    return op.merge(a, b);
}

// __shfl_down_sync of any trivially copyable value, 32 bits at a time (all 32 lanes take part).
template <class T>
__device__ __forceinline__ T shfl_down(const T& v, unsigned offset) {
    static_assert(std::is_trivially_copyable_v<T>, "weft: internal: accumulators must be trivially copyable");
    constexpr int W = int((sizeof(T) + 3) / 4);
    unsigned w[W] = {};
    memcpy(w, &v, sizeof(T));
#pragma unroll
    for (int k = 0; k < W; ++k) w[k] = __shfl_down_sync(0xffffffffu, w[k], offset);
    T r;
    memcpy(&r, w, sizeof(T));
    return r;
}

// Combines the accumulators of the `by` threads (ty = 0..by-1) that share a tx; the result is
// valid in the thread with ty == 0. Every thread of the block must call it (it synchronizes), with
// the same `lanes`: true when ty = threadIdx.x (consecutive lanes of a warp), by a power of two.
template <class Op, class Acc>
__device__ __forceinline__ Acc block_merge(const Op& op, Acc acc, Acc* smem, unsigned tx, unsigned ty, unsigned bx,
                                           unsigned by, bool lanes) {
    if (lanes) {
        // Tree with growing offsets: lane ty (a multiple of 2o) merges [ty, ty+o) with [ty+o, ty+2o),
        // never reading across a group of `by` lanes (by is a power of two, groups are aligned).
        const unsigned width = by < 32 ? by : 32;
        for (unsigned o = 1; o < width; o *= 2) acc = merge_ordered(op, acc, shfl_down(acc, o));
        if (by > 32) {
            const unsigned warps = by / 32;
            if (ty % 32 == 0) smem[tx * warps + ty / 32] = acc;
            __syncthreads();
            if (ty == 0)
                for (unsigned w = 1; w < warps; ++w) acc = merge_ordered(op, acc, smem[tx * warps + w]);
            __syncthreads();  // smem is reused by the next round
        }
        return acc;
    } else {
        smem[ty * bx + tx] = acc;
        __syncthreads();
        for (unsigned s = 1; s < by; s *= 2) {
            if (ty % (2 * s) == 0 && ty + s < by)
                smem[ty * bx + tx] = merge_ordered(op, smem[ty * bx + tx], smem[(ty + s) * bx + tx]);
            __syncthreads();
        }
        if (ty == 0) acc = smem[tx];
        __syncthreads();
        return acc;
    }
}

// Sets the kept axes of idx from the output index m (row-major over the kept axes).
template <int R, class I>
__device__ __forceinline__ void unravel_kept(const ReducePlan<R, I>& pl, I m, index_t* idx) {
#pragma unroll
    for (int d = R - 1; d >= 0; --d) {
        if ((pl.reduced >> d) & 1u) continue;
        if ((pl.outer >> d) & 1u) {
            idx[d] = index_t(m);
        } else {
            const I q = m / pl.ext[d];
            idx[d] = index_t(m - q * pl.ext[d]);
            m = q;
        }
    }
}

// Sets the reduced axes of idx from the position p (row-major over the reduced axes).
template <int R, class I>
__device__ __forceinline__ void unravel_reduced(const ReducePlan<R, I>& pl, I p, index_t* idx) {
#pragma unroll
    for (int d = R - 1; d >= 0; --d) {
        if (!((pl.reduced >> d) & 1u)) continue;
        if ((pl.outer >> d) & 1u) {
            idx[d] = index_t(p);
        } else {
            const I q = p / pl.ext[d];
            idx[d] = index_t(p - q * pl.ext[d]);
            p = q;
        }
    }
}

// Blocks of 256 threads: `by` threads per output over the positions, `bx` outputs per block
// (by * bx == 256). pl.inner (the innermost axis is reduced): blockDim = (by, bx), so consecutive
// lanes walk consecutive positions; else (bx, by), so they walk neighbouring outputs. blockIdx.y
// picks a chunk of positions. Without `partial`, write op.finalize(acc) to out[m]; with it, the
// accumulator to partial[m * gridDim.y + blockIdx.y]. (Run-time flags, uniform over the grid, rather
// than template parameters: each reduction then compiles two kernels, not eight.)
template <class Out, int R, class I, class Ev, class Op>
__global__ void __launch_bounds__(256) reduce(const Ev ev, const Op op, const ReducePlan<R, I> pl, Out* out,
                                              typename Op::acc_type* partial, const index_t count) {
    using Acc = typename Op::acc_type;
    __shared__ alignas(16) unsigned char smem_raw[256 * sizeof(Acc)];
    Acc* smem = reinterpret_cast<Acc*>(smem_raw);
    const bool inner = pl.inner;
    const unsigned by = inner ? blockDim.x : blockDim.y;
    const unsigned bx = inner ? blockDim.y : blockDim.x;
    const unsigned ty = inner ? threadIdx.x : threadIdx.y;
    const unsigned tx = inner ? threadIdx.y : threadIdx.x;
    const I p_begin = I(blockIdx.y) * pl.chunk;
    const I p_end = pl.count - p_begin < pl.chunk ? pl.count : p_begin + pl.chunk;
    // m0 is the same in every thread of the block, so all of them reach block_merge together.
    for (I m0 = I(blockIdx.x) * bx; m0 < pl.outputs; m0 += I(gridDim.x) * bx) {
        const I m = m0 + tx;
        Acc acc = op.init();
        if (m < pl.outputs) {
            index_t idx[R > 0 ? R : 1] = {};
            unravel_kept(pl, m, idx);
            for (I p = p_begin + ty; p < p_end; p += by) {
                unravel_reduced(pl, p, idx);
                acc = op.combine(acc, ev.at(idx), index_t(p));
            }
        }
        acc = block_merge(op, acc, smem, tx, ty, bx, by, inner);
        if (ty == 0 && m < pl.outputs) {
            if (partial) partial[index_t(m) * gridDim.y + blockIdx.y] = acc;
            else out[m] = op.template finalize<Out>(acc, count);
        }
    }
}

// Second pass of a split reduction: merges the `splits` partial accumulators of each output in
// position order. blockDim = (by, bx), as a first pass with pl.inner.
template <class Out, class Op, class I>
__global__ void __launch_bounds__(256) reduce_finish(const Op op, const typename Op::acc_type* partial,
                                                     const I outputs, const I splits, Out* out, const index_t count) {
    using Acc = typename Op::acc_type;
    __shared__ alignas(16) unsigned char smem_raw[256 * sizeof(Acc)];
    Acc* smem = reinterpret_cast<Acc*>(smem_raw);
    const unsigned by = blockDim.x, bx = blockDim.y, ty = threadIdx.x, tx = threadIdx.y;
    for (I m0 = I(blockIdx.x) * bx; m0 < outputs; m0 += I(gridDim.x) * bx) {
        const I m = m0 + tx;
        Acc acc = op.init();
        if (m < outputs)
            for (I s = ty; s < splits; s += by) acc = merge_ordered(op, acc, partial[index_t(m) * splits + s]);
        acc = block_merge(op, acc, smem, tx, ty, bx, by, true);
        if (ty == 0 && m < outputs) out[m] = op.template finalize<Out>(acc, count);
    }
}

// The value of a reduction over nothing (sum 0, mean NaN), as a generate functor.
template <class Out, class Op>
struct EmptyReduction {
    Op op;
    WEFT_HD Out operator()(index_t) const { return op.template finalize<Out>(op.init(), 0); }
};

}  // namespace kernels

inline unsigned next_pow2(index_t n) {
    unsigned p = 1;
    while (p < 256 && index_t(p) < n) p *= 2;
    return p;
}

}  // namespace cuda

template <>
struct Executor<Cuda> {
    template <Element T, int R, class Ev>
    static void assign(const Tensor<T, R, Cuda>& dst, const Ev& ev) {
        static_assert(std::is_trivially_copyable_v<Ev>, "weft: internal: evaluators must be trivially copyable");
        static_assert(sizeof(T*) + sizeof(Ev) + sizeof(cuda::kernels::StridedDst<R, index_t>) + sizeof(index_t) <=
                          cuda::max_kernel_param_bytes,
                      "weft: this fused expression is too large for one CUDA kernel: its evaluator exceeds the "
                      "4 KiB of kernel parameters. Split the expression: evaluate part of it first with eval(...) "
                      "and use the resulting tensor in the rest.");
        const index_t n = dst.numel();
        if (n == 0) return;
        T* out = dst.data();
        const cudaStream_t stream = cuda::current_stream();
        constexpr int threads = cuda::block_threads;
        const bool small = n <= index_t(std::numeric_limits<std::int32_t>::max());
        if (dst.is_contiguous() && ev.linear_ok()) {
            constexpr index_t chunk = index_t(1) << 30;
            for (index_t offset = 0; offset < n; offset += chunk) {
                const index_t len = std::min(chunk, n - offset);
                const unsigned grid = cuda::grid_blocks(len, index_t(threads) * cuda::kernels::assign_unroll);
                cuda::kernels::assign_linear<T, Ev>
                    <<<grid, threads, 0, stream>>>(out, ev, offset, std::uint32_t(len));
                WEFT_CUDA_CHECK_LAUNCH();
            }
            return;
        }
        const unsigned grid = cuda::grid_blocks(n, threads);
        if (small) launch_strided<std::uint32_t>(dst, ev, grid, stream);
        else launch_strided<index_t>(dst, ev, grid, stream);
    }

    // out has the input's rank with extent 1 on every reduced axis, and is dense.
    template <Element Out, int R, class Ev, class Mask, class Op>
    static void reduce(const Tensor<Out, R, Cuda>& out, const Ev& ev, const Shape<R>& in, const Mask& mask, Op op) {
        using Acc = typename Op::acc_type;
        static_assert(std::is_trivially_copyable_v<Ev> && std::is_trivially_copyable_v<Op> &&
                          std::is_trivially_copyable_v<Acc>,
                      "weft: internal: evaluators, reduce ops and accumulators must be trivially copyable");
        static_assert(sizeof(Ev) + sizeof(Op) + sizeof(cuda::kernels::ReducePlan<R, index_t>) + 2 * sizeof(void*) +
                              sizeof(index_t) <=
                          cuda::max_kernel_param_bytes,
                      "weft: this fused expression is too large for one CUDA kernel: its evaluator exceeds the "
                      "4 KiB of kernel parameters. Split the expression: evaluate part of it first with eval(...) "
                      "and reduce the resulting tensor.");
        static_assert(R <= 32, "weft: internal: reduce plan mask holds 32 axes");
        const index_t outputs = out.numel();
        if (outputs == 0) return;
        index_t count = 1;
        for (int d = 0; d < R; ++d)
            if (mask[d]) count *= in[d];
        if (count == 0) {  // an empty range: sum 0, mean NaN (0/0), as on the CPU
            Backend<Cuda>::generate(out.data(), outputs, cuda::kernels::EmptyReduction<Out, Op>{op});
            return;
        }
        constexpr index_t i32max = std::numeric_limits<std::int32_t>::max();
        if (outputs <= i32max && count <= i32max) run_reduce<std::uint32_t>(out, ev, in, mask, op, outputs, count);
        else run_reduce<index_t>(out, ev, in, mask, op, outputs, count);
    }

private:
    template <class I, Element T, int R, class Ev>
    static void launch_strided(const Tensor<T, R, Cuda>& dst, const Ev& ev, unsigned grid, cudaStream_t stream) {
        cuda::kernels::StridedDst<R, I> d{};
        for (int k = 0; k < R; ++k) {
            d.shape[k] = I(dst.shape()[k]);
            d.stride[k] = dst.strides()[k];
        }
        cuda::kernels::assign_strided<T, R, Ev, I>
            <<<grid, cuda::block_threads, 0, stream>>>(dst.data(), ev, d, I(dst.numel()));
        WEFT_CUDA_CHECK_LAUNCH();
    }

    template <class I, Element Out, int R, class Ev, class Mask, class Op>
    static void run_reduce(const Tensor<Out, R, Cuda>& out, const Ev& ev, const Shape<R>& in, const Mask& mask,
                           const Op& op, index_t outputs, index_t count) {
        using Acc = typename Op::acc_type;
        cuda::kernels::ReducePlan<R, I> pl{};
        pl.reduced = 0;
        pl.outer = 0;
        bool seen_kept = false, seen_reduced = false;
        for (int d = 0; d < R; ++d) {
            pl.ext[d] = I(in[d]);
            bool& seen = mask[d] ? seen_reduced : seen_kept;
            if (mask[d]) pl.reduced |= 1u << d;
            if (!seen) pl.outer |= 1u << d;
            seen = true;
        }
        pl.outputs = I(outputs);
        pl.count = I(count);

        // Threads per output (by) and outputs per block (bx), by * bx == 256.
        const bool inner_reduced = R == 0 || mask[R > 0 ? R - 1 : 0];
        pl.inner = inner_reduced;
        unsigned by, bx;
        if (inner_reduced) {
            by = cuda::next_pow2(count);
            bx = 256 / by;
        } else {
            bx = std::min(32u, cuda::next_pow2(outputs));
            by = 256 / bx;
        }
        const index_t sms = cuda::multiprocessor_count();
        const index_t blocks_x = std::min<index_t>((outputs + bx - 1) / bx, sms * 32);

        // Too few blocks to fill the GPU (one wave: 8 blocks of 256 per SM) and long ranges: split
        // each output's positions over `splits` blocks, each at least 16 positions per thread.
        index_t splits = 1;
        const index_t target = sms * 8;
        if (blocks_x < target) {
            const index_t min_chunk = index_t(by) * 16;
            splits = std::min<index_t>(
                {(target + blocks_x - 1) / blocks_x, (count + min_chunk - 1) / min_chunk, index_t(65535)});
            splits = std::max<index_t>(splits, 1);
        }
        index_t chunk = (count + splits - 1) / splits;
        splits = (count + chunk - 1) / chunk;
        pl.chunk = I(chunk);

        const dim3 block = inner_reduced ? dim3(by, bx) : dim3(bx, by);
        const dim3 grid{unsigned(blocks_x), unsigned(splits)};
        const cudaStream_t stream = cuda::current_stream();
        Out* o = out.data();
        if (splits == 1) {
            cuda::kernels::reduce<Out, R, I, Ev, Op><<<grid, block, 0, stream>>>(ev, op, pl, o, nullptr, count);
            WEFT_CUDA_CHECK_LAUNCH();
            return;
        }

        // Partial accumulators, [outputs][splits]. The workspace goes back to the cache right after
        // the launches: its next user is queued on the same stream, after these kernels.
        const std::size_t bytes = std::size_t(outputs) * std::size_t(splits) * sizeof(Acc);
        Acc* partial = static_cast<Acc*>(Backend<Cuda>::allocate(bytes));
        struct Release {
            void* p;
            ~Release() { Backend<Cuda>::deallocate(p, 0); }
        } release{partial};
        cuda::kernels::reduce<Out, R, I, Ev, Op><<<grid, block, 0, stream>>>(ev, op, pl, o, partial, count);
        WEFT_CUDA_CHECK_LAUNCH();
        const unsigned fby = cuda::next_pow2(splits), fbx = 256 / fby;
        const unsigned fgrid = unsigned(std::min<index_t>((outputs + fbx - 1) / fbx, sms * 32));
        cuda::kernels::reduce_finish<Out, Op, I>
            <<<fgrid, dim3(fby, fbx), 0, stream>>>(op, partial, I(outputs), I(splits), o, count);
        WEFT_CUDA_CHECK_LAUNCH();
    }
};

}  // namespace weft
