// weft/expr/reduce.hpp: reductions over any set of axes.
//
//   sum(x)                      // rank 0: all elements
//   sum(x, {0, 2})              // [A, B, C] -> [B]
//   mean(x, {-1}, keepdim)      // [A, B, C] -> [A, B, 1], ready to broadcast against x
//   max(x, 1), argmax(x, 1), var(x, {0}), min(...)
//
// The operand may be any expression: `sum(a * b, {1})` multiplies inside the reduction loop, in
// one pass, without a temporary. A reduction itself runs eagerly and returns a tensor; an
// expression that uses it (`x - max(x, {-1}, keepdim)`) is a second pass. The number of axes is
// part of the call (a braced list), so the result's rank is known at compile time.
//
// Sums and means of floats accumulate in double on the CPU (and in float on CUDA); integer and
// bool sums accumulate and return int64. var uses Bessel's correction by default, as torch.var.
#pragma once

#include <concepts>
#include <limits>
#include <type_traits>

#include "assign.hpp"
#include "executor.hpp"
#include "expression.hpp"
#include "operators.hpp"

namespace weft {

struct KeepDim {};
inline constexpr KeepDim keepdim{};

namespace reduce_op {

// Each op: acc init(); acc combine(acc, value, position); acc merge(acc, later acc);
// Out finalize(acc, count). `position` is the index along the reduced axes (used by argmax).
template <class Acc>
struct Sum {
    using acc_type = Acc;
    WEFT_HD Acc init() const { return Acc(0); }
    template <class V> WEFT_HD Acc combine(Acc a, V x, index_t) const { return a + Acc(x); }
    WEFT_HD Acc merge(Acc a, Acc b) const { return a + b; }
    template <class Out> WEFT_HD Out finalize(Acc a, index_t) const { return convert<Out>(a); }
};

template <class Acc>
struct Mean : Sum<Acc> {
    template <class Out> WEFT_HD Out finalize(Acc a, index_t n) const { return convert<Out>(a / Acc(n)); }
};

// Sum divided by a fixed divisor (var's second pass).
template <class Acc>
struct SumOver : Sum<Acc> {
    Acc divisor;
    template <class Out> WEFT_HD Out finalize(Acc a, index_t) const { return convert<Out>(a / divisor); }
};

template <class Acc>
WEFT_HD Acc lowest() {
    if constexpr (std::numeric_limits<Acc>::has_infinity) return -std::numeric_limits<Acc>::infinity();
    else return std::numeric_limits<Acc>::lowest();
}
template <class Acc>
WEFT_HD Acc highest() {
    if constexpr (std::numeric_limits<Acc>::has_infinity) return std::numeric_limits<Acc>::infinity();
    else return std::numeric_limits<Acc>::max();
}

// NaN wins, as in torch.max.
template <class Acc>
struct Max {
    using acc_type = Acc;
    WEFT_HD Acc init() const { return lowest<Acc>(); }
    template <class V> WEFT_HD Acc combine(Acc a, V x, index_t) const {
        return (Acc(x) > a || math::isnan(Acc(x))) ? Acc(x) : a;
    }
    WEFT_HD Acc merge(Acc a, Acc b) const { return combine(a, b, 0); }
    template <class Out> WEFT_HD Out finalize(Acc a, index_t) const { return convert<Out>(a); }
};

template <class Acc>
struct Min {
    using acc_type = Acc;
    WEFT_HD Acc init() const { return highest<Acc>(); }
    template <class V> WEFT_HD Acc combine(Acc a, V x, index_t) const {
        return (Acc(x) < a || math::isnan(Acc(x))) ? Acc(x) : a;
    }
    WEFT_HD Acc merge(Acc a, Acc b) const { return combine(a, b, 0); }
    template <class Out> WEFT_HD Out finalize(Acc a, index_t) const { return convert<Out>(a); }
};

template <class V>
struct ArgPair {
    V value;
    index_t index;
};

// The first position of the largest value (of the first NaN, if any), as torch.argmax.
template <class V, bool Largest>
struct ArgExtreme {
    using acc_type = ArgPair<V>;
    WEFT_HD acc_type init() const { return {Largest ? lowest<V>() : highest<V>(), -1}; }
    WEFT_HD static bool better(V x, V best) {
        if (math::isnan(best)) return false;
        if (math::isnan(x)) return true;
        return Largest ? x > best : x < best;
    }
    template <class X> WEFT_HD acc_type combine(acc_type a, X x, index_t pos) const {
        return (a.index < 0 || better(V(x), a.value)) ? acc_type{V(x), pos} : a;
    }
    WEFT_HD acc_type merge(acc_type a, acc_type b) const {
        if (b.index < 0) return a;
        if (a.index < 0) return b;
        return better(b.value, a.value) ? b : a;
    }
    template <class Out> WEFT_HD Out finalize(acc_type a, index_t) const { return Out(a.index); }
};

}  // namespace reduce_op

namespace detail {

template <int R, int N>
std::array<bool, (R > 0 ? R : 1)> axis_mask(const int (&axes)[N], const char* what) {
    std::array<bool, (R > 0 ? R : 1)> mask{};
    for (int k = 0; k < N; ++k) {
        const int a = Shape<R>::normalize_axis(axes[k]);
        WEFT_CHECK(!mask[a], what, ": axis ", axes[k], " is listed twice");
        mask[a] = true;
    }
    return mask;
}

// Runs `op` over the axes in `mask`, returning the keepdim-shaped result.
template <class Out, class Op, Expression E, class Mask>
auto reduce_keepdim(const E& e, const Mask& mask, Op op) {
    constexpr int R = rank_of<E>;
    using D = std::conditional_t<std::same_as<device_of<E>, AnyDevice>, Cpu, device_of<E>>;
    const Shape<R> in = shape_of(e);
    Shape<R> out_shape = in;
    for (int d = 0; d < R; ++d)
        if (mask[d]) out_shape[d] = 1;
    auto out = Tensor<Out, R, D>::empty(out_shape);
    if (out.numel() > 0) Executor<D>::reduce(out, make_evaluator(e, in), in, mask, op);
    return out;
}

template <int N, class T, int R, class Dev, class Mask>
Tensor<T, N, Dev> drop_axes(const Tensor<T, R, Dev>& t, const Mask& mask) {
    Shape<N> s;
    for (int d = 0, k = 0; d < R; ++d)
        if (!mask[d]) s[k++] = t.shape()[d];
    return t.reshape(s);
}

template <class T, bool OnCpu>
using sum_acc_t = std::conditional_t<
    std::is_integral_v<T>, std::int64_t,
    std::conditional_t<OnCpu && !std::same_as<T, double>, double, compute_t<T>>>;

template <class E>
inline constexpr bool on_cpu = !std::same_as<device_of<E>, Cuda>;

template <class E>
using sum_out_t = std::conditional_t<std::is_integral_v<value_of<E>>, std::int64_t, value_of<E>>;

template <class E>
index_t reduced_count(const E& e, const auto& mask) {
    index_t n = 1;
    for (int d = 0; d < rank_of<E>; ++d)
        if (mask[d]) n *= shape_of(e)[d];
    return n;
}

// Expands sum/mean/max/min into the three call forms: all axes, listed axes, listed axes kept.
#define WEFT_REDUCTION(name, OutT, OpT, check)                                                     \
    template <Expression E>                                                                       \
    auto name(const E& e) {                                                                       \
        constexpr int R = rank_of<E>;                                                             \
        std::array<bool, (R > 0 ? R : 1)> mask;                                                   \
        mask.fill(true);                                                                          \
        check;                                                                                    \
        return detail::drop_axes<0>(detail::reduce_keepdim<OutT>(e, mask, OpT), mask);            \
    }                                                                                             \
    template <Expression E, int N>                                                                \
    auto name(const E& e, const int (&axes)[N]) {                                                 \
        constexpr int R = rank_of<E>;                                                             \
        static_assert(N <= R, "weft: " #name " lists more axes than the expression has");       \
        const auto mask = detail::axis_mask<R>(axes, #name);                                      \
        check;                                                                                    \
        return detail::drop_axes<R - N>(detail::reduce_keepdim<OutT>(e, mask, OpT), mask);        \
    }                                                                                             \
    template <Expression E, int N>                                                                \
    auto name(const E& e, const int (&axes)[N], KeepDim) {                                        \
        constexpr int R = rank_of<E>;                                                             \
        const auto mask = detail::axis_mask<R>(axes, #name);                                      \
        check;                                                                                    \
        return detail::reduce_keepdim<OutT>(e, mask, OpT);                                        \
    }                                                                                             \
    /* One axis as a deduced integer, not `int`: with `int`, name(e, {1}) would match both this */ \
    /* and the braced-array form, which Clang and nvcc reject as ambiguous (GCC picks the array). */ \
    template <Expression E, std::integral I>                                                      \
    auto name(const E& e, I axis) {                                                               \
        const int axes[1] = {int(axis)};                                                          \
        return name(e, axes);                                                                     \
    }                                                                                             \
    template <Expression E, std::integral I>                                                      \
    auto name(const E& e, I axis, KeepDim k) {                                                    \
        const int axes[1] = {int(axis)};                                                          \
        return name(e, axes, k);                                                                  \
    }

}  // namespace detail

#define WEFT_NONEMPTY(what) \
    WEFT_CHECK(detail::reduced_count(e, mask) > 0, what ": cannot reduce an empty range of shape ", shape_of(e))

WEFT_REDUCTION(sum, detail::sum_out_t<E>,
               (reduce_op::Sum<detail::sum_acc_t<value_of<E>, detail::on_cpu<E>>>{}), (void)0)
WEFT_REDUCTION(mean, value_of<E>,
               (reduce_op::Mean<detail::sum_acc_t<value_of<E>, detail::on_cpu<E>>>{}),
               static_assert(FloatingElement<value_of<E>>,
                             "weft: mean of an integer expression; cast it to a floating type first"))
WEFT_REDUCTION(max, value_of<E>, (reduce_op::Max<compute_t<value_of<E>>>{}), WEFT_NONEMPTY("max"))
WEFT_REDUCTION(min, value_of<E>, (reduce_op::Min<compute_t<value_of<E>>>{}), WEFT_NONEMPTY("min"))
#undef WEFT_REDUCTION

// Index of the largest (argmax) or smallest (argmin) element along one axis, as int64.
template <Expression E>
auto argmax(const E& e, int axis) {
    constexpr int R = rank_of<E>;
    const int axes[1] = {axis};
    const auto mask = detail::axis_mask<R>(axes, "argmax");
    WEFT_NONEMPTY("argmax");
    return detail::drop_axes<R - 1>(
        detail::reduce_keepdim<std::int64_t>(e, mask, reduce_op::ArgExtreme<compute_t<value_of<E>>, true>{}), mask);
}
template <Expression E>
auto argmin(const E& e, int axis) {
    constexpr int R = rank_of<E>;
    const int axes[1] = {axis};
    const auto mask = detail::axis_mask<R>(axes, "argmin");
    WEFT_NONEMPTY("argmin");
    return detail::drop_axes<R - 1>(
        detail::reduce_keepdim<std::int64_t>(e, mask, reduce_op::ArgExtreme<compute_t<value_of<E>>, false>{}), mask);
}
#undef WEFT_NONEMPTY

// Variance over the listed axes, divided by (count - correction): correction 1 is torch.var's
// default (unbiased), 0 is numpy's. Two passes: the mean, then the mean squared deviation.
template <Expression E, int N>
auto var(const E& e, const int (&axes)[N], KeepDim, int correction = 1) {
    static_assert(FloatingElement<value_of<E>>, "weft: var of an integer expression; cast it to floating first");
    constexpr int R = rank_of<E>;
    const auto mask = detail::axis_mask<R>(axes, "var");
    using Acc = detail::sum_acc_t<value_of<E>, detail::on_cpu<E>>;
    // The mean stays in the compute type: a bf16/half mean rounded to 8 or 11 bits would shift
    // every deviation by the rounding error (var {100, 100, 100.5} in bf16: 0.125, not 0.083).
    using C = compute_t<value_of<E>>;
    const auto m = detail::reduce_keepdim<C>(e, mask, reduce_op::Mean<Acc>{});
    const index_t n = detail::reduced_count(e, mask);
    reduce_op::SumOver<Acc> op;
    op.divisor = Acc(n - correction);
    if constexpr (std::same_as<C, value_of<E>>) return detail::reduce_keepdim<value_of<E>>(square(e - m), mask, op);
    else return detail::reduce_keepdim<value_of<E>>(square(cast<C>(e) - m), mask, op);
}
template <Expression E, int N>
auto var(const E& e, const int (&axes)[N], int correction = 1) {
    constexpr int R = rank_of<E>;
    const auto mask = detail::axis_mask<R>(axes, "var");
    return detail::drop_axes<R - N>(var(e, axes, keepdim, correction), mask);
}
template <Expression E, std::integral I>  // deduced, not int: var(e, {0}) must pick the array form
auto var(const E& e, I axis, int correction = 1) {
    const int axes[1] = {int(axis)};
    return var(e, axes, correction);
}

}  // namespace weft
