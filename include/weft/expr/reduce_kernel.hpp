// weft/expr/reduce_kernel.hpp: the reduction operators and the raw reduction call.
//
// reduce.hpp builds the user-facing sum/mean/max... on top of this, recording each for autograd;
// the backward passes use reduce_raw directly (they are never recorded).
#pragma once

#include <array>
#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "executor.hpp"
#include "expression.hpp"
#include "math.hpp"

namespace weft {

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

template <class T, bool OnCpu>
using sum_acc_t = std::conditional_t<
    std::is_integral_v<T>, std::int64_t,
    std::conditional_t<OnCpu && !std::same_as<T, double>, double, compute_t<T>>>;

template <class E>
inline constexpr bool on_cpu = !std::same_as<device_of<E>, Cuda>;

// Runs `op` over the axes in `mask`, returning the keepdim-shaped result (not recorded for autograd).
template <class Out, class Op, Expression E, class Mask>
auto reduce_raw(const E& e, const Mask& mask, Op op) {
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

}  // namespace detail

}  // namespace weft
