// weft/ops/group_norm.hpp: group normalization, forward and backward.
//
//   auto y = group_norm(x, 32, weight, bias);        // x [N, C, *spatial], weight and bias [C]
//   auto z = group_norm(x, 4);                       // no affine transform
//   auto f = group_norm_forward(x, 4, w, b, 1e-5);   // y plus mean and rstd per (sample, group)
//   auto [gx, gw, gb] = group_norm_backward(g, x, 4, w, f.mean, f.rstd);
//
// As torch.nn.functional.group_norm: the C channels are split into `groups` consecutive groups;
// each (sample, group) is normalized over its C / groups channels and all spatial positions
// (biased variance), then each channel is scaled by weight[c] and offset by bias[c] (each
// optional). Any rank >= 2: [N, C] (no spatial axes), [N, C, L], [N, C, H, W], ...
//
// In a dense x each (sample, group) is one contiguous row of (C / groups) * spatial elements:
// rows are spread over the thread pool, and each is one pass of shifted sums
// (ops/cpu/moments.hpp) plus one pass that writes y = (x - shift) * a[c] + b[c], with a[c] and
// b[c] folded per channel. The sums accumulate in double for every element type: a row of a
// feature map can hold millions of elements. The per-element arithmetic runs in compute_t<T>.
//
// Backward, per row with m = its element count, xhat = (x - mean) * rstd, gw = g * weight[c]:
//   g_x = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))
// where both means come from the per-channel sums of g and g * (x - mean), which also give
// grad_w[c] (sum of g * xhat) and grad_b[c] (sum of g) once added over the samples.
// CUDA (ops/cuda/group_norm.cuh) computes the same sums, in double too, with a warp or a block
// per row (and per (sample, channel) segment in the backward).
#pragma once

#include <utility>
#include <cmath>
#include <concepts>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "cpu/lanes.hpp"
#include "cpu/moments.hpp"
#if WEFT_WITH_CUDA
#include "cuda/group_norm.cuh"
#endif

namespace weft {

// The forward result with what the backward needs: per (sample, group) statistics, [N * groups].
template <Element T, int R, Device D = Cpu>
struct GroupNormForward {
    Tensor<T, R, D> y;
    Tensor<compute_t<T>, 1, D> mean;  // [N * groups]
    Tensor<compute_t<T>, 1, D> rstd;  // [N * groups]: 1 / sqrt(var + eps)
};

template <Element T, int R, Device D = Cpu>
struct GroupNormGrads {
    Tensor<T, R, D> grad_x;
    Tensor<T, 1, D> grad_w;
    Tensor<T, 1, D> grad_b;
};

namespace detail {

template <class T, int R, Device D>
void check_group_norm(const char* op, const Tensor<T, R, D>& x, index_t groups, const Tensor<T, 1, D>& weight,
                      const Tensor<T, 1, D>& bias) {
    const index_t c = x.size(1);
    WEFT_CHECK(groups > 0 && c % groups == 0, op, ": ", c, " channels (input of shape ", x.shape(),
               ") cannot be split into ", groups, " groups; the channel count must be a multiple of groups");
    WEFT_CHECK(!weight.defined() || weight.size(0) == c, op, ": weight of shape ", weight.shape(),
               " does not fit input of shape ", x.shape(), " (expected [", c, "])");
    WEFT_CHECK(!bias.defined() || bias.size(0) == c, op, ": bias of shape ", bias.shape(),
               " does not fit input of shape ", x.shape(), " (expected [", c, "])");
}

}  // namespace detail

// ---- forward -------------------------------------------------------------------------------

// Normalizes x [N, C, *] per (sample, group) (not recorded on the tape; group_norm records).
template <Element T, int R, Device D>
GroupNormForward<T, R, D> group_norm_forward(const Tensor<T, R, D>& x, index_t groups,
                                             const Tensor<T, 1, D>& weight, const Tensor<T, 1, D>& bias,
                                             double eps) {
    static_assert(FloatingElement<T>, "weft: group_norm needs a floating-point tensor");
    static_assert(R >= 2, "weft: group_norm needs an input [N, C, *spatial] of rank 2 or more");
    detail::check_group_norm("group_norm", x, groups, weight, bias);
    using Acc = compute_t<T>;
    const auto ext = detail::split_at_axis(x.shape(), 1);  // [N, C, spatial]
    const index_t n = ext.outer, c = ext.n, s = ext.inner;
    const index_t cg = c / groups, rows = n * groups, row = cg * s;
    GroupNormForward<T, R, D> out;
    out.y = Tensor<T, R, D>::empty(x.shape());
    out.mean = Tensor<Acc, 1, D>::empty({rows});
    out.rstd = Tensor<Acc, 1, D>::empty({rows});
    if constexpr (std::same_as<D, Cpu>) {
        const auto xc = x.detach().contiguous();
        const auto wc = weight.defined() ? weight.detach().contiguous() : Tensor<T, 1, D>();
        const auto bc = bias.defined() ? bias.detach().contiguous() : Tensor<T, 1, D>();
        const T* X = xc.data();
        const T* W = wc.defined() ? wc.data() : nullptr;
        const T* B = bc.defined() ? bc.data() : nullptr;
        T* Y = out.y.data();
        Acc* mean = out.mean.data();
        Acc* rstd = out.rstd.data();
        detail::for_each_row(rows, row, [&](index_t r) {
            const T* xr = X + r * row;
            T* yr = Y + r * row;
            const double shift = row > 0 ? convert<double>(xr[0]) : 0.0;
            double s1 = 0, s2 = 0;
            detail::add_shifted_sums(xr, row, shift, s1, s2);
            const auto m = detail::moments_from_sums(shift, s1, s2, row);
            const double rs = 1.0 / std::sqrt(m.var + eps);
            mean[r] = Acc(m.mean);
            rstd[r] = Acc(rs);
            const double d = row > 0 ? s1 / double(row) : 0.0;  // mean - shift
            const Acc sh = Acc(shift);
            const index_t c0 = (r % groups) * cg;
            for (index_t k = 0; k < cg; ++k) {
                // y = (x - shift) * a + b: the channel's scale and offset folded together.
                const double wk = W ? convert<double>(W[c0 + k]) : 1.0;
                const double bk = B ? convert<double>(B[c0 + k]) : 0.0;
                const Acc a = Acc(rs * wk), b = Acc(bk - d * rs * wk);
                const T* xs = xr + k * s;
                T* ys = yr + k * s;
                for (index_t i = 0; i < s; ++i) ys[i] = convert<T>((convert<Acc>(xs[i]) - sh) * a + b);
            }
        });
    } else {
#if WEFT_WITH_CUDA
        const auto xc = x.detach().contiguous();
        const auto wc = weight.defined() ? weight.detach().contiguous() : Tensor<T, 1, D>();
        const auto bc = bias.defined() ? bias.detach().contiguous() : Tensor<T, 1, D>();
        cuda::group_norm_forward(xc.data(), wc.defined() ? wc.data() : nullptr, bc.defined() ? bc.data() : nullptr,
                                 out.y.data(), out.mean.data(), out.rstd.data(), n, c, s, groups, eps);
#endif
    }
    return out;
}

// ---- backward ------------------------------------------------------------------------------

// Gradients of sum(grad_out * group_norm(x, groups, weight, bias)), from the forward's mean and
// rstd. An undefined weight counts as ones; need_* flags skip gradients nobody needs.
template <Element T, int R, Device D>
GroupNormGrads<T, R, D> group_norm_backward(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& x,
                                            index_t groups, const Tensor<T, 1, D>& weight,
                                            const Tensor<compute_t<T>, 1, D>& mean,
                                            const Tensor<compute_t<T>, 1, D>& rstd, bool need_x = true,
                                            bool need_w = true, bool need_b = true) {
    detail::check_group_norm("group_norm_backward", x, groups, weight, Tensor<T, 1, D>());
    WEFT_CHECK(grad_out.shape() == x.shape(), "group_norm_backward: grad_out of shape ", grad_out.shape(),
               " does not match input of shape ", x.shape());
    using Acc = compute_t<T>;
    const auto ext = detail::split_at_axis(x.shape(), 1);  // [N, C, spatial]
    const index_t n = ext.outer, c = ext.n, s = ext.inner;
    const index_t cg = c / groups, rows = n * groups, row = cg * s;
    WEFT_CHECK(mean.size(0) == rows && rstd.size(0) == rows, "group_norm_backward: statistics of shapes ",
               mean.shape(), " and ", rstd.shape(), " do not fit input of shape ", x.shape(), " with ", groups,
               " groups (expected [", rows, "])");
    GroupNormGrads<T, R, D> grads;
    if constexpr (std::same_as<D, Cpu>) {
        const auto xc = x.detach().contiguous(), gc = grad_out.detach().contiguous();
        const auto wc = weight.defined() ? weight.detach().contiguous() : Tensor<T, 1, D>();
        const auto mc = mean.contiguous(), rc = rstd.contiguous();
        const T* X = xc.data();
        const T* G = gc.data();
        const T* W = wc.defined() ? wc.data() : nullptr;
        const Acc* M = mc.data();
        const Acc* RS = rc.data();
        need_w = need_w && weight.defined();
        if (need_x) grads.grad_x = Tensor<T, R, D>::empty(x.shape());
        T* GX = need_x ? grads.grad_x.data() : nullptr;
        // Per (sample, channel): sum of g and sum of g * (x - mean).
        std::vector<double> sum_g(std::size_t(n * c)), sum_gd(std::size_t(n * c));
        detail::for_each_row(rows, row, [&](index_t r) {
            const index_t c0 = (r % groups) * cg, nc0 = (r / groups) * c + c0;
            const double mu = double(M[r]), rs = double(RS[r]);
            double mean_gw = 0, mean_gwd = 0;  // sums first, divided by the row length below
            for (index_t k = 0; k < cg; ++k) {
                const T* xs = X + r * row + k * s;
                const T* gs = G + r * row + k * s;
                double sg, sgd;
                detail::simd_sum2<double>(
                    s, [](auto g, auto) { return g; }, [&](auto g, auto v) { return g * (v - mu); }, sg, sgd, gs, xs);
                sum_g[std::size_t(nc0 + k)] = sg;
                sum_gd[std::size_t(nc0 + k)] = sgd;
                const double wk = W ? convert<double>(W[c0 + k]) : 1.0;
                mean_gw += wk * sg;
                mean_gwd += wk * sgd;
            }
            if (!need_x || row == 0) return;
            mean_gw /= double(row);
            mean_gwd /= double(row);
            // g_x = a[c] * g - rstd * mean(gw) - (x - mean) * rstd^3 * mean(gw * (x - mean))
            const Acc off = Acc(rs * mean_gw), slope = Acc(rs * rs * rs * mean_gwd), mu_a = Acc(mu);
            for (index_t k = 0; k < cg; ++k) {
                const Acc a = Acc(rs * (W ? convert<double>(W[c0 + k]) : 1.0));
                const T* xs = X + r * row + k * s;
                const T* gs = G + r * row + k * s;
                T* gx = GX + r * row + k * s;
                for (index_t i = 0; i < s; ++i)
                    gx[i] = convert<T>(a * convert<Acc>(gs[i]) - off - (convert<Acc>(xs[i]) - mu_a) * slope);
            }
        });
        if (need_w) {
            grads.grad_w = Tensor<T, 1, D>::empty({c});
            for (index_t ch = 0; ch < c; ++ch) {
                double acc = 0;
                for (index_t i = 0; i < n; ++i)
                    acc += double(RS[i * groups + ch / cg]) * sum_gd[std::size_t(i * c + ch)];
                grads.grad_w.data()[ch] = convert<T>(acc);
            }
        }
        if (need_b) {
            grads.grad_b = Tensor<T, 1, D>::empty({c});
            for (index_t ch = 0; ch < c; ++ch) {
                double acc = 0;
                for (index_t i = 0; i < n; ++i) acc += sum_g[std::size_t(i * c + ch)];
                grads.grad_b.data()[ch] = convert<T>(acc);
            }
        }
    } else {
#if WEFT_WITH_CUDA
        const auto xc = x.detach().contiguous(), gc = grad_out.detach().contiguous();
        const auto wc = weight.defined() ? weight.detach().contiguous() : Tensor<T, 1, D>();
        const auto mc = mean.contiguous(), rc = rstd.contiguous();
        need_w = need_w && weight.defined();
        if (need_x) grads.grad_x = Tensor<T, R, D>::empty(x.shape());
        if (need_w) grads.grad_w = Tensor<T, 1, D>::empty({c});
        if (need_b) grads.grad_b = Tensor<T, 1, D>::empty({c});
        cuda::group_norm_backward(gc.data(), xc.data(), wc.defined() ? wc.data() : nullptr, mc.data(), rc.data(),
                                  need_x ? grads.grad_x.data() : nullptr, need_w ? grads.grad_w.data() : nullptr,
                                  need_b ? grads.grad_b.data() : nullptr, n, c, s, groups);
#endif
    }
    return grads;
}

// ---- recorded op ---------------------------------------------------------------------------

// x [N, C, *spatial] -> same shape; weight and bias [C] or undefined (`{}`).
template <Element T, int R, Device D>
Tensor<T, R, D> group_norm(const Tensor<T, R, D>& x, index_t groups, const Tensor<T, 1, D>& weight = {},
                           const Tensor<T, 1, D>& bias = {}, double eps = 1e-5) {
    auto f = group_norm_forward(x.detach(), groups, weight.detach(), bias.detach(), eps);
    if (needs_grad(x, weight, bias))
        record(
            f.y, "group_norm",
            [x, groups, weight, bias, mean = f.mean, rstd = f.rstd](const Tensor<T, R, D>& g) {
                auto grads = group_norm_backward(g, x.detach(), groups, weight.detach(), mean, rstd,
                                                 x.requires_grad(), weight.requires_grad(), bias.requires_grad());
                accumulate_grad(x, std::move(grads.grad_x));
                accumulate_grad(weight, std::move(grads.grad_w));
                accumulate_grad(bias, std::move(grads.grad_b));
            },
            x, weight, bias);
    return f.y;
}

}  // namespace weft
