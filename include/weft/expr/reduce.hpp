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
#include "derivative.hpp"
#include "executor.hpp"
#include "expression.hpp"
#include "operators.hpp"
#include "reduce_kernel.hpp"

namespace weft {

struct KeepDim {};
inline constexpr KeepDim keepdim{};


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

// The adjoint of a reduction's operand, from the gradient g of its keepdim-shaped result.
template <class V, class G>
auto as_type(const G& g) {
    if constexpr (std::same_as<value_of<G>, V>) return g;
    else return cast<V>(g);
}
template <class V, class Acc, class G, class E, class Out, int R>
auto reduction_adjoint(const reduce_op::Sum<Acc>&, const G& g, const E&, const Out&, const Shape<R>& in) {
    return broadcast_to(as_type<V>(g), in);
}
template <class V, class Acc, class G, class E, class Out, int R>
auto reduction_adjoint(const reduce_op::Mean<Acc>&, const G& g, const E&, const Out& out, const Shape<R>& in) {
    return broadcast_to(as_type<V>(g) * (double(out.numel()) / double(in.numel())), in);
}
template <class V, class Acc, class G, class E, class Out, int R>
auto reduction_adjoint(const reduce_op::SumOver<Acc>& op, const G& g, const E&, const Out&, const Shape<R>& in) {
    return broadcast_to(as_type<V>(g) / double(op.divisor), in);
}
// The maximum's gradient goes to every element equal to it (all of them at ties).
template <class V, class Acc, class G, class E, class Out, int R>
auto reduction_adjoint(const reduce_op::Max<Acc>&, const G& g, const E& e, const Out& out, const Shape<R>&) {
    return where(e == out, as_type<V>(g), 0);
}
template <class V, class Acc, class G, class E, class Out, int R>
auto reduction_adjoint(const reduce_op::Min<Acc>&, const G& g, const E& e, const Out& out, const Shape<R>&) {
    return where(e == out, as_type<V>(g), 0);
}

template <class Op> inline constexpr const char* reduction_name = "reduction";
template <class A> inline constexpr const char* reduction_name<reduce_op::Sum<A>> = "sum";
template <class A> inline constexpr const char* reduction_name<reduce_op::Mean<A>> = "mean";
template <class A> inline constexpr const char* reduction_name<reduce_op::SumOver<A>> = "var";
template <class A> inline constexpr const char* reduction_name<reduce_op::Max<A>> = "max";
template <class A> inline constexpr const char* reduction_name<reduce_op::Min<A>> = "min";

// A reduction, recorded for autograd when its operand requires grad.
template <class Out, class Op, Expression E, class Mask>
auto reduce_keepdim(const E& e, const Mask& mask, Op op) {
    auto out = reduce_raw<Out>(e, mask, op);
    if constexpr (FloatingElement<Out> && FloatingElement<value_of<E>>) {
        const auto in = shape_of(e);
        record_expression(out, reduction_name<Op>, e, [op, e, in, kept = out.detach()](const auto& g) {
            return reduction_adjoint<value_of<E>>(op, g, e, kept, in);
        });
    }
    return out;
}

template <int N, class T, int R, class Dev, class Mask>
Tensor<T, N, Dev> drop_axes(const Tensor<T, R, Dev>& t, const Mask& mask) {
    Shape<N> s;
    for (int d = 0, k = 0; d < R; ++d)
        if (!mask[d]) s[k++] = t.shape()[d];
    return t.reshape(s);
}

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
