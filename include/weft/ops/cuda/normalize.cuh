// weft/ops/cuda/normalize.cuh: division by the L2 norm along an axis on the GPU, forward and
// backward (the CUDA half of ops/normalize.hpp).
//
//   cuda::normalize_forward(x, y, outer, n, inner, eps);          // dense, seen as [outer, n, inner]
//   cuda::normalize_backward(g, x, gx, outer, n, inner, eps);
//
// With n = ||x|| along the axis: y = x / max(n, eps); where n > eps, g_x = g / n - x * sum(g * x) / n³,
// elsewhere g_x = g / eps (the clamp's gradient is 0), as the CPU. Sums of squares and of g * x
// accumulate in compute_t<T>. The loops are softmax's (ops/cuda/softmax.cuh): a warp or a block
// per contiguous row for the last axis, column teams of neighbouring lanes for another axis.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/normalize.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../exec/cuda/stream.cuh"
#include "lanes.cuh"

namespace weft::cuda {

namespace kernels {

// 1 / max(sqrt(ss), eps); a NaN norm stays NaN (as std::max(norm, eps) on the CPU).
template <class Acc>
__device__ __forceinline__ Acc normalize_inverse(Acc ss, Acc eps) {
    const Acc norm = lanes::sqrt_of(ss);
    return Acc(1) / (norm < eps ? eps : norm);
}

// g_x = a * g + b * x for one lane, from its sum of squares and sum(g * x).
template <class Acc>
__device__ __forceinline__ void normalize_factors(Acc ss, Acc dot, Acc eps, Acc& a, Acc& b) {
    const Acc norm = lanes::sqrt_of(ss);
    if (norm > eps) {
        a = Acc(1) / norm;
        b = -dot * a * a * a;
    } else {
        a = Acc(1) / eps;
        b = Acc(0);
    }
}

template <bool Block, class T>
__global__ void __launch_bounds__(512) normalize_rows(const T* __restrict__ X, T* __restrict__ Y, index_t rows,
                                                      index_t n, compute_t<T> eps) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ Acc smem[32];
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const T* x = X + r * n;
        T* y = Y + r * n;
        Acc ss = Acc(0);
        for (index_t i = Team::lane(); i < n; i += Team::size()) {
            const Acc v = convert<Acc>(x[i]);
            ss += v * v;
        }
        ss = Team::reduce(ss, lanes::Sum{}, Acc(0), smem);
        const Acc inv = normalize_inverse(ss, eps);
        for (index_t i = Team::lane(); i < n; i += Team::size()) y[i] = convert<T>(convert<Acc>(x[i]) * inv);
    }
}

template <class T>
__global__ void __launch_bounds__(256) normalize_lanes(const T* __restrict__ X, T* __restrict__ Y,
                                                       index_t lanes_total, index_t n, index_t inner,
                                                       compute_t<T> eps) {
    using Acc = compute_t<T>;
    __shared__ Acc smem[32 * lanes::kLaneRows];
    const index_t blocks = (lanes_total + 31) / 32;
    for (index_t b = blockIdx.x; b < blocks; b += gridDim.x) {  // uniform over the block: barriers inside
        const index_t l = b * 32 + threadIdx.x;
        const bool valid = l < lanes_total;
        const index_t base = valid ? (l / inner) * n * inner + l % inner : 0;
        Acc ss = Acc(0);
        if (valid)
            for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
                const Acc v = convert<Acc>(X[base + k * inner]);
                ss += v * v;
            }
        ss = lanes::column_reduce(ss, lanes::Sum{}, smem);
        if (!valid) continue;
        const Acc inv = normalize_inverse(ss, eps);
        for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
            const index_t at = base + k * inner;
            Y[at] = convert<T>(convert<Acc>(X[at]) * inv);
        }
    }
}

template <bool Block, class T>
__global__ void __launch_bounds__(512) normalize_backward_rows(const T* __restrict__ G, const T* __restrict__ X,
                                                               T* __restrict__ GX, index_t rows, index_t n,
                                                               compute_t<T> eps) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ Acc smem[32];
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const T* g = G + r * n;
        const T* x = X + r * n;
        T* gx = GX + r * n;
        Acc ss = Acc(0), dot = Acc(0);
        for (index_t i = Team::lane(); i < n; i += Team::size()) {
            const Acc v = convert<Acc>(x[i]);
            ss += v * v;
            dot += convert<Acc>(g[i]) * v;
        }
        ss = Team::reduce(ss, lanes::Sum{}, Acc(0), smem);
        dot = Team::reduce(dot, lanes::Sum{}, Acc(0), smem);
        Acc a, b;
        normalize_factors(ss, dot, eps, a, b);
        for (index_t i = Team::lane(); i < n; i += Team::size())
            gx[i] = convert<T>(a * convert<Acc>(g[i]) + b * convert<Acc>(x[i]));
    }
}

template <class T>
__global__ void __launch_bounds__(256)
    normalize_backward_lanes(const T* __restrict__ G, const T* __restrict__ X, T* __restrict__ GX,
                             index_t lanes_total, index_t n, index_t inner, compute_t<T> eps) {
    using Acc = compute_t<T>;
    __shared__ Acc smem[32 * lanes::kLaneRows];
    const index_t blocks = (lanes_total + 31) / 32;
    for (index_t b = blockIdx.x; b < blocks; b += gridDim.x) {
        const index_t l = b * 32 + threadIdx.x;
        const bool valid = l < lanes_total;
        const index_t base = valid ? (l / inner) * n * inner + l % inner : 0;
        Acc ss = Acc(0), dot = Acc(0);
        if (valid)
            for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
                const index_t at = base + k * inner;
                const Acc v = convert<Acc>(X[at]);
                ss += v * v;
                dot += convert<Acc>(G[at]) * v;
            }
        ss = lanes::column_reduce(ss, lanes::Sum{}, smem);
        dot = lanes::column_reduce(dot, lanes::Sum{}, smem);
        if (!valid) continue;
        Acc fa, fb;
        normalize_factors(ss, dot, eps, fa, fb);
        for (index_t k = threadIdx.y; k < n; k += blockDim.y) {
            const index_t at = base + k * inner;
            GX[at] = convert<T>(fa * convert<Acc>(G[at]) + fb * convert<Acc>(X[at]));
        }
    }
}

}  // namespace kernels

// y = x / max(||x||, eps) along the middle axis of [outer, n, inner]; x, y dense device buffers.
template <class T>
void normalize_forward(const T* x, T* y, index_t outer, index_t n, index_t inner, compute_t<T> eps) {
    if (outer * n * inner == 0) return;
    const cudaStream_t stream = current_stream();
    if (inner == 1) {
        lanes::launch_rows(outer, n, [&](auto block, dim3 grid, dim3 threads) {
            kernels::normalize_rows<decltype(block)::value, T><<<grid, threads, 0, stream>>>(x, y, outer, n, eps);
        });
    } else {
        const index_t lanes_total = outer * inner;
        kernels::normalize_lanes<T>
            <<<lanes::lane_grid(lanes_total), lanes::lane_block(), 0, stream>>>(x, y, lanes_total, n, inner, eps);
    }
    WEFT_CUDA_CHECK_LAUNCH();
}

// The gradient of sum(g * normalize(x)) (g, x, gx dense, same shape [outer, n, inner]).
template <class T>
void normalize_backward(const T* g, const T* x, T* gx, index_t outer, index_t n, index_t inner, compute_t<T> eps) {
    if (outer * n * inner == 0) return;
    const cudaStream_t stream = current_stream();
    if (inner == 1) {
        lanes::launch_rows(outer, n, [&](auto block, dim3 grid, dim3 threads) {
            kernels::normalize_backward_rows<decltype(block)::value, T>
                <<<grid, threads, 0, stream>>>(g, x, gx, outer, n, eps);
        });
    } else {
        const index_t lanes_total = outer * inner;
        kernels::normalize_backward_lanes<T><<<lanes::lane_grid(lanes_total), lanes::lane_block(), 0, stream>>>(
            g, x, gx, lanes_total, n, inner, eps);
    }
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace weft::cuda
