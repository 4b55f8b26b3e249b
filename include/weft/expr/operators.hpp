// weft/expr/operators.hpp: the user-facing element-wise vocabulary.
//
//   auto y = where(x > 0, x, 0.1f * x);         // leaky ReLU, one fused loop when stored
//   Tensor<float, 2> z = exp(x - 1.0f) / (1.0f + abs(x));
//
// Every function returns a lazy expression. C++ numbers mix with expressions and take the
// expression's element type (`x * 2` with float x multiplies by 2.0f); an integer tensor with a
// floating number does not compile (cast the tensor first). Tensors of different element types
// or devices never mix silently.
#pragma once

#include <type_traits>

#include "functors.hpp"
#include "nodes.hpp"

namespace weft {

namespace detail {

// An operand as an expression: expressions pass through, numbers become Scalar<Like>.
template <class Like, class X>
auto as_operand(const X& x) {
    if constexpr (Expression<X>) {
        return x;
    } else {
        static_assert(ScalarValue<X>, "weft: an operand must be a tensor, an expression or a number");
        static_assert(!(std::is_integral_v<Like> && std::is_floating_point_v<X>),
                      "weft: a floating-point number cannot combine with an integer tensor without a "
                      "cast; use weft::cast<float>(x) or an integer constant");
        return Scalar<Like>{convert<compute_t<Like>>(x)};
    }
}

template <class A, class B>
concept Operands = (Expression<A> && (Expression<B> || ScalarValue<B>)) || (ScalarValue<A> && Expression<B>);

template <class F, class A, class B>
auto binary(const A& a, const B& b) {
    using Like = std::conditional_t<Expression<A>, value_of<std::conditional_t<Expression<A>, A, B>>,
                                    value_of<std::conditional_t<Expression<B>, B, A>>>;
    auto ea = as_operand<Like>(a);
    auto eb = as_operand<Like>(b);
    return Binary<F, decltype(ea), decltype(eb)>(F{}, std::move(ea), std::move(eb));
}

template <class F, Expression A>
auto unary(const A& a) {
    return Unary<F, A>(F{}, a);
}

}  // namespace detail

// ---- arithmetic and comparison operators ---------------------------------------------------------

#define WEFT_BINARY_OPERATOR(op, F)                            \
    template <class A, class B>                                \
        requires detail::Operands<A, B>                        \
    auto operator op(const A& a, const B& b) {                 \
        return detail::binary<fn::F>(a, b);                    \
    }
WEFT_BINARY_OPERATOR(+, Add)
WEFT_BINARY_OPERATOR(-, Sub)
WEFT_BINARY_OPERATOR(*, Mul)
WEFT_BINARY_OPERATOR(/, Div)
WEFT_BINARY_OPERATOR(==, Equal)
WEFT_BINARY_OPERATOR(!=, NotEqual)
WEFT_BINARY_OPERATOR(<, Less)
WEFT_BINARY_OPERATOR(<=, LessEqual)
WEFT_BINARY_OPERATOR(>, Greater)
WEFT_BINARY_OPERATOR(>=, GreaterEqual)
WEFT_BINARY_OPERATOR(&&, LogicalAnd)
WEFT_BINARY_OPERATOR(||, LogicalOr)
#undef WEFT_BINARY_OPERATOR

template <Expression A>
auto operator-(const A& a) {
    return detail::unary<fn::Neg>(a);
}
template <Expression A>
auto operator!(const A& a) {
    static_assert(std::same_as<value_of<A>, bool>, "weft: ! needs a bool expression");
    return detail::unary<fn::LogicalNot>(a);
}

// ---- named functions -----------------------------------------------------------------------------

#define WEFT_UNARY_FUNCTION(name, F)          \
    template <Expression A>                   \
    auto name(const A& a) {                   \
        return detail::unary<fn::F>(a);       \
    }
WEFT_UNARY_FUNCTION(abs, Abs)
WEFT_UNARY_FUNCTION(square, Square)
WEFT_UNARY_FUNCTION(reciprocal, Reciprocal)
WEFT_UNARY_FUNCTION(exp, Exp)
WEFT_UNARY_FUNCTION(log, Log)
WEFT_UNARY_FUNCTION(sqrt, Sqrt)
WEFT_UNARY_FUNCTION(rsqrt, Rsqrt)
WEFT_UNARY_FUNCTION(sin, Sin)
WEFT_UNARY_FUNCTION(cos, Cos)
WEFT_UNARY_FUNCTION(tanh, Tanh)
WEFT_UNARY_FUNCTION(sigmoid, Sigmoid)
WEFT_UNARY_FUNCTION(erf, Erf)
WEFT_UNARY_FUNCTION(relu, Relu)
WEFT_UNARY_FUNCTION(gelu, Gelu)
WEFT_UNARY_FUNCTION(quick_gelu, QuickGelu)
WEFT_UNARY_FUNCTION(logical_not, LogicalNot)
#undef WEFT_UNARY_FUNCTION

#define WEFT_BINARY_FUNCTION(name, F)            \
    template <class A, class B>                  \
        requires detail::Operands<A, B>          \
    auto name(const A& a, const B& b) {          \
        return detail::binary<fn::F>(a, b);      \
    }
WEFT_BINARY_FUNCTION(pow, Pow)
WEFT_BINARY_FUNCTION(maximum, Maximum)
WEFT_BINARY_FUNCTION(minimum, Minimum)
WEFT_BINARY_FUNCTION(logical_and, LogicalAnd)
WEFT_BINARY_FUNCTION(logical_or, LogicalOr)
WEFT_BINARY_FUNCTION(logical_xor, LogicalXor)
#undef WEFT_BINARY_FUNCTION

// cond ? a : b, element-wise with broadcasting; a and b may be numbers.
template <Expression C, class A, class B>
    requires(Expression<A> || Expression<B>)
auto where(const C& cond, const A& a, const B& b) {
    using Like = std::conditional_t<Expression<A>, value_of<std::conditional_t<Expression<A>, A, B>>,
                                    value_of<std::conditional_t<Expression<B>, B, A>>>;
    auto ea = detail::as_operand<Like>(a);
    auto eb = detail::as_operand<Like>(b);
    return Where<C, decltype(ea), decltype(eb)>(cond, std::move(ea), std::move(eb));
}

// An explicit element-type conversion: cast<double>(x), cast<bf16>(y).
template <Element To, Expression A>
auto cast(const A& a) {
    return Cast<To, A>(a);
}

}  // namespace weft
