// weft/ops/cuda/batch_norm.cuh: batch normalization on the GPU, training and evaluation, forward
// and backward (the CUDA half of ops/batch_norm.hpp).
//
//   cuda::batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum, eps,
//                            replicas, y, mean, rstd);
//   cuda::batch_norm_backward(g, x, weight, mean, rstd, training, replicas, gx, gw, gb);
//
// x is dense [N, C, S] (S the product of the spatial extents). Each channel's N * S values are
// reduced in two stages without atomics, so the sum order is fixed: blocks of (channel, chunk of
// its values) write partial sums [chunks, C] in double, then one thread per channel adds them.
// As on the CPU the forward sums are shifted sums (ops/cpu/moments.hpp) in double, the shift
// being the channel's first element; one thread per channel then derives the mean, the biased
// variance, the channel's folded scale and offset (y = (x - shift) * a + b), and updates the
// running statistics in place on the device (running_mean and running_var may be strided views).
// Nothing waits for the GPU unless the statistics are synchronized.
//
// Synchronized training (a CrossReplicaSum, torch.nn.SyncBatchNorm): the collective takes a host
// span, so the channel sums are copied to the host (this waits for the stream: the values are
// needed there), combined exactly as the CPU does, reduced over the replicas, and copied back.
// That is one round trip of 3C + 1 doubles per layer forward and 2C + 1 backward.
//
// Backward: sum(g) and sum(g * (x - mean)) per channel the same way, then per-channel
// coefficients in compute_t<T> and one element-wise pass g_x = a * g - (x - mean) * slope - off.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/batch_norm.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <algorithm>
#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../exec/cuda/stream.cuh"
#include "lanes.cuh"

namespace weft::cuda {

namespace kernels {

// Stage 1: block (ch, chunk) sums over values [chunk * per_chunk, ...) of channel ch, value v
// being sample v / s, position v % s. Forward (Grad = false): sums of x - shift and its square,
// shift = the channel's first element. Backward (Grad = true): sums of g and g * (x - mean).
// Partials P1, P2 [chunks, c]. 1-D blocks of a multiple of 32 threads.
template <bool Grad, class T>
__global__ void __launch_bounds__(256)
    batch_norm_partials(const T* __restrict__ X, const T* __restrict__ G, const compute_t<T>* __restrict__ mean,
                        double* __restrict__ P1, double* __restrict__ P2, index_t c, index_t s, index_t count,
                        index_t per_chunk) {
    __shared__ double smem[32];
    const index_t ch = blockIdx.x, chunk = blockIdx.y;
    const index_t v0 = chunk * per_chunk;
    const index_t v1 = count < v0 + per_chunk ? count : v0 + per_chunk;
    double ref;  // launched with count > 0: the channel has a first element
    if constexpr (Grad) ref = double(mean[ch]);
    else ref = convert<double>(X[ch * s]);
    double a = 0.0, b = 0.0;
    // (sample, position) = (walk.seg, walk.j) of value v; c = 1: the walk's channel is unused.
    lanes::ChannelWalk walk(v0 + index_t(threadIdx.x), index_t(blockDim.x), 1, s);
    for (index_t v = v0 + threadIdx.x; v < v1; v += blockDim.x, walk.next()) {
        const index_t at = (walk.seg * c + ch) * s + walk.j;
        if constexpr (Grad) {
            const double g = convert<double>(G[at]);
            a += g;
            b += g * (convert<double>(X[at]) - ref);
        } else {
            const double d = convert<double>(X[at]) - ref;
            a += d;
            b += d * d;
        }
    }
    a = lanes::block_reduce(a, lanes::Sum{}, 0.0, smem);
    b = lanes::block_reduce(b, lanes::Sum{}, 0.0, smem);
    if (threadIdx.x == 0) {
        P1[chunk * c + ch] = a;
        P2[chunk * c + ch] = b;
    }
}

// Stage 2: S [2c or 3c] = the column totals of P1 and P2 (in chunk order), and when `shift_of`
// is given (forward) the channels' shifts in S[2c, 3c) (0 for a replica without values).
template <class T>
__global__ void __launch_bounds__(256)
    batch_norm_totals(const double* __restrict__ P1, const double* __restrict__ P2, const T* __restrict__ shift_of,
                      double* __restrict__ S, index_t chunks, index_t c, index_t s, index_t count) {
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t ch = index_t(blockIdx.x) * blockDim.x + threadIdx.x; ch < c; ch += step) {
        double s1 = 0.0, s2 = 0.0;
        for (index_t k = 0; k < chunks; ++k) {
            s1 += P1[k * c + ch];
            s2 += P2[k * c + ch];
        }
        S[ch] = s1;
        S[c + ch] = s2;
        if (shift_of) S[2 * c + ch] = count > 0 ? convert<double>(shift_of[ch * s]) : 0.0;
    }
}

// What the forward's per-channel pass writes.
template <class T>
struct BatchNormChannelOut {
    compute_t<T>* mean;   // [c]
    compute_t<T>* rstd;   // [c]
    compute_t<T>* coef;   // [3c]: shift | a | b, y = (x - shift) * a + b
    T* running_mean;      // null: not tracked
    index_t running_mean_stride;
    T* running_var;
    index_t running_var_stride;
};

// Training: the statistics from S = [s1 | s2 | shift] (this replica) or, synchronized, from
// `all` = [sum x | M2 | n mean² (each c) | n] over the replicas; `total` the count they cover.
template <class T>
__global__ void __launch_bounds__(256)
    batch_norm_train_channels(const double* __restrict__ S, const double* __restrict__ all, const T* __restrict__ W,
                              const T* __restrict__ B, BatchNormChannelOut<T> out, index_t c, index_t total,
                              double momentum, double eps) {
    using Acc = compute_t<T>;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    const double nt = double(total);
    for (index_t ch = index_t(blockIdx.x) * blockDim.x + threadIdx.x; ch < c; ch += step) {
        const double k = S[2 * c + ch];
        const double w = W ? convert<double>(W[ch]) : 1.0, bias = B ? convert<double>(B[ch]) : 0.0;
        double mean, var, offset;  // offset = mean - shift
        if (!all) {
            const double m = S[ch] / nt, v = S[c + ch] / nt - m * m;
            mean = k + m;
            var = v > 0.0 ? v : 0.0;
            offset = m;
        } else {
            mean = all[ch] / nt;
            const double v = (all[c + ch] + all[2 * c + ch] - nt * mean * mean) / nt;
            var = v > 0.0 ? v : 0.0;
            offset = mean - k;
        }
        const double rs = 1.0 / ::sqrt(var + eps);
        out.mean[ch] = Acc(mean);
        out.rstd[ch] = Acc(rs);
        out.coef[ch] = Acc(k);
        out.coef[c + ch] = Acc(rs * w);
        out.coef[2 * c + ch] = Acc(bias - offset * rs * w);
        if (out.running_mean) {
            T& r = out.running_mean[ch * out.running_mean_stride];
            r = convert<T>((1.0 - momentum) * convert<double>(r) + momentum * mean);
        }
        if (out.running_var) {
            T& r = out.running_var[ch * out.running_var_stride];
            const double unbiased = var * nt / (nt - 1.0);
            r = convert<T>((1.0 - momentum) * convert<double>(r) + momentum * unbiased);
        }
    }
}

// Evaluation: the running statistics normalize.
template <class T>
__global__ void __launch_bounds__(256)
    batch_norm_eval_channels(const T* __restrict__ W, const T* __restrict__ B, BatchNormChannelOut<T> out, index_t c,
                             double eps) {
    using Acc = compute_t<T>;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t ch = index_t(blockIdx.x) * blockDim.x + threadIdx.x; ch < c; ch += step) {
        const double mu = convert<double>(out.running_mean[ch * out.running_mean_stride]);
        const double rs = 1.0 / ::sqrt(convert<double>(out.running_var[ch * out.running_var_stride]) + eps);
        const double w = W ? convert<double>(W[ch]) : 1.0;
        out.mean[ch] = Acc(mu);
        out.rstd[ch] = Acc(rs);
        out.coef[ch] = Acc(mu);
        out.coef[c + ch] = Acc(rs * w);
        out.coef[2 * c + ch] = Acc(B ? convert<double>(B[ch]) : 0.0);
    }
}

// y = (x - shift[ch]) * a[ch] + b[ch] over dense [n, c, s] (numel elements, s >= 1).
template <class T>
__global__ void __launch_bounds__(256) batch_norm_apply(const T* __restrict__ X, T* __restrict__ Y,
                                                        const compute_t<T>* __restrict__ coef, index_t numel,
                                                        index_t c, index_t s) {
    using Acc = compute_t<T>;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    const index_t i0 = index_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i0 >= numel) return;
    lanes::ChannelWalk walk(i0, step, c, s);
    for (index_t i = i0; i < numel; i += step, walk.next()) {
        const index_t ch = walk.ch;
        Y[i] = convert<T>((convert<Acc>(X[i]) - coef[ch]) * coef[c + ch] + coef[2 * c + ch]);
    }
}

// Backward per channel: the g_x coefficients [4c] = a | slope | off | mean (when coef is given)
// and the weight and bias gradients (when given). S = [sum g | sum g (x - mean)] of this replica,
// `all` the same over all replicas (or S itself), `total` their count.
template <class T>
__global__ void __launch_bounds__(256)
    batch_norm_backward_channels(const double* __restrict__ S, const double* __restrict__ all,
                                 const T* __restrict__ W, const compute_t<T>* __restrict__ mean,
                                 const compute_t<T>* __restrict__ rstd, compute_t<T>* __restrict__ coef,
                                 T* __restrict__ GW, T* __restrict__ GB, index_t c, double total, bool training) {
    using Acc = compute_t<T>;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t ch = index_t(blockIdx.x) * blockDim.x + threadIdx.x; ch < c; ch += step) {
        const double rs = double(rstd[ch]);
        if (coef) {
            const double scale = (W ? convert<double>(W[ch]) : 1.0) * rs;
            coef[ch] = Acc(scale);
            coef[c + ch] = training ? Acc(scale * rs * rs * all[c + ch] / total) : Acc(0);
            coef[2 * c + ch] = training ? Acc(scale * all[ch] / total) : Acc(0);
            coef[3 * c + ch] = Acc(double(mean[ch]));
        }
        if (GW) GW[ch] = convert<T>(rs * S[c + ch]);
        if (GB) GB[ch] = convert<T>(S[ch]);
    }
}

// g_x = a * g - (x - mean) * slope - off, per channel, over dense [n, c, s].
template <class T>
__global__ void __launch_bounds__(256)
    batch_norm_grad_x(const T* __restrict__ G, const T* __restrict__ X, const compute_t<T>* __restrict__ coef,
                      T* __restrict__ GX, index_t numel, index_t c, index_t s) {
    using Acc = compute_t<T>;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    const index_t i0 = index_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i0 >= numel) return;
    lanes::ChannelWalk walk(i0, step, c, s);
    for (index_t i = i0; i < numel; i += step, walk.next()) {
        const index_t ch = walk.ch;
        GX[i] = convert<T>(coef[ch] * convert<Acc>(G[i]) - (convert<Acc>(X[i]) - coef[3 * c + ch]) * coef[c + ch] -
                           coef[2 * c + ch]);
    }
}

}  // namespace kernels

namespace detail {

// Per-channel sums of a dense [n, c, s] tensor into S (device, [2c], or [3c] with the shifts when
// forward): stage 1 into partials, stage 2 into S. count = n * s.
template <bool Grad, class T>
void batch_norm_channel_sums(const T* x, const T* g, const compute_t<T>* mean, double* S, index_t c, index_t s,
                             index_t count) {
    const cudaStream_t stream = current_stream();
    index_t chunks = 0;
    Tensor<double, 1, Cuda> p1, p2;
    if (count > 0) {
        // ~8 blocks per SM in all, no chunk shorter than 2048 values, at most 1024 chunks.
        const index_t want = std::max<index_t>(1, index_t(multiprocessor_count()) * 8 / c);
        chunks = std::clamp<index_t>(std::min((count + 2047) / 2048, want), 1, 1024);
        const index_t per_chunk = (count + chunks - 1) / chunks;
        chunks = (count + per_chunk - 1) / per_chunk;  // no empty chunk
        const unsigned threads = unsigned(std::clamp<index_t>((per_chunk + 31) / 32 * 32, 32, 256));
        WEFT_CHECK(c <= index_t(std::numeric_limits<int>::max()), "batch_norm: ", c,
                   " channels are too many for one CUDA grid");
        p1 = Tensor<double, 1, Cuda>::empty({chunks * c});
        p2 = Tensor<double, 1, Cuda>::empty({chunks * c});
        kernels::batch_norm_partials<Grad, T><<<dim3(unsigned(c), unsigned(chunks)), threads, 0, stream>>>(
            x, g, mean, p1.data(), p2.data(), c, s, count, per_chunk);
        WEFT_CUDA_CHECK_LAUNCH();
    }
    kernels::batch_norm_totals<T><<<grid_blocks(c, block_threads), block_threads, 0, stream>>>(
        chunks > 0 ? p1.data() : nullptr, chunks > 0 ? p2.data() : nullptr, Grad ? nullptr : x, S, chunks, c, s,
        count);
    WEFT_CUDA_CHECK_LAUNCH();
}

template <class T>
Tensor<T, 1, Cuda> batch_norm_dense_param(const Tensor<T, 1, Cuda>& t) {
    return t.defined() ? t.detach().contiguous() : Tensor<T, 1, Cuda>();
}

}  // namespace detail

// Fills y, mean, rstd (allocated by the caller) from x [N, C, *]; updates the defined running
// statistics in place when training. Shapes and the training count were checked by the caller.
// `replicas`: ops/batch_norm.hpp's CrossReplicaSum (empty: not synchronized).
template <class T, int R>
void batch_norm_forward(const Tensor<T, R, Cuda>& x, const Tensor<T, 1, Cuda>& running_mean,
                        const Tensor<T, 1, Cuda>& running_var, const Tensor<T, 1, Cuda>& weight,
                        const Tensor<T, 1, Cuda>& bias, bool training, double momentum, double eps,
                        const std::function<void(std::span<double>)>& replicas, const Tensor<T, R, Cuda>& y,
                        const Tensor<compute_t<T>, 1, Cuda>& mean, const Tensor<compute_t<T>, 1, Cuda>& rstd) {
    using Acc = compute_t<T>;
    index_t n = x.size(0), c = x.size(1), s = 1;
    for (int d = 2; d < R; ++d) s *= x.size(d);
    const index_t count = n * s, numel = x.numel();
    const bool synced = training && bool(replicas);
    if (c == 0 && !synced) return;  // a synchronized replica still takes part in the collective
    const cudaStream_t stream = current_stream();
    const auto xc = x.detach().contiguous();
    const auto wc = detail::batch_norm_dense_param(weight), bc = detail::batch_norm_dense_param(bias);
    const T* W = wc.defined() ? wc.data() : nullptr;
    const T* B = bc.defined() ? bc.data() : nullptr;
    auto coef = Tensor<Acc, 1, Cuda>::empty({3 * c});
    kernels::BatchNormChannelOut<T> out{mean.data(), rstd.data(), coef.data(), nullptr, 0, nullptr, 0};
    if (running_mean.defined()) {
        out.running_mean = running_mean.data();
        out.running_mean_stride = running_mean.strides()[0];
    }
    if (running_var.defined()) {
        out.running_var = running_var.data();
        out.running_var_stride = running_var.strides()[0];
    }
    const unsigned grid = grid_blocks(c, block_threads);
    if (training) {
        auto sums = Tensor<double, 1, Cuda>::empty({3 * c});  // s1 | s2 | shift
        if (c > 0) detail::batch_norm_channel_sums<false, T>(xc.data(), nullptr, nullptr, sums.data(), c, s, count);
        index_t total = count;
        Tensor<double, 1, Cuda> all_dev;
        if (synced) {
            // Per channel, over this replica: [sum x (C) | M2 = sum (x - its mean)² (C) | n * its mean² (C) | n],
            // as the CPU forms them (ops/batch_norm.hpp), then summed over the replicas on the host.
            const auto local = sums.to<Cpu>();  // waits for the stream: the collective reads host memory
            const double* S = local.data();
            const auto uc = std::size_t(c);
            std::vector<double> all(3 * uc + 1, 0.0);
            if (count > 0) {
                const double nl = double(count);
                for (std::size_t u = 0; u < uc; ++u) {
                    const double s1 = S[u], s2 = S[uc + u], k = S[2 * uc + u];
                    const double sum = s1 + nl * k, mean_l = sum / nl;
                    all[u] = sum;
                    all[uc + u] = std::max(0.0, s2 - s1 * s1 / nl);
                    all[2 * uc + u] = sum * mean_l;
                }
            }
            all[3 * uc] = double(count);
            replicas(std::span<double>(all));
            total = index_t(std::llround(all[3 * uc]));
            WEFT_CHECK(total > 1, "batch_norm: synchronized training needs more than one value per channel over "
                       "all replicas, got ", total, " (this replica's input has shape ", x.shape(), ")");
            auto host = Tensor<double, 1, Cpu>::empty({index_t(all.size())});
            std::copy(all.begin(), all.end(), host.data());
            all_dev = host.to<Cuda>();
        }
        if (c == 0) return;
        kernels::batch_norm_train_channels<T><<<grid, block_threads, 0, stream>>>(
            sums.data(), synced ? all_dev.data() : nullptr, W, B, out, c, total, momentum, eps);
        WEFT_CUDA_CHECK_LAUNCH();
    } else {
        kernels::batch_norm_eval_channels<T><<<grid, block_threads, 0, stream>>>(W, B, out, c, eps);
        WEFT_CUDA_CHECK_LAUNCH();
    }
    if (numel > 0) {
        kernels::batch_norm_apply<T><<<grid_blocks(numel, block_threads), block_threads, 0, stream>>>(
            xc.data(), y.data(), coef.data(), numel, c, s);
        WEFT_CUDA_CHECK_LAUNCH();
    }
}

// Fills the requested gradients (gx, gw, gb: allocated by the caller, or undefined when not
// wanted) from grad_out and x [N, C, *] and the forward's mean and rstd [C]. `replicas`: as the
// forward's; when training it is called once, whatever is asked.
template <class T, int R>
void batch_norm_backward(const Tensor<T, R, Cuda>& grad_out, const Tensor<T, R, Cuda>& x,
                         const Tensor<T, 1, Cuda>& weight, const Tensor<compute_t<T>, 1, Cuda>& mean,
                         const Tensor<compute_t<T>, 1, Cuda>& rstd, bool training,
                         const std::function<void(std::span<double>)>& replicas, const Tensor<T, R, Cuda>& gx,
                         const Tensor<T, 1, Cuda>& gw, const Tensor<T, 1, Cuda>& gb) {
    using Acc = compute_t<T>;
    index_t n = x.size(0), c = x.size(1), s = 1;
    for (int d = 2; d < R; ++d) s *= x.size(d);
    const index_t count = n * s, numel = x.numel();
    const bool need_x = gx.defined(), need_w = gw.defined(), need_b = gb.defined();
    const bool synced = training && bool(replicas);
    if (c == 0 && !synced) return;
    const cudaStream_t stream = current_stream();
    const auto xc = x.detach().contiguous(), gc = grad_out.detach().contiguous();
    const auto wc = detail::batch_norm_dense_param(weight);
    const auto mc = mean.contiguous(), rc = rstd.contiguous();
    // Per channel: sum of g and of g * (x - mean), over samples and positions.
    Tensor<double, 1, Cuda> sums, all_dev;
    double total = double(count);
    if (training || need_w || need_b) {
        sums = Tensor<double, 1, Cuda>::empty({2 * c});
        if (c > 0) detail::batch_norm_channel_sums<true, T>(xc.data(), gc.data(), mc.data(), sums.data(), c, s, count);
    }
    if (synced) {
        // [sum g (C) | sum g * (x - mean) (C) | n], summed over the replicas on the host.
        const auto local = sums.to<Cpu>();  // waits for the stream: the collective reads host memory
        std::vector<double> all(local.data(), local.data() + 2 * c);
        all.push_back(double(count));
        replicas(std::span<double>(all));
        total = all[std::size_t(2 * c)];
        auto host = Tensor<double, 1, Cpu>::empty({2 * c});
        std::copy(all.begin(), all.begin() + std::ptrdiff_t(2 * c), host.data());
        all_dev = host.to<Cuda>();
    }
    if (c == 0) return;
    Tensor<Acc, 1, Cuda> coef;
    if (need_x) coef = Tensor<Acc, 1, Cuda>::empty({4 * c});
    if (need_x || need_w || need_b) {
        const double* S = sums.defined() ? sums.data() : nullptr;
        kernels::batch_norm_backward_channels<T><<<grid_blocks(c, block_threads), block_threads, 0, stream>>>(
            S, synced ? all_dev.data() : S, wc.defined() ? wc.data() : nullptr, mc.data(), rc.data(),
            need_x ? coef.data() : nullptr, need_w ? gw.data() : nullptr, need_b ? gb.data() : nullptr, c, total,
            training);
        WEFT_CUDA_CHECK_LAUNCH();
    }
    if (need_x && numel > 0) {
        kernels::batch_norm_grad_x<T><<<grid_blocks(numel, block_threads), block_threads, 0, stream>>>(
            gc.data(), xc.data(), coef.data(), gx.data(), numel, c, s);
        WEFT_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace weft::cuda
