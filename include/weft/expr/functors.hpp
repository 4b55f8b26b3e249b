// weft/expr/functors.hpp: the element-wise functions, each with its derivative.
//
// A functor computes in the compute type (float for bf16/half) and compiles for host and device.
// Differentiable functors state their derivative so that the backward pass of a fused
// expression is itself a fused expression:
//   unary   d(x, y)        = dy/dx, given the input x and the output y = f(x)
//   binary  d0(a, b, y)    = dy/da,  d1(a, b, y) = dy/db
// Using y where it is cheaper (exp, tanh, sigmoid, sqrt) avoids recomputing the function.
#pragma once

#include <type_traits>

#include "../core/config.hpp"
#include "math.hpp"

namespace weft::fn {

// ---- unary ------------------------------------------------------------------------------------

struct Neg {
    static constexpr const char* name = "neg";
    template <class T> WEFT_HD T operator()(T x) const { return -x; }
    template <class T> WEFT_HD T d(T, T) const { return T(-1); }
};

struct Abs {
    static constexpr const char* name = "abs";
    template <class T> WEFT_HD T operator()(T x) const { return math::abs(x); }
    template <class T> WEFT_HD T d(T x, T) const { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); }
};

struct Square {
    static constexpr const char* name = "square";
    template <class T> WEFT_HD T operator()(T x) const { return x * x; }
    template <class T> WEFT_HD T d(T x, T) const { return T(2) * x; }
};

struct Reciprocal {
    static constexpr const char* name = "reciprocal";
    template <class T> WEFT_HD T operator()(T x) const { return T(1) / x; }
    template <class T> WEFT_HD T d(T, T y) const { return -y * y; }
};

struct Exp {
    static constexpr const char* name = "exp";
    template <class T> WEFT_HD T operator()(T x) const { return math::exp(x); }
    template <class T> WEFT_HD T d(T, T y) const { return y; }
};

struct Log {
    static constexpr const char* name = "log";
    template <class T> WEFT_HD T operator()(T x) const { return math::log(x); }
    template <class T> WEFT_HD T d(T x, T) const { return T(1) / x; }
};

struct Sqrt {
    static constexpr const char* name = "sqrt";
    template <class T> WEFT_HD T operator()(T x) const { return math::sqrt(x); }
    template <class T> WEFT_HD T d(T, T y) const { return T(0.5) / y; }
};

struct Rsqrt {
    static constexpr const char* name = "rsqrt";
    template <class T> WEFT_HD T operator()(T x) const { return T(1) / math::sqrt(x); }
    template <class T> WEFT_HD T d(T, T y) const { return T(-0.5) * y * y * y; }
};

struct Sin {
    static constexpr const char* name = "sin";
    template <class T> WEFT_HD T operator()(T x) const { return math::sin(x); }
    template <class T> WEFT_HD T d(T x, T) const { return math::cos(x); }
};

struct Cos {
    static constexpr const char* name = "cos";
    template <class T> WEFT_HD T operator()(T x) const { return math::cos(x); }
    template <class T> WEFT_HD T d(T x, T) const { return -math::sin(x); }
};

struct Tanh {
    static constexpr const char* name = "tanh";
    template <class T> WEFT_HD T operator()(T x) const { return math::tanh(x); }
    template <class T> WEFT_HD T d(T, T y) const { return T(1) - y * y; }
};

struct Sigmoid {
    static constexpr const char* name = "sigmoid";
    template <class T> WEFT_HD T operator()(T x) const { return T(1) / (T(1) + math::exp(-x)); }
    template <class T> WEFT_HD T d(T, T y) const { return y * (T(1) - y); }
};

struct Erf {
    static constexpr const char* name = "erf";
    template <class T> WEFT_HD T operator()(T x) const { return math::erf(x); }
    template <class T> WEFT_HD T d(T x, T) const {
        return T(1.1283791670955126) * math::exp(-x * x);  // 2/sqrt(pi) e^(-x^2)
    }
};

struct Relu {
    static constexpr const char* name = "relu";
    template <class T> WEFT_HD T operator()(T x) const { return x > T(0) ? x : T(0); }
    template <class T> WEFT_HD T d(T x, T) const { return x > T(0) ? T(1) : T(0); }
};

// The exact GELU, x * Phi(x), as torch.nn.GELU() (approximate='none').
struct Gelu {
    static constexpr const char* name = "gelu";
    template <class T> WEFT_HD T operator()(T x) const {
        return T(0.5) * x * (T(1) + math::erf(x * T(0.7071067811865476)));
    }
    template <class T> WEFT_HD T d(T x, T) const {
        const T cdf = T(0.5) * (T(1) + math::erf(x * T(0.7071067811865476)));
        const T pdf = T(0.3989422804014327) * math::exp(T(-0.5) * x * x);  // 1/sqrt(2 pi) e^(-x^2/2)
        return cdf + x * pdf;
    }
};

// CLIP's activation: x * sigmoid(1.702 x).
struct QuickGelu {
    static constexpr const char* name = "quick_gelu";
    template <class T> WEFT_HD T operator()(T x) const { return x / (T(1) + math::exp(T(-1.702) * x)); }
    template <class T> WEFT_HD T d(T x, T) const {
        const T s = T(1) / (T(1) + math::exp(T(-1.702) * x));
        return s + T(1.702) * x * s * (T(1) - s);
    }
};

struct LogicalNot {
    static constexpr const char* name = "logical_not";
    WEFT_HD bool operator()(bool x) const { return !x; }
};

// ---- binary -----------------------------------------------------------------------------------

struct Add {
    static constexpr const char* name = "add";
    template <class T> WEFT_HD T operator()(T a, T b) const { return a + b; }
    template <class T> WEFT_HD T d0(T, T, T) const { return T(1); }
    template <class T> WEFT_HD T d1(T, T, T) const { return T(1); }
};

struct Sub {
    static constexpr const char* name = "sub";
    template <class T> WEFT_HD T operator()(T a, T b) const { return a - b; }
    template <class T> WEFT_HD T d0(T, T, T) const { return T(1); }
    template <class T> WEFT_HD T d1(T, T, T) const { return T(-1); }
};

struct Mul {
    static constexpr const char* name = "mul";
    template <class T> WEFT_HD T operator()(T a, T b) const { return a * b; }
    template <class T> WEFT_HD T d0(T, T b, T) const { return b; }
    template <class T> WEFT_HD T d1(T a, T, T) const { return a; }
};

struct Div {
    static constexpr const char* name = "div";
    template <class T> WEFT_HD T operator()(T a, T b) const { return a / b; }
    template <class T> WEFT_HD T d0(T, T b, T) const { return T(1) / b; }
    template <class T> WEFT_HD T d1(T, T b, T y) const { return -y / b; }
};

struct Pow {
    static constexpr const char* name = "pow";
    template <class T> WEFT_HD T operator()(T a, T b) const { return math::pow(a, b); }
    template <class T> WEFT_HD T d0(T a, T b, T) const { return b * math::pow(a, b - T(1)); }
    template <class T> WEFT_HD T d1(T a, T, T y) const { return a > T(0) ? y * math::log(a) : T(0); }
};

// At ties the gradient is split in half between the operands, as PyTorch's maximum/minimum do.
struct Maximum {
    static constexpr const char* name = "maximum";
    template <class T> WEFT_HD T operator()(T a, T b) const { return (a >= b || math::isnan(a)) ? a : b; }
    template <class T> WEFT_HD T d0(T a, T b, T) const { return a > b ? T(1) : (a == b ? T(0.5) : T(0)); }
    template <class T> WEFT_HD T d1(T a, T b, T) const { return b > a ? T(1) : (a == b ? T(0.5) : T(0)); }
};

struct Minimum {
    static constexpr const char* name = "minimum";
    template <class T> WEFT_HD T operator()(T a, T b) const { return (a <= b || math::isnan(a)) ? a : b; }
    template <class T> WEFT_HD T d0(T a, T b, T) const { return a < b ? T(1) : (a == b ? T(0.5) : T(0)); }
    template <class T> WEFT_HD T d1(T a, T b, T) const { return b < a ? T(1) : (a == b ? T(0.5) : T(0)); }
};

#define WEFT_COMPARISON(Name, op)                                                    \
    struct Name {                                                                    \
        static constexpr const char* name = #Name;                                   \
        template <class T> WEFT_HD bool operator()(T a, T b) const { return a op b; } \
    };
WEFT_COMPARISON(Equal, ==)
WEFT_COMPARISON(NotEqual, !=)
WEFT_COMPARISON(Less, <)
WEFT_COMPARISON(LessEqual, <=)
WEFT_COMPARISON(Greater, >)
WEFT_COMPARISON(GreaterEqual, >=)
#undef WEFT_COMPARISON

struct LogicalAnd {
    static constexpr const char* name = "logical_and";
    WEFT_HD bool operator()(bool a, bool b) const { return a && b; }
};
struct LogicalOr {
    static constexpr const char* name = "logical_or";
    WEFT_HD bool operator()(bool a, bool b) const { return a || b; }
};
struct LogicalXor {
    static constexpr const char* name = "logical_xor";
    WEFT_HD bool operator()(bool a, bool b) const { return a != b; }
};

// ---- what a functor can do --------------------------------------------------------------------

template <class F, class T>
concept DifferentiableUnary = requires(F f, T x) {
    { f.d(x, x) };
};

template <class F, class T>
concept DifferentiableBinary = requires(F f, T x) {
    { f.d0(x, x, x) };
    { f.d1(x, x, x) };
};

}  // namespace weft::fn
