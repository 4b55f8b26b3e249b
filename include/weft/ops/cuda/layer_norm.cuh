// weft/ops/cuda/layer_norm.cuh: layer normalization over the last axis on the GPU, forward and
// backward (the CUDA half of ops/layer_norm.hpp).
//
//   cuda::layer_norm_forward(x, w, b, y, mean, rstd, rows, c, eps);       // w, b may be null
//   cuda::layer_norm_backward(g, x, w, mean, rstd, gx, gw, gb, rows, c);  // null outputs are skipped
//
// Forward: one warp (rows up to 1024) or one block per row, in compute_t<T> as the CPU: the
// shifted sums of ops/cpu/moments.hpp (shift = the row's first element) give the mean and the
// biased variance in one pass without the cancellation of E[x²] - E[x]², and y is formed from
// x - shift - (mean - shift) with weight and bias applied. The per-row mean and 1/sqrt(var + eps)
// are saved for the backward, as on the CPU.
//
// Backward: g_x per row as the CPU (one team per row, two sums). The weight and bias gradients
// are column sums over all rows, done in two stages without atomics, so their sum order is fixed:
// blocks of 32 columns x 8 threads each sum a chunk of rows into a partial [chunks, C] in
// compute_t<T>, then one thread per column adds its chunks in order.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/layer_norm.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <algorithm>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"
#include "lanes.cuh"

namespace weft::cuda {

namespace kernels {

template <bool Block, class T>
__global__ void __launch_bounds__(512)
    layer_norm_rows(const T* __restrict__ X, const T* __restrict__ W, const T* __restrict__ B, T* __restrict__ Y,
                    compute_t<T>* __restrict__ mean, compute_t<T>* __restrict__ rstd, index_t rows, index_t c,
                    compute_t<T> eps) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ Acc smem[32];
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const T* x = X + r * c;
        T* y = Y + r * c;
        const Acc shift = c > 0 ? convert<Acc>(x[0]) : Acc(0);
        Acc s1 = Acc(0), s2 = Acc(0);
        for (index_t i = Team::lane(); i < c; i += Team::size()) {
            const Acc d = convert<Acc>(x[i]) - shift;
            s1 += d;
            s2 += d * d;
        }
        s1 = Team::reduce(s1, lanes::Sum{}, Acc(0), smem);
        s2 = Team::reduce(s2, lanes::Sum{}, Acc(0), smem);
        // moments_from_sums: mean = shift + d, var = max(0, s2 / c - d²), d = s1 / c.
        const Acc d = c > 0 ? s1 / Acc(c) : Acc(0);
        const Acc v = s2 / Acc(c) - d * d;
        const Acc var = c > 0 && v > Acc(0) ? v : Acc(0);
        const Acc rs = Acc(1) / lanes::sqrt_of(var + eps);
        if (Team::lane() == 0) {
            mean[r] = shift + d;
            rstd[r] = rs;
        }
        for (index_t i = Team::lane(); i < c; i += Team::size()) {
            const Acc centred = convert<Acc>(x[i]) - shift - d;
            const Acc scaled = W ? centred * (rs * convert<Acc>(W[i])) : centred * rs;
            y[i] = convert<T>(B ? scaled + convert<Acc>(B[i]) : scaled);
        }
    }
}

// g_x = rstd * (gw - mean(gw) - (x - mean) * rstd² * mean(gw * (x - mean))), gw = g * w.
template <bool Block, class T>
__global__ void __launch_bounds__(512)
    layer_norm_backward_rows(const T* __restrict__ G, const T* __restrict__ X, const T* __restrict__ W,
                             const compute_t<T>* __restrict__ M, const compute_t<T>* __restrict__ RS,
                             T* __restrict__ GX, index_t rows, index_t c) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ Acc smem[32];
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const T* g = G + r * c;
        const T* x = X + r * c;
        T* gx = GX + r * c;
        const Acc mu = M[r], rs = RS[r];
        Acc sum_gw = Acc(0), sum_gwd = Acc(0);
        for (index_t i = Team::lane(); i < c; i += Team::size()) {
            const Acc gw = W ? convert<Acc>(g[i]) * convert<Acc>(W[i]) : convert<Acc>(g[i]);
            sum_gw += gw;
            sum_gwd += gw * (convert<Acc>(x[i]) - mu);
        }
        sum_gw = Team::reduce(sum_gw, lanes::Sum{}, Acc(0), smem);
        sum_gwd = Team::reduce(sum_gwd, lanes::Sum{}, Acc(0), smem);
        const Acc a = sum_gw / Acc(c), b = sum_gwd * rs * rs / Acc(c);
        for (index_t i = Team::lane(); i < c; i += Team::size()) {
            const Acc gw = W ? convert<Acc>(g[i]) * convert<Acc>(W[i]) : convert<Acc>(g[i]);
            gx[i] = convert<T>(rs * (gw - a - (convert<Acc>(x[i]) - mu) * b));
        }
    }
}

// Stage 1 of the weight and bias gradients: block (bx, by) sums columns [32 bx, 32 bx + 32) over
// rows [by * rows_per_chunk, ...) into PW, PB [chunks, c] (either may be null). Threads (32, 8).
template <class T>
__global__ void __launch_bounds__(256)
    layer_norm_param_partials(const T* __restrict__ G, const T* __restrict__ X, const compute_t<T>* __restrict__ M,
                              const compute_t<T>* __restrict__ RS, compute_t<T>* __restrict__ PW,
                              compute_t<T>* __restrict__ PB, index_t rows, index_t c, index_t rows_per_chunk) {
    using Acc = compute_t<T>;
    __shared__ Acc smem[32 * lanes::kLaneRows];
    const index_t col = index_t(blockIdx.x) * 32 + threadIdx.x;
    const index_t chunk = blockIdx.y;
    const index_t r0 = chunk * rows_per_chunk;
    const index_t r1 = rows < r0 + rows_per_chunk ? rows : r0 + rows_per_chunk;
    Acc sw = Acc(0), sb = Acc(0);
    if (col < c)
        for (index_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
            const Acc g = convert<Acc>(G[r * c + col]);
            sw += g * ((convert<Acc>(X[r * c + col]) - M[r]) * RS[r]);
            sb += g;
        }
    // Both reductions run whatever is asked, so every thread reaches the same barriers.
    sw = lanes::column_reduce(sw, lanes::Sum{}, smem);
    sb = lanes::column_reduce(sb, lanes::Sum{}, smem);
    if (threadIdx.y != 0 || col >= c) return;
    if (PW) PW[chunk * c + col] = sw;
    if (PB) PB[chunk * c + col] = sb;
}

}  // namespace kernels

// y, mean [rows], rstd [rows] from dense x [rows, c]; w, b [c] dense or null.
template <class T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, compute_t<T>* mean, compute_t<T>* rstd,
                        index_t rows, index_t c, compute_t<T> eps) {
    if (rows == 0) return;  // c == 0 still writes each row's statistics, as the CPU
    const cudaStream_t stream = current_stream();
    lanes::launch_rows(rows, c, [&](auto block, dim3 grid, dim3 threads) {
        kernels::layer_norm_rows<decltype(block)::value, T>
            <<<grid, threads, 0, stream>>>(x, w, b, y, mean, rstd, rows, c, eps);
    });
    WEFT_CUDA_CHECK_LAUNCH();
}

// Gradients from dense g, x [rows, c], w [c] (null: ones) and the forward's statistics. Each of
// gx [rows, c], gw [c], gb [c] is written when not null.
template <class T>
void layer_norm_backward(const T* g, const T* x, const T* w, const compute_t<T>* mean, const compute_t<T>* rstd,
                         T* gx, T* gw, T* gb, index_t rows, index_t c) {
    using Acc = compute_t<T>;
    const cudaStream_t stream = current_stream();
    if (gx && rows > 0 && c > 0) {
        lanes::launch_rows(rows, c, [&](auto block, dim3 grid, dim3 threads) {
            kernels::layer_norm_backward_rows<decltype(block)::value, T>
                <<<grid, threads, 0, stream>>>(g, x, w, mean, rstd, gx, rows, c);
        });
        WEFT_CUDA_CHECK_LAUNCH();
    }
    if ((!gw && !gb) || c == 0) return;
    // Enough chunks of rows to give the machine ~8 blocks per SM, none shorter than 64 rows.
    const index_t col_tiles = (c + 31) / 32;
    WEFT_CHECK(col_tiles <= index_t(std::numeric_limits<int>::max()), "layer_norm_backward: ", c,
               " columns are too many for one CUDA grid");
    const index_t want = std::max<index_t>(1, index_t(multiprocessor_count()) * 8 / col_tiles);
    const index_t chunks = std::clamp<index_t>(std::min((rows + 63) / 64, want), 1, 1024);
    const index_t rows_per_chunk = std::max<index_t>(1, (rows + chunks - 1) / chunks);
    auto pw = gw ? Tensor<Acc, 1, Cuda>::empty({chunks * c}) : Tensor<Acc, 1, Cuda>();
    auto pb = gb ? Tensor<Acc, 1, Cuda>::empty({chunks * c}) : Tensor<Acc, 1, Cuda>();
    kernels::layer_norm_param_partials<T>
        <<<dim3(unsigned(col_tiles), unsigned(chunks)), lanes::lane_block(), 0, stream>>>(
            g, x, mean, rstd, gw ? pw.data() : nullptr, gb ? pb.data() : nullptr, rows, c, rows_per_chunk);
    WEFT_CUDA_CHECK_LAUNCH();
    if (gw) lanes::column_totals(pw.data(), gw, chunks, c);
    if (gb) lanes::column_totals(pb.data(), gb, chunks, c);
}

}  // namespace weft::cuda
