// weft/ops/softmax.hpp: softmax and log-softmax over any axis, forward and backward.
//
//   auto p = softmax(logits, -1);                // [..., K]: each row sums to 1
//   auto lp = log_softmax(logits, 1);            // over axis 1 of any rank
//   auto gx = softmax_backward(g, p, -1);        // gradient of sum(g * softmax(x, -1)) from y
//   auto gl = log_softmax_backward(g, lp, 1);
//
// As torch.softmax / torch.log_softmax. Numerically stable: the maximum along the axis is
// subtracted before exponentiating, so large logits do not overflow, and log_softmax is
// x - max - log(sum(exp(x - max))) rather than the log of a rounded probability.
//
// The work is a dense copy of x seen as [outer, n, inner] around the axis (ops/cpu/lanes.hpp).
// For the last axis (inner == 1) each row is contiguous: rows are spread over the thread pool
// and each is three passes over n elements in cache (max, sum of exponentials, scale). For
// another axis, tiles of up to 64 neighbouring lanes are processed together, so the inner loops
// still read contiguous memory instead of striding by `inner`. Accumulation is in
// compute_t<T> (float for float and the 16-bit types, double for double). On CUDA
// (ops/cuda/softmax.cuh) the same passes run with a warp or a block per row for the last axis,
// and with blocks of 32 neighbouring lanes for another axis, so that reads still coalesce.
//
// The backward functions need only the output y (saved by the recorded op):
//   softmax:      g_x = y * (g - sum(g * y))
//   log_softmax:  g_x = g - exp(y) * sum(g)
#pragma once

#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "cpu/lanes.hpp"
#if WEFT_WITH_CUDA
#include "cuda/softmax.cuh"
#endif

namespace weft {

namespace detail {

// exp(x) for float without a library call, so that loops over it vectorise (<cmath>'s exp does
// not under ISO C++ flags): Cephes' expf, a rounding of x / ln 2 to n, a degree-6 polynomial
// on the remainder and 2^n built from its bits; within about 1 ulp of std::exp on
// [-87.3, 88.3]. Below that, -inf included, the result is exactly 0 (a masked logit contributes
// nothing); NaN stays NaN. Larger arguments are outside its domain: softmax only passes x - max
// <= 0. The clamp is done by masking the result's bits, because GCC will not turn a branch
// around floating-point arithmetic into a vector select.
WEFT_FORCE_INLINE float softmax_exp(float x) {
    constexpr float lo = -87.33654f;  // exp(lo) = 2^-126, the smallest normal float
    constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const float t = x * 1.44269504088896341f + round_magic;
    const float p = math::detail::exp_remainder(x, t - round_magic);  // t - round_magic = round(x / ln 2)
    const std::int32_t e = std::bit_cast<std::int32_t>(t) - std::bit_cast<std::int32_t>(round_magic);
    const float y = p * std::bit_cast<float>((e + 127) << 23);
    const std::int32_t keep = std::int32_t(x < lo) - 1;  // all ones, or 0 where exp underflows
    return std::bit_cast<float>(std::bit_cast<std::int32_t>(y) & keep);
}
WEFT_FORCE_INLINE double softmax_exp(double x) { return std::exp(x); }

// y = softmax (or log_softmax) of x along the split's axis; x and y dense, same shape.
template <bool Log, class T>
void softmax_cpu(const T* X, T* Y, const AxisSplit& s) {
    using Acc = compute_t<T>;
    const index_t n = s.n, inner = s.inner;
    if (n == 0) return;
    if (inner == 1) {
        for_each_row(s.outer, n, [&](index_t r) {
            const T* x = X + r * n;
            T* y = Y + r * n;
            const Acc m = simd_max<Acc>(n, x);
            if constexpr (std::same_as<T, Acc>) {
                // The exponentials go to y first (y has Acc's precision): one vectorised loop
                // each for them, their sum, and the final scale or shift.
                for (index_t i = 0; i < n; ++i) y[i] = softmax_exp(x[i] - m);
                const Acc sum = simd_sum<Acc>(n, [](auto e) { return e; }, y);
                if constexpr (Log) {
                    const Acc lse = m + std::log(sum);
                    for (index_t i = 0; i < n; ++i) y[i] = x[i] - lse;
                } else {
                    const Acc inv = Acc(1) / sum;
                    for (index_t i = 0; i < n; ++i) y[i] *= inv;
                }
            } else {
                // A 16-bit y would round the exponentials twice: recompute them instead.
                Acc sum = 0;
                for (index_t i = 0; i < n; ++i) sum += softmax_exp(convert<Acc>(x[i]) - m);
                if constexpr (Log) {
                    const Acc lse = m + std::log(sum);
                    for (index_t i = 0; i < n; ++i) y[i] = convert<T>(convert<Acc>(x[i]) - lse);
                } else {
                    const Acc inv = Acc(1) / sum;
                    for (index_t i = 0; i < n; ++i) y[i] = convert<T>(softmax_exp(convert<Acc>(x[i]) - m) * inv);
                }
            }
        });
        return;
    }
    for_each_lane_tile(s, [&](index_t offset, index_t w) {
        Acc m[kLaneTile], sum[kLaneTile];
        for (index_t j = 0; j < w; ++j) {
            m[j] = -std::numeric_limits<Acc>::infinity();
            sum[j] = Acc(0);
        }
        // A NaN is not kept as the maximum; it makes its lane's sum NaN below, and so every
        // output of that lane, as in PyTorch.
        for (index_t k = 0; k < n; ++k) {
            const T* x = X + offset + k * inner;
            for (index_t j = 0; j < w; ++j) {
                const Acc v = convert<Acc>(x[j]);
                m[j] = v > m[j] ? v : m[j];
            }
        }
        for (index_t k = 0; k < n; ++k) {
            const T* x = X + offset + k * inner;
            for (index_t j = 0; j < w; ++j) sum[j] += softmax_exp(convert<Acc>(x[j]) - m[j]);
        }
        for (index_t j = 0; j < w; ++j) {
            if constexpr (Log) sum[j] = m[j] + std::log(sum[j]);  // log-sum-exp
            else sum[j] = Acc(1) / sum[j];
        }
        for (index_t k = 0; k < n; ++k) {
            const T* x = X + offset + k * inner;
            T* y = Y + offset + k * inner;
            for (index_t j = 0; j < w; ++j) {
                if constexpr (Log) y[j] = convert<T>(convert<Acc>(x[j]) - sum[j]);
                else y[j] = convert<T>(softmax_exp(convert<Acc>(x[j]) - m[j]) * sum[j]);
            }
        }
    });
}

// g_x from g and y (both dense): softmax (Log = false) or log_softmax (Log = true, y <= 0).
template <bool Log, class T>
void softmax_backward_cpu(const T* G, const T* Y, T* GX, const AxisSplit& s) {
    using Acc = compute_t<T>;
    const index_t n = s.n, inner = s.inner;
    if (n == 0) return;
    if (inner == 1) {
        for_each_row(s.outer, n, [&](index_t r) {
            const T* g = G + r * n;
            const T* y = Y + r * n;
            T* gx = GX + r * n;
            if constexpr (Log) {
                const Acc sg = simd_sum<Acc>(n, [](auto gv) { return gv; }, g);
                for (index_t i = 0; i < n; ++i)
                    gx[i] = convert<T>(convert<Acc>(g[i]) - softmax_exp(convert<Acc>(y[i])) * sg);
            } else {
                const Acc dot = simd_sum<Acc>(n, [](auto gv, auto yv) { return gv * yv; }, g, y);
                for (index_t i = 0; i < n; ++i)
                    gx[i] = convert<T>(convert<Acc>(y[i]) * (convert<Acc>(g[i]) - dot));
            }
        });
        return;
    }
    for_each_lane_tile(s, [&](index_t offset, index_t w) {
        Acc acc[kLaneTile];
        for (index_t j = 0; j < w; ++j) acc[j] = Acc(0);
        for (index_t k = 0; k < n; ++k) {
            const T* g = G + offset + k * inner;
            const T* y = Y + offset + k * inner;
            for (index_t j = 0; j < w; ++j) {
                if constexpr (Log) acc[j] += convert<Acc>(g[j]);
                else acc[j] += convert<Acc>(g[j]) * convert<Acc>(y[j]);
            }
        }
        for (index_t k = 0; k < n; ++k) {
            const T* g = G + offset + k * inner;
            const T* y = Y + offset + k * inner;
            T* gx = GX + offset + k * inner;
            for (index_t j = 0; j < w; ++j) {
                if constexpr (Log) gx[j] = convert<T>(convert<Acc>(g[j]) - softmax_exp(convert<Acc>(y[j])) * acc[j]);
                else gx[j] = convert<T>(convert<Acc>(y[j]) * (convert<Acc>(g[j]) - acc[j]));
            }
        }
    });
}

template <bool Log, Element T, int R, Device D>
Tensor<T, R, D> softmax_forward(const Tensor<T, R, D>& x, int axis) {
    static_assert(FloatingElement<T>, "weft: softmax and log_softmax need a floating-point tensor");
    static_assert(R >= 1, "weft: softmax needs a tensor of rank 1 or more (an axis to normalize over)");
    WEFT_CHECK(axis >= -R && axis < R, Log ? "log_softmax" : "softmax", ": axis ", axis,
               " is out of range for input of shape ", x.shape());
    auto y = Tensor<T, R, D>::empty(x.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const auto xc = x.detach().contiguous();
        softmax_cpu<Log>(xc.data(), y.data(), split_at_axis(x.shape(), axis));
    } else {
#if WEFT_WITH_CUDA
        const auto xc = x.detach().contiguous();
        const auto s = split_at_axis(x.shape(), axis);
        cuda::softmax_forward<Log>(xc.data(), y.data(), s.outer, s.n, s.inner);
#endif
    }
    return y;
}

template <bool Log, Element T, int R, Device D>
Tensor<T, R, D> softmax_backward_impl(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& y, int axis) {
    const char* op = Log ? "log_softmax_backward" : "softmax_backward";
    WEFT_CHECK(axis >= -R && axis < R, op, ": axis ", axis, " is out of range for shape ", y.shape());
    WEFT_CHECK(grad_out.shape() == y.shape(), op, ": grad_out of shape ", grad_out.shape(),
               " does not match the output of shape ", y.shape());
    auto gx = Tensor<T, R, D>::empty(y.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const auto gc = grad_out.detach().contiguous(), yc = y.detach().contiguous();
        softmax_backward_cpu<Log>(gc.data(), yc.data(), gx.data(), split_at_axis(y.shape(), axis));
    } else {
#if WEFT_WITH_CUDA
        const auto gc = grad_out.detach().contiguous(), yc = y.detach().contiguous();
        const auto s = split_at_axis(y.shape(), axis);
        cuda::softmax_backward<Log>(gc.data(), yc.data(), gx.data(), s.outer, s.n, s.inner);
#endif
    }
    return gx;
}

}  // namespace detail

// ---- backward ------------------------------------------------------------------------------

// The gradient of sum(grad_out * softmax(x, axis)), from the output y = softmax(x, axis).
template <Element T, int R, Device D>
Tensor<T, R, D> softmax_backward(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& y, int axis) {
    return detail::softmax_backward_impl<false>(grad_out, y, axis);
}

// The gradient of sum(grad_out * log_softmax(x, axis)), from the output y = log_softmax(x, axis).
template <Element T, int R, Device D>
Tensor<T, R, D> log_softmax_backward(const Tensor<T, R, D>& grad_out, const Tensor<T, R, D>& y, int axis) {
    return detail::softmax_backward_impl<true>(grad_out, y, axis);
}

// ---- recorded ops --------------------------------------------------------------------------

// exp(x) / sum(exp(x)) along `axis` (negative counts from the end).
template <Element T, int R, Device D>
Tensor<T, R, D> softmax(const Tensor<T, R, D>& x, int axis) {
    auto y = detail::softmax_forward<false>(x, axis);
    if (needs_grad(x))
        record(
            y, "softmax",
            [x, saved = y.detach(), axis](const Tensor<T, R, D>& g) {
                accumulate_grad(x, softmax_backward(g, saved, axis));
            },
            x);
    return y;
}

// x - log(sum(exp(x))) along `axis`.
template <Element T, int R, Device D>
Tensor<T, R, D> log_softmax(const Tensor<T, R, D>& x, int axis) {
    auto y = detail::softmax_forward<true>(x, axis);
    if (needs_grad(x))
        record(
            y, "log_softmax",
            [x, saved = y.detach(), axis](const Tensor<T, R, D>& g) {
                accumulate_grad(x, log_softmax_backward(g, saved, axis));
            },
            x);
    return y;
}

}  // namespace weft
