// weft/expr/nodes.hpp: the interior nodes of an expression tree.
//
//   Unary<F, A>        f(a)
//   Binary<F, A, B>    f(a, b), broadcast
//   Where<C, A, B>     c ? a : b, broadcast
//   Cast<To, A>        a converted to To (rounded like a store)
//
// Each node checks its operands at compile time (same device, same element type) and their
// shapes at construction (broadcastable), so errors point at the line that built the expression.
#pragma once

#include <algorithm>
#include <type_traits>

#include "broadcast.hpp"
#include "expression.hpp"

namespace weft {

#define WEFT_SAME_DEVICE_MSG                                                                    \
    "weft: the operands live on different devices (one Cpu, one Cuda). Move one first, e.g. " \
    "x.to<Cuda>() or y.to<Cpu>()."
#define WEFT_SAME_TYPE_MSG                                                                        \
    "weft: the operands have different element types (for example float and double). weft does " \
    "not convert silently; convert one with weft::cast<T>(x)."

template <class F, Expression A>
struct Unary {
    using In = value_of<A>;
    using compute_type = std::invoke_result_t<F, compute_t<In>>;
    using value_type = storage_for<compute_type, In>;
    using device_type = device_of<A>;
    static constexpr int rank = rank_of<A>;
    using weft_expression_tag = void;

    F f;
    A a;

    Unary(F f_, A a_) : f(f_), a(std::move(a_)) {}
    auto shape() const { return shape_of(a); }
};

template <class F, Expression A, Expression B>
struct Binary {
    static_assert(devices_compatible<device_of<A>, device_of<B>>, WEFT_SAME_DEVICE_MSG);
    static_assert(std::same_as<value_of<A>, value_of<B>>, WEFT_SAME_TYPE_MSG);
    using In = value_of<A>;
    using compute_type = std::invoke_result_t<F, compute_t<In>, compute_t<In>>;
    using value_type = storage_for<compute_type, In>;
    using device_type = common_device_t<device_of<A>, device_of<B>>;
    static constexpr int rank = rank_of<A> > rank_of<B> ? rank_of<A> : rank_of<B>;
    using weft_expression_tag = void;

    F f;
    A a;
    B b;
    Shape<rank> shape_;

    Binary(F f_, A a_, B b_)
        : f(f_), a(std::move(a_)), b(std::move(b_)), shape_(broadcast_shapes(shape_of(a), shape_of(b), F::name)) {}
    const Shape<rank>& shape() const { return shape_; }
};

template <Expression C, Expression A, Expression B>
struct Where {
    static_assert(std::same_as<value_of<C>, bool>,
                  "weft: where(cond, a, b) needs a bool condition; compare first, e.g. where(x > 0, x, 0)");
    static_assert(devices_compatible<device_of<A>, device_of<B>> &&
                      devices_compatible<device_of<C>, common_device_t<device_of<A>, device_of<B>>>,
                  WEFT_SAME_DEVICE_MSG);
    static_assert(std::same_as<value_of<A>, value_of<B>>, WEFT_SAME_TYPE_MSG);
    using value_type = value_of<A>;
    using compute_type = compute_t<value_type>;
    using device_type = common_device_t<device_of<C>, common_device_t<device_of<A>, device_of<B>>>;
    static constexpr int rank = std::max({rank_of<C>, rank_of<A>, rank_of<B>});
    using weft_expression_tag = void;

    C c;
    A a;
    B b;
    Shape<rank> shape_;

    Where(C c_, A a_, B b_)
        : c(std::move(c_)),
          a(std::move(a_)),
          b(std::move(b_)),
          shape_(broadcast_shapes(shape_of(c), broadcast_shapes(shape_of(a), shape_of(b), "where"), "where")) {}
    const Shape<rank>& shape() const { return shape_; }
};

template <Element To, Expression A>
struct Cast {
    using value_type = To;
    using compute_type = compute_t<To>;
    using device_type = device_of<A>;
    static constexpr int rank = rank_of<A>;
    using weft_expression_tag = void;

    A a;

    explicit Cast(A a_) : a(std::move(a_)) {}
    auto shape() const { return shape_of(a); }
};

// ---- evaluators --------------------------------------------------------------------------------

namespace evaluators {

template <class F, class E>
struct UnaryRow {
    F f;
    E a;
    WEFT_HD WEFT_FORCE_INLINE auto at(index_t j) const { return f(a.at(j)); }
    WEFT_HD WEFT_FORCE_INLINE auto at_unit(index_t j) const { return f(a.at_unit(j)); }
};

template <class F, class E>
struct UnaryEval {
    F f;
    E a;
    using type = std::invoke_result_t<F, typename E::type>;
    WEFT_HD WEFT_FORCE_INLINE type at(const index_t* idx) const { return f(a.at(idx)); }
    WEFT_HD WEFT_FORCE_INLINE type linear(index_t i) const { return f(a.linear(i)); }
    WEFT_HD auto row(const index_t* idx) const { return UnaryRow<F, decltype(a.row(idx))>{f, a.row(idx)}; }
    bool linear_ok() const { return a.linear_ok(); }
    bool inner_unit() const { return a.inner_unit(); }
};

template <class F, class EA, class EB>
struct BinaryRow {
    F f;
    EA a;
    EB b;
    WEFT_HD WEFT_FORCE_INLINE auto at(index_t j) const { return f(a.at(j), b.at(j)); }
    WEFT_HD WEFT_FORCE_INLINE auto at_unit(index_t j) const { return f(a.at_unit(j), b.at_unit(j)); }
};

template <class F, class EA, class EB>
struct BinaryEval {
    F f;
    EA a;
    EB b;
    using type = std::invoke_result_t<F, typename EA::type, typename EB::type>;
    WEFT_HD WEFT_FORCE_INLINE type at(const index_t* idx) const { return f(a.at(idx), b.at(idx)); }
    WEFT_HD WEFT_FORCE_INLINE type linear(index_t i) const { return f(a.linear(i), b.linear(i)); }
    WEFT_HD auto row(const index_t* idx) const {
        return BinaryRow<F, decltype(a.row(idx)), decltype(b.row(idx))>{f, a.row(idx), b.row(idx)};
    }
    bool linear_ok() const { return a.linear_ok() && b.linear_ok(); }
    bool inner_unit() const { return a.inner_unit() && b.inner_unit(); }
};

template <class EC, class EA, class EB>
struct WhereRow {
    EC c;
    EA a;
    EB b;
    WEFT_HD WEFT_FORCE_INLINE auto at(index_t j) const {
        const auto x = a.at(j), y = b.at(j);
        return c.at(j) ? x : y;
    }
    WEFT_HD WEFT_FORCE_INLINE auto at_unit(index_t j) const {
        const auto x = a.at_unit(j), y = b.at_unit(j);
        return c.at_unit(j) ? x : y;
    }
};

template <class EC, class EA, class EB>
struct WhereEval {
    EC c;
    EA a;
    EB b;
    using type = typename EA::type;
    // Both branches are computed and one selected: branch-free, so the loop vectorizes.
    WEFT_HD WEFT_FORCE_INLINE type at(const index_t* idx) const {
        const type x = a.at(idx), y = b.at(idx);
        return c.at(idx) ? x : y;
    }
    WEFT_HD WEFT_FORCE_INLINE type linear(index_t i) const {
        const type x = a.linear(i), y = b.linear(i);
        return c.linear(i) ? x : y;
    }
    WEFT_HD auto row(const index_t* idx) const {
        return WhereRow<decltype(c.row(idx)), decltype(a.row(idx)), decltype(b.row(idx))>{c.row(idx), a.row(idx),
                                                                                          b.row(idx)};
    }
    bool linear_ok() const { return c.linear_ok() && a.linear_ok() && b.linear_ok(); }
    bool inner_unit() const { return c.inner_unit() && a.inner_unit() && b.inner_unit(); }
};

template <class To, class E>
struct CastRow {
    E a;
    WEFT_HD WEFT_FORCE_INLINE compute_t<To> at(index_t j) const {
        return convert<compute_t<To>>(convert<To>(a.at(j)));
    }
    WEFT_HD WEFT_FORCE_INLINE compute_t<To> at_unit(index_t j) const {
        return convert<compute_t<To>>(convert<To>(a.at_unit(j)));
    }
};

template <class To, class E>
struct CastEval {
    E a;
    using type = compute_t<To>;
    // Through To itself, so a cast to bf16 rounds even when the consumer computes in float.
    WEFT_HD WEFT_FORCE_INLINE type at(const index_t* idx) const { return convert<type>(convert<To>(a.at(idx))); }
    WEFT_HD WEFT_FORCE_INLINE type linear(index_t i) const { return convert<type>(convert<To>(a.linear(i))); }
    WEFT_HD auto row(const index_t* idx) const { return CastRow<To, decltype(a.row(idx))>{a.row(idx)}; }
    bool linear_ok() const { return a.linear_ok(); }
    bool inner_unit() const { return a.inner_unit(); }
};

}  // namespace evaluators

template <int R, class F, class A>
auto make_evaluator(const Unary<F, A>& e, const Shape<R>& out) {
    using EA = decltype(make_evaluator(e.a, out));
    return evaluators::UnaryEval<F, EA>{e.f, make_evaluator(e.a, out)};
}

template <int R, class F, class A, class B>
auto make_evaluator(const Binary<F, A, B>& e, const Shape<R>& out) {
    using EA = decltype(make_evaluator(e.a, out));
    using EB = decltype(make_evaluator(e.b, out));
    return evaluators::BinaryEval<F, EA, EB>{e.f, make_evaluator(e.a, out), make_evaluator(e.b, out)};
}

template <int R, class C, class A, class B>
auto make_evaluator(const Where<C, A, B>& e, const Shape<R>& out) {
    using EC = decltype(make_evaluator(e.c, out));
    using EA = decltype(make_evaluator(e.a, out));
    using EB = decltype(make_evaluator(e.b, out));
    return evaluators::WhereEval<EC, EA, EB>{make_evaluator(e.c, out), make_evaluator(e.a, out), make_evaluator(e.b, out)};
}

template <int R, class To, class A>
auto make_evaluator(const Cast<To, A>& e, const Shape<R>& out) {
    using EA = decltype(make_evaluator(e.a, out));
    return evaluators::CastEval<To, EA>{make_evaluator(e.a, out)};
}

template <class F, class A, class V>
void visit_tensors(const Unary<F, A>& e, V&& v) {
    visit_tensors(e.a, v);
}
template <class F, class A, class B, class V>
void visit_tensors(const Binary<F, A, B>& e, V&& v) {
    visit_tensors(e.a, v);
    visit_tensors(e.b, v);
}
template <class C, class A, class B, class V>
void visit_tensors(const Where<C, A, B>& e, V&& v) {
    visit_tensors(e.c, v);
    visit_tensors(e.a, v);
    visit_tensors(e.b, v);
}
template <class To, class A, class V>
void visit_tensors(const Cast<To, A>& e, V&& v) {
    visit_tensors(e.a, v);
}

}  // namespace weft
