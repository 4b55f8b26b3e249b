// weft/expr/expression.hpp: what an expression is, and its leaves.
//
// An expression is any type tagged `weft_expression_tag` with `value_type` (the element type it
// produces when stored), `device_type`, a compile-time `rank` and a run-time `shape()`. Tensors
// are expressions; so are scalar constants (`Scalar<T>`, rank 0, usable on any device) and the
// nodes in nodes.hpp. Nodes hold their operands by value: a tensor operand is a cheap handle that
// shares storage, so an expression returned from a function never dangles.
//
// Evaluating an expression builds an *evaluator*: a small trivially-copyable struct of raw
// pointers and broadcast strides (the CPU loop copies it into registers; the CUDA executor passes
// it as a kernel parameter). Evaluators compute in `compute_t` of the element type (float for
// bf16/half) and round once, when the result is stored.
#pragma once

#include <concepts>
#include <type_traits>

#include "../core/dtype.hpp"
#include "../core/tensor.hpp"

namespace weft {

// The device of constants: they fit an expression on any device.
struct AnyDevice {
    static constexpr std::string_view name = "any";
};

template <class E>
concept Expression = detail::Evaluable<std::remove_cvref_t<E>>;

template <class E>
using value_of = typename std::remove_cvref_t<E>::value_type;
template <class E>
using device_of = typename std::remove_cvref_t<E>::device_type;
template <class E>
inline constexpr int rank_of = std::remove_cvref_t<E>::rank;

// A plain C++ number that may appear beside an expression: `x * 2.0f`, `where(m, x, 0)`.
template <class S>
concept ScalarValue = (std::is_arithmetic_v<S> || std::same_as<S, bf16> || std::same_as<S, half>);

template <Element T>
struct Scalar {
    using value_type = T;
    using device_type = AnyDevice;
    static constexpr int rank = 0;
    using weft_expression_tag = void;

    compute_t<T> value;

    Shape<0> shape() const { return {}; }
};

template <class A, class B>
inline constexpr bool devices_compatible =
    std::same_as<A, B> || std::same_as<A, AnyDevice> || std::same_as<B, AnyDevice>;

template <class A, class B>
using common_device_t = std::conditional_t<std::same_as<A, AnyDevice>, B, A>;

// The storage type of a result computed as `C` from operands stored as `In`: bf16 math computed
// in float is stored back as bf16; comparisons give bool.
template <class C, class In>
using storage_for = std::conditional_t<std::same_as<C, compute_t<In>>, In, C>;

// ---- evaluators of the leaves --------------------------------------------------------------------

namespace evaluators {

// One row of a leaf: elements p[j * s], or p[j] where the caller knows s == 1.
template <class T>
struct TensorRow {
    const T* p;
    index_t s;
    WEFT_HD WEFT_FORCE_INLINE compute_t<T> at(index_t j) const { return convert<compute_t<T>>(p[j * s]); }
    WEFT_HD WEFT_FORCE_INLINE compute_t<T> at_unit(index_t j) const { return convert<compute_t<T>>(p[j]); }
};

template <class T, int R>
struct TensorLeaf {
    using type = compute_t<T>;
    const T* p;
    index_t st[R > 0 ? R : 1];
    bool dense;  // element i of the output is p[i]

    WEFT_HD WEFT_FORCE_INLINE type at(const index_t* idx) const {
        index_t o = 0;
        for (int d = 0; d < R; ++d) o += idx[d] * st[d];
        return convert<type>(p[o]);
    }
    WEFT_HD WEFT_FORCE_INLINE type linear(index_t i) const { return convert<type>(p[i]); }
    WEFT_HD TensorRow<T> row(const index_t* idx) const {
        index_t o = 0;
        for (int d = 0; d < R - 1; ++d) o += idx[d] * st[d];
        return {p + o, R > 0 ? st[R - 1] : 0};
    }
    bool linear_ok() const { return dense; }
    bool inner_unit() const { return R == 0 || st[R - 1] == 1; }
};

template <class C>
struct ScalarRow {
    C value;
    WEFT_HD WEFT_FORCE_INLINE C at(index_t) const { return value; }
    WEFT_HD WEFT_FORCE_INLINE C at_unit(index_t) const { return value; }
};

template <class C>
struct ScalarLeaf {
    using type = C;
    C value;
    WEFT_HD WEFT_FORCE_INLINE C at(const index_t*) const { return value; }
    WEFT_HD WEFT_FORCE_INLINE C linear(index_t) const { return value; }
    WEFT_HD ScalarRow<C> row(const index_t*) const { return {value}; }
    bool linear_ok() const { return true; }
    bool inner_unit() const { return true; }
};

}  // namespace evaluators

// Builds the evaluator of a tensor read at the broadcast output shape `out` (rank R >= rank).
template <int R, Element T, int TR, Device D>
evaluators::TensorLeaf<T, R> make_evaluator(const Tensor<T, TR, D>& t, const Shape<R>& out) {
    static_assert(TR <= R, "weft: internal: leaf rank above output rank");
    evaluators::TensorLeaf<T, R> e{};
    e.p = t.data();
    for (int d = 0; d < R; ++d) {
        const int src = d - (R - TR);
        e.st[d] = (src < 0 || (t.shape()[src] == 1 && out[d] != 1)) ? 0 : t.strides()[src];
    }
    e.dense = t.numel() == out.numel() && t.is_contiguous();
    return e;
}

template <int R, Element T>
evaluators::ScalarLeaf<compute_t<T>> make_evaluator(const Scalar<T>& s, const Shape<R>&) {
    return {s.value};
}

// Calls f(tensor) on every tensor leaf of an expression (used for the aliasing check).
template <Element T, int R, Device D, class F>
void visit_tensors(const Tensor<T, R, D>& t, F&& f) {
    f(t);
}
template <Element T, class F>
void visit_tensors(const Scalar<T>&, F&&) {}

// The shape an expression evaluates to.
template <Expression E>
auto shape_of(const E& e) {
    return e.shape();
}

}  // namespace weft
