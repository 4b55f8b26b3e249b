// weft/ops/batch_norm.hpp: batch normalization, training and evaluation, forward and backward.
//
//   auto y = batch_norm(x, running_mean, running_var, weight, bias, /*training=*/true);
//   auto z = batch_norm(x, running_mean, running_var, weight, bias, false);   // evaluation
//   auto f = batch_norm_forward(x, rm, rv, w, b, true, 0.1, 1e-5);          // y, mean, rstd
//   auto [gx, gw, gb] = batch_norm_backward(g, x, w, f.mean, f.rstd, true);
//   auto s = batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5, replicas);       // synchronized (SyncBN)
//
// As torch.nn.functional.batch_norm on x [N, C, *] (any rank >= 2), weight and bias [C] or
// undefined. Training normalizes each channel with the batch's mean and biased variance and
// updates the running statistics IN PLACE, as PyTorch does:
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)   (unbiased)
// with m = N * spatial values per channel; either running tensor may be undefined (not tracked).
// Evaluation normalizes with the running statistics, which must then both be given. Both modes
// are differentiable with respect to x, weight and bias; in evaluation the statistics are
// constants, so g_x = g * weight / sqrt(running_var + eps).
//
// Synchronized (data-parallel) training: given a CrossReplicaSum, the statistics are those of
// the batch formed by all replicas' x together, as torch.nn.SyncBatchNorm: each replica sums its
// count, sum and squared deviations, one collective adds them, and Chan's combination gives the
// global mean and variance (m in the running variance is then the global count). Backward adds
// sum(g) and sum(g * (x - mean)) the same way, so g_x is the gradient of the sum over replicas;
// g_weight and g_bias stay this replica's share, for the data-parallel all-reduce to combine.
//
// CPU: each channel's values are spread over N segments of `spatial` contiguous elements. The
// statistics are shifted sums (ops/cpu/moments.hpp) in double, the shift being the channel's
// first element, gathered in one partial sum per block of (samples x channels) so that both a
// large batch and a large channel count fill the thread pool; the partials simply add. The
// output pass is one multiply-add per element with the channel's scale and offset folded.
// CUDA (ops/cuda/batch_norm.cuh): the same shifted sums in double, reduced in two stages (blocks
// per channel and chunk of values, then per channel), the running statistics updated on the
// device; synchronized training copies the 3C + 1 (backward 2C + 1) sums to the host for the
// collective, which waits for the stream.
#pragma once

#include <utility>
#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <span>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "cpu/lanes.hpp"
#include "cpu/moments.hpp"
#if WEFT_WITH_CUDA
#include "cuda/batch_norm.cuh"
#endif

namespace weft {

// A collective that replaces every element of the span by its sum over all replicas (the
// data-parallel processes). Every replica calls it in the same order with the same length, so
// a replica that throws before its call leaves the others waiting. Empty: this process is the
// only replica. dist/ makes one from a Communicator; ops know nothing of MPI or NCCL.
using CrossReplicaSum = std::function<void(std::span<double>)>;

// The forward result with what the backward needs, per channel in compute_t<T>.
template <Element T, int R, Device D = Cpu>
struct BatchNormForward {
    Tensor<T, R, D> y;
    Tensor<compute_t<T>, 1, D> mean;  // [C]: the batch mean (training) or the running mean
    Tensor<compute_t<T>, 1, D> rstd;  // [C]: 1 / sqrt(var + eps), var biased (training) or running
};

template <Element T, int R, Device D = Cpu>
struct BatchNormGrads {
    Tensor<T, R, D> grad_x;
    Tensor<T, 1, D> grad_w;
    Tensor<T, 1, D> grad_b;
};

namespace detail {

template <class T, int R, Device D>
void check_batch_norm(const char* op, const Tensor<T, R, D>& x, const Tensor<T, 1, D>& running_mean,
                      const Tensor<T, 1, D>& running_var, const Tensor<T, 1, D>& weight,
                      const Tensor<T, 1, D>& bias) {
    const index_t c = x.size(1);
    auto fits = [&](const Tensor<T, 1, D>& t, const char* what) {
        WEFT_CHECK(!t.defined() || t.size(0) == c, op, ": ", what, " of shape ", t.shape(),
                   " does not fit input of shape ", x.shape(), " (one value per channel: expected [", c, "])");
    };
    fits(running_mean, "running_mean");
    fits(running_var, "running_var");
    fits(weight, "weight");
    fits(bias, "bias");
}

// How a per-channel reduction over a dense [N, C, S] tensor is cut into blocks: sample chunk k
// of `sample_chunks` times channel block b of `channel_blocks`. Each sample chunk owns one row
// of C partial sums; its channel blocks write disjoint parts of that row.
struct BatchPlan {
    index_t n, c, s, sample_chunks, channel_blocks;

    BatchPlan(index_t n_, index_t c_, index_t s_) : n(n_), c(c_), s(s_) {
        const index_t total = n * c * s;
        const index_t parts = std::max<index_t>(
            1, std::min<index_t>(index_t(num_threads()), total / kParallelGrain));
        sample_chunks = std::max<index_t>(1, std::min(n, parts));
        channel_blocks = std::max<index_t>(1, std::min(c, (parts + sample_chunks - 1) / sample_chunks));
    }

    // f(k, i0, i1, c0, c1): samples [i0, i1) and channels [c0, c1) into sample chunk k's partials.
    template <class F>
    void run(F&& f) const {
        parallel_for(0, sample_chunks * channel_blocks, 1, [&](index_t begin, index_t end) {
            for (index_t item = begin; item < end; ++item) {
                const index_t k = item / channel_blocks, b = item % channel_blocks;
                f(k, n * k / sample_chunks, n * (k + 1) / sample_chunks, c * b / channel_blocks,
                  c * (b + 1) / channel_blocks);
            }
        });
    }

    // Adds the sample chunks' partial rows: [sample_chunks, C] -> [C].
    std::vector<double> total(const std::vector<double>& part) const {
        std::vector<double> out(std::size_t(c), 0.0);
        for (index_t k = 0; k < sample_chunks; ++k)
            for (index_t ch = 0; ch < c; ++ch) out[std::size_t(ch)] += part[std::size_t(k * c + ch)];
        return out;
    }
};

// f(ch, i) for every flat index i of a dense [N, C, S] tensor, ch its channel, spread over the
// thread pool. Inner loops run over contiguous indices with ch fixed (or, when S == 1, over the
// channels of a row), so they vectorise.
template <class F>
void for_each_channel_element(index_t n, index_t c, index_t s, F&& f) {
    if (s == 1) {
        for_each_row(n, c, [&](index_t i) {
            for (index_t ch = 0; ch < c; ++ch) f(ch, i * c + ch);
        });
        return;
    }
    const index_t grain = std::max<index_t>(1, kParallelGrain / s);
    parallel_for(0, n * c, grain, [&](index_t begin, index_t end) {
        for (index_t seg = begin; seg < end; ++seg) {
            const index_t ch = seg % c, base = seg * s;
            for (index_t j = 0; j < s; ++j) f(ch, base + j);
        }
    });
}

}  // namespace detail

// ---- forward -------------------------------------------------------------------------------

// Normalizes x [N, C, *] per channel and, when training, updates the defined running statistics
// in place (not recorded on the tape; batch_norm records). With `replicas` and training, the
// statistics are those of all replicas' batches together (one call of the collective), and
// then a replica's own x may hold a single value per channel, or none.
template <Element T, int R, Device D>
BatchNormForward<T, R, D> batch_norm_forward(const Tensor<T, R, D>& x, const Tensor<T, 1, D>& running_mean,
                                             const Tensor<T, 1, D>& running_var, const Tensor<T, 1, D>& weight,
                                             const Tensor<T, 1, D>& bias, bool training, double momentum,
                                             double eps, const CrossReplicaSum& replicas = {}) {
    static_assert(FloatingElement<T>, "weft: batch_norm needs a floating-point tensor");
    static_assert(R >= 2, "weft: batch_norm needs an input [N, C, *] of rank 2 or more");
    detail::check_batch_norm("batch_norm", x, running_mean, running_var, weight, bias);
    using Acc = compute_t<T>;
    const auto ext = detail::split_at_axis(x.shape(), 1);  // [N, C, spatial]
    const index_t n = ext.outer, c = ext.n, s = ext.inner, count = n * s;
    const auto uc = static_cast<std::size_t>(c);
    const bool synced = training && bool(replicas);
    WEFT_CHECK(!training || synced || count > 1, "batch_norm: training needs more than one value per channel, got "
               "input of shape ", x.shape());
    WEFT_CHECK(training || (running_mean.defined() && running_var.defined()),
               "batch_norm: evaluation (training = false) normalizes with the running statistics; running_mean "
               "and running_var must both be defined");
    BatchNormForward<T, R, D> out;
    out.y = Tensor<T, R, D>::empty(x.shape());
    out.mean = Tensor<Acc, 1, D>::empty({c});
    out.rstd = Tensor<Acc, 1, D>::empty({c});
    if constexpr (std::same_as<D, Cpu>) {
        const auto xc = x.detach().contiguous();
        const T* X = xc.data();
        // Per channel: y = (x - shift) * a + b.
        std::vector<Acc> shift(uc), a(uc), b(uc);
        auto weight_at = [&](index_t ch) { return weight.defined() ? convert<double>(weight(ch)) : 1.0; };
        auto bias_at = [&](index_t ch) { return bias.defined() ? convert<double>(bias(ch)) : 0.0; };
        auto update_running = [&](index_t ch, double mean, double var, index_t total) {
            if (running_mean.defined()) {
                T& r = running_mean(ch);
                r = convert<T>((1.0 - momentum) * convert<double>(r) + momentum * mean);
            }
            if (running_var.defined()) {
                T& r = running_var(ch);
                const double unbiased = var * double(total) / double(total - 1);
                r = convert<T>((1.0 - momentum) * convert<double>(r) + momentum * unbiased);
            }
        };
        if (training) {
            const detail::BatchPlan plan(n, c, s);
            std::vector<double> k(uc, 0.0), p1(std::size_t(plan.sample_chunks * c), 0.0), p2(p1.size(), 0.0);
            if (count > 0)  // a synchronized replica may hold no values
                for (index_t ch = 0; ch < c; ++ch) k[std::size_t(ch)] = convert<double>(X[ch * s]);
            plan.run([&](index_t part, index_t i0, index_t i1, index_t c0, index_t c1) {
                double* q1 = p1.data() + part * c;
                double* q2 = p2.data() + part * c;
                for (index_t i = i0; i < i1; ++i) {
                    if (s == 1) {
                        const T* xr = X + i * c;
                        for (index_t ch = c0; ch < c1; ++ch) {
                            const double d = convert<double>(xr[ch]) - k[std::size_t(ch)];
                            q1[ch] += d;
                            q2[ch] += d * d;
                        }
                    } else {
                        for (index_t ch = c0; ch < c1; ++ch)
                            detail::add_shifted_sums(X + (i * c + ch) * s, s, k[std::size_t(ch)], q1[ch], q2[ch]);
                    }
                }
            });
            const auto s1 = plan.total(p1), s2 = plan.total(p2);
            if (!synced) {
                for (index_t ch = 0; ch < c; ++ch) {
                    const std::size_t u = std::size_t(ch);
                    const auto m = detail::moments_from_sums(k[u], s1[u], s2[u], count);
                    const double rs = 1.0 / std::sqrt(m.var + eps), w = weight_at(ch);
                    out.mean.data()[ch] = Acc(m.mean);
                    out.rstd.data()[ch] = Acc(rs);
                    shift[u] = Acc(k[u]);
                    a[u] = Acc(rs * w);
                    b[u] = Acc(bias_at(ch) - (s1[u] / double(count)) * rs * w);
                    update_running(ch, m.mean, m.var, count);
                }
            } else {
                // Per channel, over this replica: [sum x (C) | M2 = sum (x - its mean)^2 (C) |
                // n * its mean^2 (C) | n]. M2 comes from the shifted sums, so it keeps their
                // accuracy; the spread of the replicas' means enters through n * mean^2, whose
                // cancellation in double costs digits only when |mean| >> std (1e3 keeps ~10).
                std::vector<double> all(3 * uc + 1, 0.0);
                if (count > 0) {
                    const double nl = double(count);
                    for (std::size_t u = 0; u < uc; ++u) {
                        const double sum = s1[u] + nl * k[u], mean_l = sum / nl;
                        all[u] = sum;
                        all[uc + u] = std::max(0.0, s2[u] - s1[u] * s1[u] / nl);
                        all[2 * uc + u] = sum * mean_l;
                    }
                }
                all[3 * uc] = double(count);
                replicas(std::span<double>(all));
                const auto total = index_t(std::llround(all[3 * uc]));
                WEFT_CHECK(total > 1, "batch_norm: synchronized training needs more than one value per channel over "
                           "all replicas, got ", total, " (this replica's input has shape ", x.shape(), ")");
                const double nt = double(total);
                for (index_t ch = 0; ch < c; ++ch) {
                    const std::size_t u = std::size_t(ch);
                    const double mean = all[u] / nt;
                    const double var = std::max(0.0, (all[uc + u] + all[2 * uc + u] - nt * mean * mean) / nt);
                    const double rs = 1.0 / std::sqrt(var + eps), w = weight_at(ch);
                    out.mean.data()[ch] = Acc(mean);
                    out.rstd.data()[ch] = Acc(rs);
                    // The shift stays this replica's data value: x - shift is exact for x near it.
                    shift[u] = Acc(k[u]);
                    a[u] = Acc(rs * w);
                    b[u] = Acc(bias_at(ch) - (mean - k[u]) * rs * w);
                    update_running(ch, mean, var, total);
                }
            }
        } else {
            for (index_t ch = 0; ch < c; ++ch) {
                const std::size_t u = std::size_t(ch);
                const double mu = convert<double>(running_mean(ch));
                const double rs = 1.0 / std::sqrt(convert<double>(running_var(ch)) + eps);
                out.mean.data()[ch] = Acc(mu);
                out.rstd.data()[ch] = Acc(rs);
                shift[u] = Acc(mu);
                a[u] = Acc(rs * weight_at(ch));
                b[u] = Acc(bias_at(ch));
            }
        }
        T* Y = out.y.data();
        const Acc* SH = shift.data();
        const Acc* A = a.data();
        const Acc* B = b.data();
        detail::for_each_channel_element(n, c, s, [&](index_t ch, index_t i) {
            Y[i] = convert<T>((convert<Acc>(X[i]) - SH[ch]) * A[ch] + B[ch]);
        });
    } else {
#if WEFT_WITH_CUDA
        cuda::batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum, eps, replicas, out.y,
                                 out.mean, out.rstd);
#endif
    }
    return out;
}

// ---- backward ------------------------------------------------------------------------------

// Gradients of sum(grad_out * batch_norm(x, ...)), from the forward's mean and rstd. `training`
// must be the forward's: in training the batch statistics depend on x, in evaluation they are
// constants. An undefined weight counts as ones; need_* flags skip gradients nobody needs.
// `replicas` must be the forward's too: synchronized, g_x is the gradient of the sum over all
// replicas of <grad_out, y> (one call of the collective, made whatever the need_* flags say, so
// that every replica calls it), while g_weight and g_bias stay this replica's own terms.
template <Element T, int R, Device D>
BatchNormGrads<T, R, D> batch_norm_backward(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& x,
                                            const Tensor<T, 1, D>& weight, const Tensor<compute_t<T>, 1, D>& mean,
                                            const Tensor<compute_t<T>, 1, D>& rstd, bool training,
                                            bool need_x = true, bool need_w = true, bool need_b = true,
                                            const CrossReplicaSum& replicas = {}) {
    detail::check_batch_norm("batch_norm_backward", x, {}, {}, weight, {});
    WEFT_CHECK(grad_out.shape() == x.shape(), "batch_norm_backward: grad_out of shape ", grad_out.shape(),
               " does not match input of shape ", x.shape());
    using Acc = compute_t<T>;
    const auto ext = detail::split_at_axis(x.shape(), 1);  // [N, C, spatial]
    const index_t n = ext.outer, c = ext.n, s = ext.inner, count = n * s;
    const auto uc = static_cast<std::size_t>(c);
    WEFT_CHECK(mean.size(0) == c && rstd.size(0) == c, "batch_norm_backward: statistics of shapes ", mean.shape(),
               " and ", rstd.shape(), " do not fit input of shape ", x.shape(), " (expected [", c, "])");
    BatchNormGrads<T, R, D> grads;
    if constexpr (std::same_as<D, Cpu>) {
        const auto xc = x.detach().contiguous(), gc = grad_out.detach().contiguous();
        const T* X = xc.data();
        const T* G = gc.data();
        need_w = need_w && weight.defined();
        std::vector<double> mu(uc), rs(uc), w(uc);
        for (index_t ch = 0; ch < c; ++ch) {
            mu[std::size_t(ch)] = double(mean(ch));
            rs[std::size_t(ch)] = double(rstd(ch));
            w[std::size_t(ch)] = weight.defined() ? convert<double>(weight(ch)) : 1.0;
        }
        // Per channel: sum of g and of g * (x - mean), over samples and positions.
        std::vector<double> sum_g, sum_gd;
        if (training || need_w || need_b) {
            const detail::BatchPlan plan(n, c, s);
            std::vector<double> p1(std::size_t(plan.sample_chunks * c), 0.0), p2(p1.size(), 0.0);
            plan.run([&](index_t part, index_t i0, index_t i1, index_t c0, index_t c1) {
                double* q1 = p1.data() + part * c;
                double* q2 = p2.data() + part * c;
                for (index_t i = i0; i < i1; ++i) {
                    if (s == 1) {  // [N, C]: a row holds one value of each channel
                        const T* xr = X + i * c;
                        const T* gr = G + i * c;
                        for (index_t ch = c0; ch < c1; ++ch) {
                            const double g = convert<double>(gr[ch]);
                            q1[ch] += g;
                            q2[ch] += g * (convert<double>(xr[ch]) - mu[std::size_t(ch)]);
                        }
                        continue;
                    }
                    for (index_t ch = c0; ch < c1; ++ch) {
                        const T* xs = X + (i * c + ch) * s;
                        const T* gs = G + (i * c + ch) * s;
                        const double m = mu[std::size_t(ch)];
                        double a, b;
                        detail::simd_sum2<double>(
                            s, [](auto g, auto) { return g; }, [&](auto g, auto v) { return g * (v - m); }, a, b, gs,
                            xs);
                        q1[ch] += a;
                        q2[ch] += b;
                    }
                }
            });
            sum_g = plan.total(p1);
            sum_gd = plan.total(p2);
        }
        // What g_x's batch terms divide: this replica's sums and count, or, synchronized, those
        // of all replicas (the count travels with the sums instead of being kept from forward).
        const double *all_g = sum_g.data(), *all_gd = sum_gd.data();
        double total = double(count);
        std::vector<double> all;
        if (training && replicas) {
            all = sum_g;  // [sum g (C) | sum g * (x - mean) (C) | n]
            all.insert(all.end(), sum_gd.begin(), sum_gd.end());
            all.push_back(double(count));
            replicas(std::span<double>(all));
            all_g = all.data();
            all_gd = all.data() + uc;
            total = all[2 * uc];
        }
        if (need_x) {
            // g_x = a * g - (x - mean) * slope - off, per channel.
            std::vector<Acc> a(uc), slope(uc, Acc(0)), off(uc, Acc(0)), mu_a(uc);
            for (index_t ch = 0; ch < c; ++ch) {
                const std::size_t u = std::size_t(ch);
                const double scale = w[u] * rs[u];
                a[u] = Acc(scale);
                mu_a[u] = Acc(mu[u]);
                if (training) {
                    slope[u] = Acc(scale * rs[u] * rs[u] * all_gd[u] / total);
                    off[u] = Acc(scale * all_g[u] / total);
                }
            }
            grads.grad_x = Tensor<T, R, D>::empty(x.shape());
            T* GX = grads.grad_x.data();
            const Acc *A = a.data(), *SL = slope.data(), *OF = off.data(), *MU = mu_a.data();
            detail::for_each_channel_element(n, c, s, [&](index_t ch, index_t i) {
                GX[i] = convert<T>(A[ch] * convert<Acc>(G[i]) - (convert<Acc>(X[i]) - MU[ch]) * SL[ch] - OF[ch]);
            });
        }
        if (need_w) {
            grads.grad_w = Tensor<T, 1, D>::empty({c});
            for (index_t ch = 0; ch < c; ++ch)
                grads.grad_w.data()[ch] = convert<T>(rs[std::size_t(ch)] * sum_gd[std::size_t(ch)]);
        }
        if (need_b) {
            grads.grad_b = Tensor<T, 1, D>::empty({c});
            for (index_t ch = 0; ch < c; ++ch) grads.grad_b.data()[ch] = convert<T>(sum_g[std::size_t(ch)]);
        }
    } else {
#if WEFT_WITH_CUDA
        need_w = need_w && weight.defined();
        if (need_x) grads.grad_x = Tensor<T, R, D>::empty(x.shape());
        if (need_w) grads.grad_w = Tensor<T, 1, D>::empty({c});
        if (need_b) grads.grad_b = Tensor<T, 1, D>::empty({c});
        cuda::batch_norm_backward(grad_out, x, weight, mean, rstd, training, replicas, grads.grad_x, grads.grad_w,
                                  grads.grad_b);
#endif
    }
    return grads;
}

// ---- recorded op ---------------------------------------------------------------------------

// x [N, C, *] -> same shape. running_mean / running_var [C] are updated in place when training
// (each may be undefined, `{}`, when training); weight and bias [C] or undefined. `replicas`
// synchronizes training across data-parallel replicas (ignored in evaluation); each replica's
// backward() then calls it once more, so all must run backward through this op.
template <Element T, int R, Device D>
Tensor<T, R, D> batch_norm(const Tensor<T, R, D>& x, const Tensor<T, 1, D>& running_mean,
                           const Tensor<T, 1, D>& running_var, const Tensor<T, 1, D>& weight = {},
                           const Tensor<T, 1, D>& bias = {}, bool training = false, double momentum = 0.1,
                           double eps = 1e-5, const CrossReplicaSum& replicas = {}) {
    WEFT_CHECK(!running_mean.requires_grad() && !running_var.requires_grad(),
               "batch_norm: the running statistics are buffers updated in place and must not require grad");
    auto f = batch_norm_forward(x.detach(), running_mean, running_var, weight.detach(), bias.detach(), training,
                                momentum, eps, replicas);
    // The closure keeps its own copy of the collective: the backward calls it again.
    if (needs_grad(x, weight, bias))
        record(
            f.y, "batch_norm",
            [x, weight, bias, training, mean = f.mean, rstd = f.rstd,
             replicas = training ? replicas : CrossReplicaSum{}](const Tensor<T, R, D>& g) {
                auto grads = batch_norm_backward(g, x.detach(), weight.detach(), mean, rstd, training,
                                                 x.requires_grad(), weight.requires_grad(), bias.requires_grad(),
                                                 replicas);
                accumulate_grad(x, std::move(grads.grad_x));
                accumulate_grad(weight, std::move(grads.grad_w));
                accumulate_grad(bias, std::move(grads.grad_b));
            },
            x, weight, bias);
    return f.y;
}

}  // namespace weft
