// weft/ops/cuda/group_norm.cuh: group normalization on the GPU, forward and backward (the CUDA
// half of ops/group_norm.hpp).
//
//   cuda::group_norm_forward(x, w, b, y, mean, rstd, n, c, s, groups, eps);   // w, b may be null
//   cuda::group_norm_backward(g, x, w, mean, rstd, gx, gw, gb, n, c, s, groups);
//
// In a dense x [N, C, S] each (sample, group) is one contiguous row of (C / groups) * S elements.
// Forward: one warp (rows up to 1024) or one block per row; shifted sums (ops/cpu/moments.hpp,
// the shift the row's first element) accumulate in double, as on the CPU (a feature map's group
// can hold millions of elements; H100/H200-class GPUs run double at half the float rate, and the
// pass is bound by memory anyway); then y = (x - shift) * a[c] + b[c] with the channel's scale
// and offset folded in double and applied in compute_t<T>.
//
// Backward, in three kernels and no atomics (so the sum order is fixed):
//   1. per (sample, channel) segment of S elements: sum(g) and sum(g * (x - mean)), in double;
//   2. per row: g_x = a[c] * g - rstd * mean(gw) - (x - mean) * rstd³ * mean(gw * (x - mean)),
//      the two means taken from 1's sums weighted by the channels' weights;
//   3. per channel: grad_w = sum over samples of rstd * sum(g * (x - mean)), grad_b = sum(g).
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/group_norm.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"
#include "lanes.cuh"

namespace weft::cuda {

namespace kernels {

// Rows r = sample * groups + group of cg * s elements; channel k of the group is elements [k s, k s + s).
template <bool Block, class T>
__global__ void __launch_bounds__(512)
    group_norm_rows(const T* __restrict__ X, const T* __restrict__ W, const T* __restrict__ B, T* __restrict__ Y,
                    compute_t<T>* __restrict__ mean, compute_t<T>* __restrict__ rstd, index_t rows, index_t groups,
                    index_t cg, index_t s, double eps) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ double smem[32];
    const index_t row = cg * s;
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const T* x = X + r * row;
        T* y = Y + r * row;
        const double shift = row > 0 ? convert<double>(x[0]) : 0.0;
        double s1 = 0.0, s2 = 0.0;
        for (index_t i = Team::lane(); i < row; i += Team::size()) {
            const double d = convert<double>(x[i]) - shift;
            s1 += d;
            s2 += d * d;
        }
        s1 = Team::reduce(s1, lanes::Sum{}, 0.0, smem);
        s2 = Team::reduce(s2, lanes::Sum{}, 0.0, smem);
        const double d = row > 0 ? s1 / double(row) : 0.0;  // mean - shift
        const double v = s2 / double(row) - d * d;
        const double var = row > 0 && v > 0.0 ? v : 0.0;
        const double rs = 1.0 / ::sqrt(var + eps);
        if (Team::lane() == 0) {
            mean[r] = Acc(shift + d);
            rstd[r] = Acc(rs);
        }
        if (row == 0) continue;
        const index_t c0 = (r % groups) * cg;
        const Acc sh = Acc(shift);
        // (channel, position) of element Team::lane(), walked in steps of the team size.
        lanes::ChannelWalk walk(index_t(Team::lane()), index_t(Team::size()), cg, s);
        index_t cached = -1;
        Acc a = Acc(0), b = Acc(0);
        for (index_t i = Team::lane(); i < row; i += Team::size(), walk.next()) {
            if (walk.ch != cached) {  // y = (x - shift) * a + b: the channel's scale and offset folded
                cached = walk.ch;
                const double wk = W ? convert<double>(W[c0 + cached]) : 1.0;
                const double bk = B ? convert<double>(B[c0 + cached]) : 0.0;
                a = Acc(rs * wk);
                b = Acc(bk - d * rs * wk);
            }
            y[i] = convert<T>((convert<Acc>(x[i]) - sh) * a + b);
        }
    }
}

// Backward 1: per segment (sample, channel) of s elements, SG = sum(g), SGD = sum(g * (x - mean)).
template <bool Block, class T>
__global__ void __launch_bounds__(512)
    group_norm_segment_sums(const T* __restrict__ G, const T* __restrict__ X, const compute_t<T>* __restrict__ M,
                            double* __restrict__ SG, double* __restrict__ SGD, index_t segments, index_t c,
                            index_t groups, index_t cg, index_t s) {
    using Team = lanes::RowTeam<Block>;
    __shared__ double smem[32];
    for (index_t seg = Team::first(); seg < segments; seg += Team::step()) {
        const index_t r = (seg / c) * groups + (seg % c) / cg;  // the segment's (sample, group) row
        const double mu = double(M[r]);
        const T* g = G + seg * s;
        const T* x = X + seg * s;
        double a = 0.0, b = 0.0;
        for (index_t j = Team::lane(); j < s; j += Team::size()) {
            const double gv = convert<double>(g[j]);
            a += gv;
            b += gv * (convert<double>(x[j]) - mu);
        }
        a = Team::reduce(a, lanes::Sum{}, 0.0, smem);
        b = Team::reduce(b, lanes::Sum{}, 0.0, smem);
        if (Team::lane() == 0) {
            SG[seg] = a;
            SGD[seg] = b;
        }
    }
}

// Backward 2: g_x per (sample, group) row.
template <bool Block, class T>
__global__ void __launch_bounds__(512)
    group_norm_grad_x(const T* __restrict__ G, const T* __restrict__ X, const T* __restrict__ W,
                      const compute_t<T>* __restrict__ M, const compute_t<T>* __restrict__ RS,
                      const double* __restrict__ SG, const double* __restrict__ SGD, T* __restrict__ GX, index_t rows,
                      index_t c, index_t groups, index_t cg, index_t s) {
    using Acc = compute_t<T>;
    using Team = lanes::RowTeam<Block>;
    __shared__ double smem[32];
    const index_t row = cg * s;
    for (index_t r = Team::first(); r < rows; r += Team::step()) {
        const index_t c0 = (r % groups) * cg, nc0 = (r / groups) * c + c0;
        const double mu = double(M[r]), rs = double(RS[r]);
        double mean_gw = 0.0, mean_gwd = 0.0;  // sums first, divided by the row length below
        for (index_t k = Team::lane(); k < cg; k += Team::size()) {
            const double wk = W ? convert<double>(W[c0 + k]) : 1.0;
            mean_gw += wk * SG[nc0 + k];
            mean_gwd += wk * SGD[nc0 + k];
        }
        mean_gw = Team::reduce(mean_gw, lanes::Sum{}, 0.0, smem) / double(row);
        mean_gwd = Team::reduce(mean_gwd, lanes::Sum{}, 0.0, smem) / double(row);
        const Acc off = Acc(rs * mean_gw), slope = Acc(rs * rs * rs * mean_gwd), mu_a = Acc(mu);
        const T* g = G + r * row;
        const T* x = X + r * row;
        T* gx = GX + r * row;
        lanes::ChannelWalk walk(index_t(Team::lane()), index_t(Team::size()), cg, s);
        index_t cached = -1;
        Acc a = Acc(0);
        for (index_t i = Team::lane(); i < row; i += Team::size(), walk.next()) {
            if (walk.ch != cached) {
                cached = walk.ch;
                a = Acc(rs * (W ? convert<double>(W[c0 + cached]) : 1.0));
            }
            gx[i] = convert<T>(a * convert<Acc>(g[i]) - off - (convert<Acc>(x[i]) - mu_a) * slope);
        }
    }
}

// Backward 3: per channel, the sums over samples (in sample order) for grad_w and grad_b.
template <class T>
__global__ void __launch_bounds__(256)
    group_norm_param_grads(const compute_t<T>* __restrict__ RS, const double* __restrict__ SG,
                           const double* __restrict__ SGD, T* __restrict__ GW, T* __restrict__ GB, index_t n, index_t c,
                           index_t groups, index_t cg) {
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t ch = index_t(blockIdx.x) * blockDim.x + threadIdx.x; ch < c; ch += step) {
        double acc_w = 0.0, acc_b = 0.0;
        for (index_t i = 0; i < n; ++i) {
            acc_w += double(RS[i * groups + ch / cg]) * SGD[i * c + ch];
            acc_b += SG[i * c + ch];
        }
        if (GW) GW[ch] = convert<T>(acc_w);
        if (GB) GB[ch] = convert<T>(acc_b);
    }
}

}  // namespace kernels

// y, mean and rstd [n * groups] from dense x [n, c, s]; w, b [c] dense or null.
template <class T>
void group_norm_forward(const T* x, const T* w, const T* b, T* y, compute_t<T>* mean, compute_t<T>* rstd, index_t n,
                        index_t c, index_t s, index_t groups, double eps) {
    const index_t rows = n * groups, cg = c / groups;
    if (rows == 0) return;  // an empty row still gets its statistics, as on the CPU
    const cudaStream_t stream = current_stream();
    lanes::launch_rows(rows, cg * s, [&](auto block, dim3 grid, dim3 threads) {
        kernels::group_norm_rows<decltype(block)::value, T>
            <<<grid, threads, 0, stream>>>(x, w, b, y, mean, rstd, rows, groups, cg, s, eps);
    });
    WEFT_CUDA_CHECK_LAUNCH();
}

// Gradients from dense g, x [n, c, s], w [c] (null: ones) and the forward's statistics; each of
// gx [n, c, s], gw [c], gb [c] is written when not null.
template <class T>
void group_norm_backward(const T* g, const T* x, const T* w, const compute_t<T>* mean, const compute_t<T>* rstd,
                         T* gx, T* gw, T* gb, index_t n, index_t c, index_t s, index_t groups) {
    const index_t rows = n * groups, cg = c / groups, segments = n * c;
    const cudaStream_t stream = current_stream();
    auto sum_g = Tensor<double, 1, Cuda>::empty({segments});
    auto sum_gd = Tensor<double, 1, Cuda>::empty({segments});
    if (segments > 0) {
        lanes::launch_rows(segments, s, [&](auto block, dim3 grid, dim3 threads) {
            kernels::group_norm_segment_sums<decltype(block)::value, T><<<grid, threads, 0, stream>>>(
                g, x, mean, sum_g.data(), sum_gd.data(), segments, c, groups, cg, s);
        });
        WEFT_CUDA_CHECK_LAUNCH();
    }
    if (gx && rows > 0 && cg * s > 0) {
        lanes::launch_rows(rows, cg * s, [&](auto block, dim3 grid, dim3 threads) {
            kernels::group_norm_grad_x<decltype(block)::value, T><<<grid, threads, 0, stream>>>(
                g, x, w, mean, rstd, sum_g.data(), sum_gd.data(), gx, rows, c, groups, cg, s);
        });
        WEFT_CUDA_CHECK_LAUNCH();
    }
    if ((gw || gb) && c > 0) {
        kernels::group_norm_param_grads<T><<<grid_blocks(c, block_threads), block_threads, 0, stream>>>(
            rstd, sum_g.data(), sum_gd.data(), gw, gb, n, c, groups, cg);
        WEFT_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace weft::cuda
