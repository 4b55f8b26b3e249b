// weft/ops/normalize.hpp: division by the L2 norm along an axis, forward and backward.
//
//   auto u = normalize(features);             // [..., D]: each row has norm 1 (or is tiny)
//   auto v = normalize(x, 1);                 // along axis 1 of any rank
//   auto gx = normalize_backward(g, x, -1);   // gradient of sum(g * normalize(x, -1))
//
// As torch.nn.functional.normalize(x, p=2, dim=axis, eps): x / max(||x||, eps). CLIP's image
// and text embeddings go through it before their cosine similarity.
//
// With n = ||x|| along the axis: where n > eps, y = x / n and g_x = (g - y * sum(g * y)) / n;
// where n <= eps the denominator is the constant eps and g_x = g / eps (the clamp's gradient
// with respect to n is 0 there, as in PyTorch). The backward recomputes n from x (one pass
// over x) instead of saving it. Sums of squares accumulate in compute_t<T>; loops walk the
// axis as softmax does (contiguous rows for the last axis, tiles of lanes otherwise), on the CPU
// and on CUDA (ops/cuda/normalize.cuh) alike.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "cpu/lanes.hpp"
#if WEFT_WITH_CUDA
#include "cuda/normalize.cuh"
#endif

namespace weft {

namespace detail {

template <class T>
void normalize_cpu(const T* X, T* Y, const AxisSplit& s, compute_t<T> eps) {
    using Acc = compute_t<T>;
    const index_t n = s.n, inner = s.inner;
    if (n == 0) return;
    if (inner == 1) {
        for_each_row(s.outer, n, [&](index_t r) {
            const T* x = X + r * n;
            T* y = Y + r * n;
            const Acc ss = simd_sum<Acc>(n, [](auto v) { return v * v; }, x);
            const Acc inv = Acc(1) / std::max(std::sqrt(ss), eps);
            for (index_t i = 0; i < n; ++i) y[i] = convert<T>(convert<Acc>(x[i]) * inv);
        });
        return;
    }
    for_each_lane_tile(s, [&](index_t offset, index_t w) {
        Acc inv[kLaneTile];
        for (index_t j = 0; j < w; ++j) inv[j] = Acc(0);
        for (index_t k = 0; k < n; ++k) {
            const T* x = X + offset + k * inner;
            for (index_t j = 0; j < w; ++j) inv[j] += convert<Acc>(x[j]) * convert<Acc>(x[j]);
        }
        for (index_t j = 0; j < w; ++j) inv[j] = Acc(1) / std::max(std::sqrt(inv[j]), eps);
        for (index_t k = 0; k < n; ++k) {
            const T* x = X + offset + k * inner;
            T* y = Y + offset + k * inner;
            for (index_t j = 0; j < w; ++j) y[j] = convert<T>(convert<Acc>(x[j]) * inv[j]);
        }
    });
}

// g_x, with n = ||x||: (g - x * sum(g * x) / n²) / n where n > eps, g / eps elsewhere.
template <class T>
void normalize_backward_cpu(const T* G, const T* X, T* GX, const AxisSplit& s, compute_t<T> eps) {
    using Acc = compute_t<T>;
    const index_t n = s.n, inner = s.inner;
    if (n == 0) return;
    // The factors a (of g) and b (of x) of one lane, from its sum of squares and sum(g * x).
    auto factors = [eps](Acc ss, Acc gx, Acc& a, Acc& b) {
        const Acc norm = std::sqrt(ss);
        if (norm > eps) {
            a = Acc(1) / norm;
            b = -gx * a * a * a;
        } else {
            a = Acc(1) / eps;
            b = Acc(0);
        }
    };
    if (inner == 1) {
        for_each_row(s.outer, n, [&](index_t r) {
            const T* g = G + r * n;
            const T* x = X + r * n;
            T* gx = GX + r * n;
            Acc ss, dot, a, b;
            simd_sum2<Acc>(
                n, [](auto, auto xv) { return xv * xv; }, [](auto gv, auto xv) { return gv * xv; }, ss, dot, g, x);
            factors(ss, dot, a, b);
            for (index_t i = 0; i < n; ++i) gx[i] = convert<T>(a * convert<Acc>(g[i]) + b * convert<Acc>(x[i]));
        });
        return;
    }
    for_each_lane_tile(s, [&](index_t offset, index_t w) {
        Acc a[kLaneTile], b[kLaneTile];
        for (index_t j = 0; j < w; ++j) a[j] = b[j] = Acc(0);
        for (index_t k = 0; k < n; ++k) {
            const T* g = G + offset + k * inner;
            const T* x = X + offset + k * inner;
            for (index_t j = 0; j < w; ++j) {
                a[j] += convert<Acc>(x[j]) * convert<Acc>(x[j]);
                b[j] += convert<Acc>(g[j]) * convert<Acc>(x[j]);
            }
        }
        for (index_t j = 0; j < w; ++j) factors(a[j], b[j], a[j], b[j]);
        for (index_t k = 0; k < n; ++k) {
            const T* g = G + offset + k * inner;
            const T* x = X + offset + k * inner;
            T* gx = GX + offset + k * inner;
            for (index_t j = 0; j < w; ++j) gx[j] = convert<T>(a[j] * convert<Acc>(g[j]) + b[j] * convert<Acc>(x[j]));
        }
    });
}

template <Element T, int R, Device D>
void check_normalize(const char* op, const Tensor<T, R, D>& x, int axis, double eps) {
    WEFT_CHECK(axis >= -R && axis < R, op, ": axis ", axis, " is out of range for input of shape ", x.shape());
    WEFT_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
}

template <Element T, int R, Device D>
Tensor<T, R, D> normalize_forward(const Tensor<T, R, D>& x, int axis, double eps) {
    static_assert(FloatingElement<T>, "weft: normalize needs a floating-point tensor");
    static_assert(R >= 1, "weft: normalize needs a tensor of rank 1 or more (an axis to normalize along)");
    check_normalize("normalize", x, axis, eps);
    auto y = Tensor<T, R, D>::empty(x.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const auto xc = x.detach().contiguous();
        normalize_cpu(xc.data(), y.data(), split_at_axis(x.shape(), axis), compute_t<T>(eps));
    } else {
#if WEFT_WITH_CUDA
        const auto xc = x.detach().contiguous();
        const auto s = split_at_axis(x.shape(), axis);
        cuda::normalize_forward(xc.data(), y.data(), s.outer, s.n, s.inner, compute_t<T>(eps));
#endif
    }
    return y;
}

}  // namespace detail

// ---- backward ------------------------------------------------------------------------------

// The gradient of sum(grad_out * normalize(x, axis, eps)).
template <Element T, int R, Device D>
Tensor<T, R, D> normalize_backward(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& x, int axis = -1,
                                   double eps = 1e-12) {
    detail::check_normalize("normalize_backward", x, axis, eps);
    WEFT_CHECK(grad_out.shape() == x.shape(), "normalize_backward: grad_out of shape ", grad_out.shape(),
               " does not match input of shape ", x.shape());
    auto gx = Tensor<T, R, D>::empty(x.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const auto gc = grad_out.detach().contiguous(), xc = x.detach().contiguous();
        detail::normalize_backward_cpu(gc.data(), xc.data(), gx.data(), detail::split_at_axis(x.shape(), axis),
                                       compute_t<T>(eps));
    } else {
#if WEFT_WITH_CUDA
        const auto gc = grad_out.detach().contiguous(), xc = x.detach().contiguous();
        const auto s = detail::split_at_axis(x.shape(), axis);
        cuda::normalize_backward(gc.data(), xc.data(), gx.data(), s.outer, s.n, s.inner, compute_t<T>(eps));
#endif
    }
    return gx;
}

// ---- recorded op ---------------------------------------------------------------------------

// x / max(||x||_2, eps) along `axis` (negative counts from the end).
template <Element T, int R, Device D>
Tensor<T, R, D> normalize(const Tensor<T, R, D>& x, int axis = -1, double eps = 1e-12) {
    auto y = detail::normalize_forward(x, axis, eps);
    if (needs_grad(x))
        record(
            y, "normalize",
            [x, axis, eps](const Tensor<T, R, D>& g) {
                accumulate_grad(x, normalize_backward(g, x.detach(), axis, eps));
            },
            x);
    return y;
}

}  // namespace weft
