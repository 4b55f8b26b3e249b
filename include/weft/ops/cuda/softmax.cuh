// weft/ops/cuda/softmax.cuh: softmax and log-softmax over any axis on the GPU, forward and
// backward (the CUDA half of ops/softmax.hpp).
//
//   cuda::softmax_forward<Log>(x, y, outer, n, inner);          // dense x, y seen as [outer, n, inner]
//   cuda::softmax_backward<Log>(g, y, gx, outer, n, inner);     // dense g, y, gx
//
// The same three passes as the CPU: the maximum along the axis, the sum of exp(x - max), then
// the scale (softmax) or the shift by the log-sum-exp (log_softmax), in compute_t<T> (float for
// float, bf16 and half; double for double). For the last axis (inner == 1) a row is contiguous
// and one warp (rows up to 1024) or one block handles it, reducing with shuffles; for another
// axis each thread column of a 32 x 8 block walks one lane (o, j) and neighbouring threads read
// neighbouring j, so every load of the block is coalesced (ops/cuda/lanes.cuh). The rows are
// re-read from memory in each pass rather than held in registers: a row of any length works,
// and the second and third reads mostly hit L2.
//
// A NaN in a row is not kept as its maximum; it makes the sum NaN and so every output of the
// row, as on the CPU. exp is expf (within 2 ulp), the CPU's a polynomial within about 1 ulp.
//
// Backward, from the output y only:
//   softmax:      g_x = y * (g - sum(g * y))
//   log_softmax:  g_x = g - exp(y) * sum(g)
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/softmax.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <limits>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../exec/cuda/stream.cuh"
#include "lanes.cuh"

namespace weft::cuda {

namespace kernels {

// One row of n contiguous elements per team (see lanes::RowTeam).
template <bool Log, bool Block, class T>
__global__ void __launch_bounds__(512)
    softmax_rows(const T* __restrict__ X, T* __restrict__ Y, index_t rows, index_t n) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ Acc smem[32];
    constexpr Acc lowest = -std::numeric_limits<Acc>::infinity();
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const T* x = X + r * n;
        T* y = Y + r * n;
        Acc m = lowest;
        for (index_t i = Team::lane(); i < n; i += Team::size()) m = lanes::Max{}(m, convert<Acc>(x[i]));
        m = Team::reduce(m, lanes::Max{}, lowest, smem);
        Acc sum = Acc(0);
        for (index_t i = Team::lane(); i < n; i += Team::size()) sum += lanes::exp_of(convert<Acc>(x[i]) - m);
        sum = Team::reduce(sum, lanes::Sum{}, Acc(0), smem);
        if constexpr (Log) {
            const Acc lse = m + lanes::log_of(sum);
            for (index_t i = Team::lane(); i < n; i += Team::size()) y[i] = convert<T>(convert<Acc>(x[i]) - lse);
        } else {
            const Acc inv = Acc(1) / sum;
            for (index_t i = Team::lane(); i < n; i += Team::size())
                y[i] = convert<T>(lanes::exp_of(convert<Acc>(x[i]) - m) * inv);
        }
    }
}

// Axis with inner > 1: lane l in [0, outer * inner) holds the elements base(l) + k * inner, k in
// [0, n); threadIdx.x picks the lane within the block's 32, threadIdx.y strides over k.
template <bool Log, class T>
__global__ void __launch_bounds__(256)
    softmax_lanes(const T* __restrict__ X, T* __restrict__ Y, index_t lanes_total, index_t n, index_t inner) {
    using Acc = compute_t<T>;
    __shared__ Acc smem[32 * lanes::kLaneRows];
    constexpr Acc lowest = -std::numeric_limits<Acc>::infinity();
    const index_t blocks = (lanes_total + 31) / 32;
    for (index_t b = blockIdx.x; b < blocks; b += gridDim.x) {  // uniform over the block: barriers inside
        const index_t l = b * 32 + threadIdx.x;
        const bool valid = l < lanes_total;
        const index_t base = valid ? (l / inner) * n * inner + l % inner : 0;
        Acc m = lowest;
        if (valid)
            for (index_t k = threadIdx.y; k < n; k += blockDim.y) m = lanes::Max{}(m, convert<Acc>(X[base + k * inner]));
        m = lanes::column_reduce(m, lanes::Max{}, smem);
        Acc sum = Acc(0);
        if (valid)
            for (index_t k = threadIdx.y; k < n; k += blockDim.y)
                sum += lanes::exp_of(convert<Acc>(X[base + k * inner]) - m);
        sum = lanes::column_reduce(sum, lanes::Sum{}, smem);
        if (!valid) continue;
        if constexpr (Log) {
            const Acc lse = m + lanes::log_of(sum);
            for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
                const index_t at = base + k * inner;
                Y[at] = convert<T>(convert<Acc>(X[at]) - lse);
            }
        } else {
            const Acc inv = Acc(1) / sum;
            for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
                const index_t at = base + k * inner;
                Y[at] = convert<T>(lanes::exp_of(convert<Acc>(X[at]) - m) * inv);
            }
        }
    }
}

// The term the backward sums along the axis: g * y (softmax) or g (log_softmax).
template <bool Log, class Acc>
__device__ __forceinline__ Acc softmax_grad_term(Acc g, Acc y) {
    if constexpr (Log) return g;
    else return g * y;
}

template <bool Log, class Acc>
__device__ __forceinline__ Acc softmax_grad(Acc g, Acc y, Acc sum) {
    if constexpr (Log) return g - lanes::exp_of(y) * sum;
    else return y * (g - sum);
}

template <bool Log, bool Block, class T>
__global__ void __launch_bounds__(512) softmax_backward_rows(const T* __restrict__ G, const T* __restrict__ Y,
                                                             T* __restrict__ GX, index_t rows, index_t n) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ Acc smem[32];
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const T* g = G + r * n;
        const T* y = Y + r * n;
        T* gx = GX + r * n;
        Acc sum = Acc(0);
        for (index_t i = Team::lane(); i < n; i += Team::size())
            sum += softmax_grad_term<Log>(convert<Acc>(g[i]), convert<Acc>(y[i]));
        sum = Team::reduce(sum, lanes::Sum{}, Acc(0), smem);
        for (index_t i = Team::lane(); i < n; i += Team::size())
            gx[i] = convert<T>(softmax_grad<Log>(convert<Acc>(g[i]), convert<Acc>(y[i]), sum));
    }
}

template <bool Log, class T>
__global__ void __launch_bounds__(256)
    softmax_backward_lanes(const T* __restrict__ G, const T* __restrict__ Y, T* __restrict__ GX,
                           index_t lanes_total, index_t n, index_t inner) {
    using Acc = compute_t<T>;
    __shared__ Acc smem[32 * lanes::kLaneRows];
    const index_t blocks = (lanes_total + 31) / 32;
    for (index_t b = blockIdx.x; b < blocks; b += gridDim.x) {
        const index_t l = b * 32 + threadIdx.x;
        const bool valid = l < lanes_total;
        const index_t base = valid ? (l / inner) * n * inner + l % inner : 0;
        Acc sum = Acc(0);
        if (valid)
            for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
                const index_t at = base + k * inner;
                sum += softmax_grad_term<Log>(convert<Acc>(G[at]), convert<Acc>(Y[at]));
            }
        sum = lanes::column_reduce(sum, lanes::Sum{}, smem);
        if (!valid) continue;
        for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
            const index_t at = base + k * inner;
            GX[at] = convert<T>(softmax_grad<Log>(convert<Acc>(G[at]), convert<Acc>(Y[at]), sum));
        }
    }
}

}  // namespace kernels

// y = softmax (Log = false) or log_softmax (Log = true) of x along the middle axis of
// [outer, n, inner]; x and y dense device buffers of the same shape.
template <bool Log, class T>
void softmax_forward(const T* x, T* y, index_t outer, index_t n, index_t inner) {
    if (outer * n * inner == 0) return;
    const cudaStream_t stream = current_stream();
    if (inner == 1) {
        lanes::launch_rows(outer, n, [&](auto block, dim3 grid, dim3 threads) {
            kernels::softmax_rows<Log, decltype(block)::value, T><<<grid, threads, 0, stream>>>(x, y, outer, n);
        });
    } else {
        const index_t lanes_total = outer * inner;
        kernels::softmax_lanes<Log, T>
            <<<lanes::lane_grid(lanes_total), lanes::lane_block(), 0, stream>>>(x, y, lanes_total, n, inner);
    }
    WEFT_CUDA_CHECK_LAUNCH();
}

// gx from g and the forward's output y (all dense, same shape [outer, n, inner]).
template <bool Log, class T>
void softmax_backward(const T* g, const T* y, T* gx, index_t outer, index_t n, index_t inner) {
    if (outer * n * inner == 0) return;
    const cudaStream_t stream = current_stream();
    if (inner == 1) {
        lanes::launch_rows(outer, n, [&](auto block, dim3 grid, dim3 threads) {
            kernels::softmax_backward_rows<Log, decltype(block)::value, T>
                <<<grid, threads, 0, stream>>>(g, y, gx, outer, n);
        });
    } else {
        const index_t lanes_total = outer * inner;
        kernels::softmax_backward_lanes<Log, T>
            <<<lanes::lane_grid(lanes_total), lanes::lane_block(), 0, stream>>>(g, y, gx, lanes_total, n, inner);
    }
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace weft::cuda
