// weft/ops/cuda/cross_entropy.cuh: the fused softmax cross-entropy on the GPU (the CUDA half of
// ops/cross_entropy.hpp), forward and backward.
//
//   auto f = cuda::cross_entropy_forward(problem, LossDenominator::positions, losses, loss);
//   cuda::cross_entropy_grad(problem, f, g_scalar, g_per_position, grad);
//
// Logits are dense [N, C, S] (S = product of the extents after the class axis, 1 for [N, C]).
//  - S > 1 (segmentation maps): one thread per position. The classes of a position lie S apart,
//    so the 32 threads of a warp take 32 neighbouring positions and every class's load is one
//    coalesced row. Each thread walks its classes once, keeping a running maximum m and the sum
//    of exp(x - m) rescaled when m grows (an online log-sum-exp): one read of the logits.
//  - S == 1 ([N, C] rows): one warp per row; lanes stride over the classes (coalesced), keep
//    their own (m, sum), and merge them in a fixed shuffle tree.
// Positions are cut into fixed tiles (256 positions, or 8 rows), whatever the grid: each tile's
// loss and weight sums (in double, as the CPU) go to a slot of their own, and one block adds
// the slots in a fixed order. No float atomics: the loss has the same bits on every run and
// every GPU. That second pass also divides by the reduction's denominator and writes the
// rank-0 loss, on the device: no host round trip, so nothing waits for the GPU.
//
// The backward recomputes p = exp(x - lse) from the saved lse (one float per position), one
// thread per logit: grad = coef·p - off·w_k, then the one-hot part at the target, as the CPU
// does (including its rounding to T before subtracting it); 0 at ignored positions. The scale
// (incoming gradient over the denominator) is read on the device too.
//
// bf16 and half logits accumulate in float (compute_t<T>); double in double. Targets are
// validated before these run (ops/cuda/index_check.cuh), so every non-ignored target is in [0, C).
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/cross_entropy.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft {

namespace cuda {

// What the reduced loss is divided by (ops/cross_entropy.hpp's Reduction, in the kernel's terms).
enum class LossDenominator { weight_sum, positions, one };

// The problem as dense device arrays: x [N, C, S], target [N·S], weight [C] or null.
template <class T>
struct CrossEntropyProblem {
    const T* x = nullptr;
    const std::int64_t* target = nullptr;
    const T* weight = nullptr;
    index_t n = 0, c = 0, s = 1;
    std::int64_t ignore_index = -100;
    double smoothing = 0;
};

// What the forward leaves for the backward, on the device.
template <class T>
struct CrossEntropyDeviceForward {
    Tensor<compute_t<T>, 1, Cuda> lse;  // [N·S]
    Tensor<double, 1, Cuda> stats;      // [4]: loss sum, weight sum, denominator, W (sum of class weights)
};

namespace kernels {

inline constexpr int ce_threads = 256;
inline constexpr int ce_rows_per_tile = ce_threads / 32;  // S == 1: one warp per row

__device__ __forceinline__ float ce_exp(float v) { return ::expf(v); }
__device__ __forceinline__ double ce_exp(double v) { return ::exp(v); }
__device__ __forceinline__ float ce_log(float v) { return ::logf(v); }
__device__ __forceinline__ double ce_log(double v) { return ::log(v); }

// One more logit v into a running (max m, sum of exp(x - m)).
template <class C>
__device__ __forceinline__ void lse_push(C& m, C& se, C v) {
    if (v > m) {
        se = se * ce_exp(m - v) + C(1);
        m = v;
    } else {
        se += ce_exp(v - m);  // NaN for a NaN logit, as the CPU's sum
    }
}

// (m, se) merged with another lane's (m2, se2). A side that holds nothing (-inf, 0) adds 0.
template <class C>
__device__ __forceinline__ void lse_merge(C& m, C& se, C m2, C se2) {
    const C mx = m2 > m ? m2 : m;
    se = (m == mx ? se : se * ce_exp(m - mx)) + (m2 == mx ? se2 : se2 * ce_exp(m2 - mx));
    m = mx;
}

// W = sum of the class weights, in double, in class order (the CPU's sum).
template <class T>
__global__ void ce_weight_total(const T* weight, index_t c, double* out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double w = 0;
    for (index_t k = 0; k < c; ++k) w += double(convert<compute_t<T>>(weight[k]));
    *out = w;
}

// Sums (loss, weight) over the block's threads in a fixed tree; valid in thread 0. Every thread
// of the block calls it.
__device__ __forceinline__ void ce_block_sum(double& l, double& w, double* sh_l, double* sh_w) {
    for (int o = 16; o > 0; o /= 2) {
        l += __shfl_down_sync(0xffffffffu, l, o);
        w += __shfl_down_sync(0xffffffffu, w, o);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        sh_l[warp] = l;
        sh_w[warp] = w;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        l = sh_l[0];
        w = sh_w[0];
        for (int k = 1; k < ce_threads / 32; ++k) {
            l += sh_l[k];
            w += sh_w[k];
        }
    }
    __syncthreads();  // sh_* are reused by the next tile
}

// The loss of one position from its statistics (the CPU's formula, in C); adds w[t] to wsum.
template <class T, class C>
__device__ __forceinline__ C ce_position_loss(const CrossEntropyProblem<T>& pr, std::int64_t t, C lse, C xt, C sx,
                                              C wtotal, double& wsum) {
    if (t == pr.ignore_index) return C(0);
    const C keep = C(1 - pr.smoothing), spread = C(pr.smoothing / double(pr.c));
    const C wt = pr.weight ? convert<C>(pr.weight[t]) : C(1);
    C loss = keep * wt * (lse - xt);
    if (pr.smoothing > 0) loss += spread * (wtotal * lse - sx);
    wsum += double(wt);
    return loss;
}

// S > 1: thread = position. partial[tile] and partial[tiles + tile]: the tile's loss and weight sums.
template <class T>
__global__ void __launch_bounds__(ce_threads) ce_forward_spatial(const CrossEntropyProblem<T> pr, double wtotal_value,
                                                                 const double* wtotal_ptr, compute_t<T>* lse,
                                                                 T* losses, double* partial, index_t tiles) {
    using C = compute_t<T>;
    __shared__ double sh_l[ce_threads / 32], sh_w[ce_threads / 32];
    const index_t positions = pr.n * pr.s;
    const bool smooth = pr.smoothing > 0;
    const C wtotal = C(wtotal_ptr ? *wtotal_ptr : wtotal_value);
    for (index_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {  // the same trip count in every thread
        const index_t p = tile * ce_threads + threadIdx.x;
        double l = 0, w = 0;
        if (p < positions) {
            const index_t sample = p / pr.s, s = p - sample * pr.s;
            const T* xp = pr.x + sample * pr.c * pr.s + s;  // class k at xp[k·S]
            C m = -std::numeric_limits<C>::infinity(), se = C(0), sx = C(0);
            for (index_t k = 0; k < pr.c; ++k) {
                const C v = convert<C>(xp[k * pr.s]);
                lse_push(m, se, v);
                if (smooth) sx += (pr.weight ? convert<C>(pr.weight[k]) : C(1)) * v;
            }
            const C lp = m + ce_log(se);
            lse[p] = lp;
            const std::int64_t t = pr.target[p];
            const C xt = t == pr.ignore_index ? C(0) : convert<C>(xp[t * pr.s]);
            const C loss = ce_position_loss(pr, t, lp, xt, sx, wtotal, w);
            if (losses) losses[p] = convert<T>(loss);
            l = double(loss);
        }
        ce_block_sum(l, w, sh_l, sh_w);
        if (threadIdx.x == 0) {
            partial[tile] = l;
            partial[tiles + tile] = w;
        }
    }
}

// S == 1: warp = row, ce_rows_per_tile rows per tile.
template <class T>
__global__ void __launch_bounds__(ce_threads) ce_forward_rows(const CrossEntropyProblem<T> pr, double wtotal_value,
                                                              const double* wtotal_ptr, compute_t<T>* lse, T* losses,
                                                              double* partial, index_t tiles) {
    using C = compute_t<T>;
    __shared__ double sh_l[ce_threads / 32], sh_w[ce_threads / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const bool smooth = pr.smoothing > 0;
    const C wtotal = C(wtotal_ptr ? *wtotal_ptr : wtotal_value);
    for (index_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const index_t row = tile * ce_rows_per_tile + warp;
        double l = 0, w = 0;
        if (row < pr.n) {  // the same in every lane of the warp: the shuffles below see all 32
            const T* xr = pr.x + row * pr.c;
            C m = -std::numeric_limits<C>::infinity(), se = C(0), sx = C(0);
            for (index_t k = lane; k < pr.c; k += 32) {
                const C v = convert<C>(xr[k]);
                lse_push(m, se, v);
                if (smooth) sx += (pr.weight ? convert<C>(pr.weight[k]) : C(1)) * v;
            }
            for (int o = 16; o > 0; o /= 2) {
                const C m2 = __shfl_down_sync(0xffffffffu, m, o);
                const C se2 = __shfl_down_sync(0xffffffffu, se, o);
                sx += __shfl_down_sync(0xffffffffu, sx, o);
                lse_merge(m, se, m2, se2);
            }
            if (lane == 0) {
                const C lp = m + ce_log(se);
                lse[row] = lp;
                const std::int64_t t = pr.target[row];
                const C xt = t == pr.ignore_index ? C(0) : convert<C>(xr[t]);
                const C loss = ce_position_loss(pr, t, lp, xt, sx, wtotal, w);
                if (losses) losses[row] = convert<T>(loss);
                l = double(loss);
            }
        }
        ce_block_sum(l, w, sh_l, sh_w);  // only lane 0 of each warp holds anything
        if (threadIdx.x == 0) {
            partial[tile] = l;
            partial[tiles + tile] = w;
        }
    }
}

// One block: adds the tiles' sums in a fixed order, then stats = {loss sum, weight sum,
// denominator} and, when loss is not null, *loss = loss sum / denominator.
template <class T>
__global__ void __launch_bounds__(ce_threads) ce_finish(const double* partial, index_t tiles, index_t positions,
                                                        LossDenominator kind, double* stats, T* loss) {
    __shared__ double sh_l[ce_threads], sh_w[ce_threads];
    double l = 0, w = 0;
    for (index_t i = threadIdx.x; i < tiles; i += ce_threads) {
        l += partial[i];
        w += partial[tiles + i];
    }
    sh_l[threadIdx.x] = l;
    sh_w[threadIdx.x] = w;
    __syncthreads();
    for (int half = ce_threads / 2; half > 0; half /= 2) {
        if (int(threadIdx.x) < half) {
            sh_l[threadIdx.x] += sh_l[threadIdx.x + half];
            sh_w[threadIdx.x] += sh_w[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        const double loss_sum = sh_l[0], weight_sum = sh_w[0];
        const double denom = kind == LossDenominator::weight_sum ? weight_sum
                             : kind == LossDenominator::positions ? double(positions)
                                                                  : 1.0;
        stats[0] = loss_sum;
        stats[1] = weight_sum;
        stats[2] = denom;
        if (loss) *loss = convert<T>(compute_t<T>(loss_sum / denom));
    }
}

// grad[e] for every logit e = (n·C + k)·S + s. The incoming gradient of position p is
// g_scalar[0] / denom[0] (reduced loss) or g_per[p] (per-position losses).
template <class T, class I>
__global__ void __launch_bounds__(256) ce_grad(const CrossEntropyProblem<T> pr, const compute_t<T>* lse,
                                               const T* g_scalar, const double* denom, const T* g_per,
                                               double wtotal_value, const double* wtotal_ptr, T* grad, I total) {
    using C = compute_t<T>;
    const C keep = C(1 - pr.smoothing), spread = C(pr.smoothing / double(pr.c));
    const C wtotal = C(wtotal_ptr ? *wtotal_ptr : wtotal_value);
    const double scale = g_scalar ? double(convert<C>(*g_scalar)) / *denom : 1.0;
    const I S = I(pr.s), classes = I(pr.c);
    const I step = I(gridDim.x) * blockDim.x;
    for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
        const I q = e / S, s = e - q * S;
        const I sample = q / classes, k = q - sample * classes;
        const index_t p = index_t(sample) * index_t(S) + index_t(s);
        const std::int64_t t = pr.target[p];
        const bool ignored = t == pr.ignore_index;
        const C gi = ignored ? C(0) : C(scale * (g_per ? double(convert<C>(g_per[p])) : 1.0));
        const C wt = (ignored || !pr.weight) ? C(1) : convert<C>(pr.weight[t]);
        const C coef = gi * (keep * wt + spread * wtotal), off = gi * spread;
        const C wk = pr.weight ? convert<C>(pr.weight[k]) : C(1);
        T v = convert<T>(coef * ce_exp(convert<C>(pr.x[e]) - lse[p]) - off * wk);
        if (!ignored && std::int64_t(k) == t) v = convert<T>(convert<C>(v) - gi * keep * wt);  // the one-hot part
        grad[e] = v;
    }
}

}  // namespace kernels

// Forward: lse per position always; per-position losses into `losses` (dense [N·S]) and the
// reduced loss into `loss` (one element) when not null. Launches only; nothing waits.
template <class T>
CrossEntropyDeviceForward<T> cross_entropy_forward(const CrossEntropyProblem<T>& pr, LossDenominator kind, T* losses,
                                                   T* loss) {
    using C = compute_t<T>;
    const cudaStream_t stream = current_stream();
    CrossEntropyDeviceForward<T> f;
    const index_t positions = pr.n * pr.s;
    f.lse = Tensor<C, 1, Cuda>::empty({positions});
    f.stats = Tensor<double, 1, Cuda>::empty({4});
    double* stats = f.stats.data();
    // W is needed only with label smoothing; without class weights it is C, known here.
    const bool device_wtotal = pr.smoothing > 0 && pr.weight;
    if (device_wtotal) {
        kernels::ce_weight_total<T><<<1, 1, 0, stream>>>(pr.weight, pr.c, stats + 3);
        WEFT_CUDA_CHECK_LAUNCH();
    }
    const double* wtotal_ptr = device_wtotal ? stats + 3 : nullptr;
    const double wtotal_value = double(pr.c);

    const bool rows = pr.s == 1;
    const index_t per_tile = rows ? kernels::ce_rows_per_tile : kernels::ce_threads;
    const index_t tiles = (positions + per_tile - 1) / per_tile;
    auto partial = Tensor<double, 1, Cuda>::empty({2 * tiles});
    if (tiles > 0) {
        const unsigned grid = unsigned(std::min<index_t>(tiles, index_t(multiprocessor_count()) * 16));
        if (rows)
            kernels::ce_forward_rows<T><<<grid, kernels::ce_threads, 0, stream>>>(
                pr, wtotal_value, wtotal_ptr, f.lse.data(), losses, partial.data(), tiles);
        else
            kernels::ce_forward_spatial<T><<<grid, kernels::ce_threads, 0, stream>>>(
                pr, wtotal_value, wtotal_ptr, f.lse.data(), losses, partial.data(), tiles);
        WEFT_CUDA_CHECK_LAUNCH();
    }
    kernels::ce_finish<T><<<1, kernels::ce_threads, 0, stream>>>(partial.data(), tiles, positions, kind, stats, loss);
    WEFT_CUDA_CHECK_LAUNCH();
    return f;
}

// grad (dense [N, C, S]) of the loss for the incoming gradient: the reduced loss's rank-0
// g_scalar (divided by the forward's denominator), or per-position g_per (dense [N·S]).
template <class T>
void cross_entropy_grad(const CrossEntropyProblem<T>& pr, const CrossEntropyDeviceForward<T>& f, const T* g_scalar,
                        const T* g_per, T* grad) {
    const index_t total = pr.n * pr.c * pr.s;
    if (total <= 0) return;
    const double* stats = f.stats.data();
    const double* wtotal_ptr = (pr.smoothing > 0 && pr.weight) ? stats + 3 : nullptr;
    const double wtotal_value = double(pr.c);
    const unsigned grid = grid_blocks(total, block_threads);
    const cudaStream_t stream = current_stream();
    if (total <= index_t(std::numeric_limits<std::int32_t>::max()))
        kernels::ce_grad<T, std::uint32_t><<<grid, block_threads, 0, stream>>>(
            pr, f.lse.data(), g_scalar, stats + 2, g_per, wtotal_value, wtotal_ptr, grad, std::uint32_t(total));
    else
        kernels::ce_grad<T, index_t><<<grid, block_threads, 0, stream>>>(pr, f.lse.data(), g_scalar, stats + 2, g_per,
                                                                          wtotal_value, wtotal_ptr, grad, total);
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda

}  // namespace weft
