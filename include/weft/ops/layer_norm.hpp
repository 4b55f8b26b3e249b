// weft/ops/layer_norm.hpp: layer normalization over the last axis, forward and backward.
//
//   auto y = layer_norm(x, weight, bias);          // [..., C] -> [..., C]; weight, bias [C]
//   auto z = layer_norm(x);                        // no affine transform
//   auto f = layer_norm_forward(x, w, b, 1e-5);    // y plus the per-row mean and 1/sqrt(var + eps)
//   auto [gx, gw, gb] = layer_norm_backward(g, x, w, f.mean, f.rstd);
//
// As torch.nn.functional.layer_norm(x, [C], weight, bias, eps): each row of C elements is
// shifted to mean 0 and scaled to (biased) variance 1, then multiplied by weight and offset by
// bias (each optional: an undefined tensor, `{}`).
//
// Statistics are computed in compute_t<T> (double for double, float for float and the 16-bit
// types), in one pass over each row with shifted sums (ops/cpu/moments.hpp), rows spread over
// the thread pool. The output is formed from x - shift (exact for values near the shift), so a
// row like 1000 + noise loses no digits to the rounding of its mean. The backward saves only
// the per-row mean and 1/sqrt(var + eps); the weight and bias gradients are summed over rows
// in one partial sum per thread, added at the end. CUDA (ops/cuda/layer_norm.cuh): the same
// sums with a warp or a block per row; the weight and bias gradients in two stages (partial
// column sums per chunk of rows, then per column), no atomics.
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
#include "cuda/layer_norm.cuh"
#endif

namespace weft {

// The forward result with what the backward needs: per-row statistics of the [rows = numel / C]
// rows of x, in compute_t<T>.
template <Element T, int R, Device D = Cpu>
struct LayerNormForward {
    Tensor<T, R, D> y;
    Tensor<compute_t<T>, 1, D> mean;  // [rows]
    Tensor<compute_t<T>, 1, D> rstd;  // [rows]: 1 / sqrt(var + eps)
};

// Gradients with respect to input, weight and bias (each undefined when not asked for).
template <Element T, int R, Device D = Cpu>
struct LayerNormGrads {
    Tensor<T, R, D> grad_x;
    Tensor<T, 1, D> grad_w;
    Tensor<T, 1, D> grad_b;
};

namespace detail {

template <class T, int R, Device D>
void check_layer_norm(const char* op, const Tensor<T, R, D>& x, const Tensor<T, 1, D>& weight,
                      const Tensor<T, 1, D>& bias) {
    const index_t c = x.size(R - 1);
    WEFT_CHECK(!weight.defined() || weight.size(0) == c, op, ": weight of shape ", weight.shape(),
               " does not fit input of shape ", x.shape(), " (normalized over the last axis: expected [", c, "])");
    WEFT_CHECK(!bias.defined() || bias.size(0) == c, op, ": bias of shape ", bias.shape(),
               " does not fit input of shape ", x.shape(), " (normalized over the last axis: expected [", c, "])");
}

template <int R>
index_t leading_rows(const Shape<R>& s) {
    index_t rows = 1;
    for (int d = 0; d < R - 1; ++d) rows *= s[d];
    return rows;
}

}  // namespace detail

// ---- forward -------------------------------------------------------------------------------

// Normalizes the rows of x (not recorded on the tape; layer_norm records).
template <Element T, int R, Device D>
LayerNormForward<T, R, D> layer_norm_forward(const Tensor<T, R, D>& x, const Tensor<T, 1, D>& weight,
                                             const Tensor<T, 1, D>& bias, double eps) {
    static_assert(FloatingElement<T>, "weft: layer_norm needs a floating-point tensor");
    static_assert(R >= 1, "weft: layer_norm normalizes the last axis; pass a tensor of rank 1 or more");
    detail::check_layer_norm("layer_norm", x, weight, bias);
    using Acc = compute_t<T>;
    const index_t c = x.size(R - 1), rows = detail::leading_rows(x.shape());
    LayerNormForward<T, R, D> out;
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
        const Acc e = Acc(eps);
        detail::for_each_row(rows, c, [&](index_t r) {
            const T* xr = X + r * c;
            T* yr = Y + r * c;
            const Acc shift = c > 0 ? convert<Acc>(xr[0]) : Acc(0);
            Acc s1 = 0, s2 = 0;
            detail::add_shifted_sums(xr, c, shift, s1, s2);
            const auto m = detail::moments_from_sums(shift, s1, s2, c);
            const Acc rs = Acc(1) / std::sqrt(m.var + e);
            const Acc d = c > 0 ? s1 / Acc(c) : Acc(0);  // mean - shift, without rounding the mean
            mean[r] = m.mean;
            rstd[r] = rs;
            if (W && B) {
                for (index_t i = 0; i < c; ++i)
                    yr[i] = convert<T>((convert<Acc>(xr[i]) - shift - d) * (rs * convert<Acc>(W[i])) +
                                       convert<Acc>(B[i]));
            } else if (W) {
                for (index_t i = 0; i < c; ++i)
                    yr[i] = convert<T>((convert<Acc>(xr[i]) - shift - d) * (rs * convert<Acc>(W[i])));
            } else if (B) {
                for (index_t i = 0; i < c; ++i)
                    yr[i] = convert<T>((convert<Acc>(xr[i]) - shift - d) * rs + convert<Acc>(B[i]));
            } else {
                for (index_t i = 0; i < c; ++i) yr[i] = convert<T>((convert<Acc>(xr[i]) - shift - d) * rs);
            }
        });
    } else {
#if WEFT_WITH_CUDA
        const auto xc = x.detach().contiguous();
        const auto wc = weight.defined() ? weight.detach().contiguous() : Tensor<T, 1, D>();
        const auto bc = bias.defined() ? bias.detach().contiguous() : Tensor<T, 1, D>();
        cuda::layer_norm_forward(xc.data(), wc.defined() ? wc.data() : nullptr, bc.defined() ? bc.data() : nullptr,
                                 out.y.data(), out.mean.data(), out.rstd.data(), rows, c, Acc(eps));
#endif
    }
    return out;
}

// ---- backward ------------------------------------------------------------------------------

// Gradients of sum(grad_out * layer_norm(x, weight, bias)), from the forward's mean and rstd.
// An undefined weight counts as ones; need_* flags skip gradients nobody needs.
template <Element T, int R, Device D>
LayerNormGrads<T, R, D> layer_norm_backward(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& x,
                                            const Tensor<T, 1, D>& weight, const Tensor<compute_t<T>, 1, D>& mean,
                                            const Tensor<compute_t<T>, 1, D>& rstd, bool need_x = true,
                                            bool need_w = true, bool need_b = true) {
    detail::check_layer_norm("layer_norm_backward", x, weight, Tensor<T, 1, D>());
    WEFT_CHECK(grad_out.shape() == x.shape(), "layer_norm_backward: grad_out of shape ", grad_out.shape(),
               " does not match input of shape ", x.shape());
    using Acc = compute_t<T>;
    const index_t c = x.size(R - 1), rows = detail::leading_rows(x.shape());
    WEFT_CHECK(mean.size(0) == rows && rstd.size(0) == rows, "layer_norm_backward: statistics of shapes ",
               mean.shape(), " and ", rstd.shape(), " do not fit input of shape ", x.shape(), " (expected [", rows,
               "])");
    LayerNormGrads<T, R, D> grads;
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
        // One partial sum of the weight and bias gradients per chunk of rows.
        const index_t chunks = detail::reduction_chunks(rows, c);
        std::vector<Acc> part_w(need_w ? std::size_t(chunks * c) : 0), part_b(need_b ? std::size_t(chunks * c) : 0);
        parallel_for(0, chunks, 1, [&](index_t cb, index_t ce) {
            for (index_t k = cb; k < ce; ++k) {
                Acc* pw = need_w ? part_w.data() + k * c : nullptr;
                Acc* pb = need_b ? part_b.data() + k * c : nullptr;
                for (index_t r = rows * k / chunks, re = rows * (k + 1) / chunks; r < re; ++r) {
                    const T* xr = X + r * c;
                    const T* gr = G + r * c;
                    const Acc mu = M[r], rs = RS[r];
                    if (need_x) {
                        // g_x = rstd * (gw - mean(gw) - (x - mean) * rstd² * mean(gw * (x - mean))), gw = g * w
                        T* gx = GX + r * c;
                        Acc sum_gw, sum_gwd;
                        if (W) {
                            detail::simd_sum2<Acc>(
                                c, [](auto g, auto w, auto) { return g * w; },
                                [&](auto g, auto w, auto v) { return g * w * (v - mu); }, sum_gw, sum_gwd, gr, W, xr);
                            const Acc a = sum_gw / Acc(c), b = sum_gwd * rs * rs / Acc(c);
                            for (index_t i = 0; i < c; ++i)
                                gx[i] = convert<T>(rs * (convert<Acc>(gr[i]) * convert<Acc>(W[i]) - a -
                                                         (convert<Acc>(xr[i]) - mu) * b));
                        } else {
                            detail::simd_sum2<Acc>(
                                c, [](auto g, auto) { return g; }, [&](auto g, auto v) { return g * (v - mu); }, sum_gw,
                                sum_gwd, gr, xr);
                            const Acc a = sum_gw / Acc(c), b = sum_gwd * rs * rs / Acc(c);
                            for (index_t i = 0; i < c; ++i)
                                gx[i] = convert<T>(rs * (convert<Acc>(gr[i]) - a - (convert<Acc>(xr[i]) - mu) * b));
                        }
                    }
                    if (pw)
                        for (index_t i = 0; i < c; ++i)
                            pw[i] += convert<Acc>(gr[i]) * ((convert<Acc>(xr[i]) - mu) * rs);
                    if (pb)
                        for (index_t i = 0; i < c; ++i) pb[i] += convert<Acc>(gr[i]);
                }
            }
        });
        auto reduce_parts = [&](const std::vector<Acc>& part) {
            auto out = Tensor<T, 1, D>::empty({c});
            for (index_t i = 0; i < c; ++i) {
                Acc s = 0;
                for (index_t k = 0; k < chunks; ++k) s += part[std::size_t(k * c + i)];
                out.data()[i] = convert<T>(s);
            }
            return out;
        };
        if (need_w) grads.grad_w = reduce_parts(part_w);
        if (need_b) grads.grad_b = reduce_parts(part_b);
    } else {
#if WEFT_WITH_CUDA
        const auto xc = x.detach().contiguous(), gc = grad_out.detach().contiguous();
        const auto wc = weight.defined() ? weight.detach().contiguous() : Tensor<T, 1, D>();
        const auto mc = mean.contiguous(), rc = rstd.contiguous();
        need_w = need_w && weight.defined();
        if (need_x) grads.grad_x = Tensor<T, R, D>::empty(x.shape());
        if (need_w) grads.grad_w = Tensor<T, 1, D>::empty({c});
        if (need_b) grads.grad_b = Tensor<T, 1, D>::empty({c});
        cuda::layer_norm_backward(gc.data(), xc.data(), wc.defined() ? wc.data() : nullptr, mc.data(), rc.data(),
                                  need_x ? grads.grad_x.data() : nullptr, need_w ? grads.grad_w.data() : nullptr,
                                  need_b ? grads.grad_b.data() : nullptr, rows, c);
#endif
    }
    return grads;
}

// ---- recorded op ---------------------------------------------------------------------------

// [..., C] -> [..., C]; weight and bias [C] or undefined (`{}`).
template <Element T, int R, Device D>
Tensor<T, R, D> layer_norm(const Tensor<T, R, D>& x, const Tensor<T, 1, D>& weight = {},
                           const Tensor<T, 1, D>& bias = {}, double eps = 1e-5) {
    auto f = layer_norm_forward(x.detach(), weight.detach(), bias.detach(), eps);
    if (needs_grad(x, weight, bias))
        record(
            f.y, "layer_norm",
            [x, weight, bias, mean = f.mean, rstd = f.rstd](const Tensor<T, R, D>& g) {
                auto grads = layer_norm_backward(g, x.detach(), weight.detach(), mean, rstd, x.requires_grad(),
                                                 weight.requires_grad(), bias.requires_grad());
                accumulate_grad(x, std::move(grads.grad_x));
                accumulate_grad(weight, std::move(grads.grad_w));
                accumulate_grad(bias, std::move(grads.grad_b));
            },
            x, weight, bias);
    return f.y;
}

}  // namespace weft
