// Finite-difference checks of fused element-wise expressions and reductions: the backward of
// each functor comes from its stated derivative (expr/functors.hpp, expr/derivative.hpp).
#include <weft/weft.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {
using T2 = Tensor<double, 2>;
// Inputs away from the kinks and poles of the functions under test.
T2 positive(int r, int c) { return eval(T2::rand({r, c}) + 0.5); }
T2 signed_values(int r, int c) { return eval(T2::rand({r, c}) * 2.0 - 1.0); }
}  // namespace

#define UNARY_GRADCHECK(fname, input)                                                      \
    TEST_CASE("gradcheck " #fname, "[gradcheck]") {                                                     \
        WEFT_CHECK_GRADIENT([](const T2& x) { return eval(fname(x)); }, input);            \
    }

UNARY_GRADCHECK(exp, signed_values(3, 4))
UNARY_GRADCHECK(log, positive(3, 4))
UNARY_GRADCHECK(sqrt, positive(3, 4))
UNARY_GRADCHECK(rsqrt, positive(3, 4))
UNARY_GRADCHECK(tanh, signed_values(3, 4))
UNARY_GRADCHECK(sigmoid, signed_values(3, 4))
UNARY_GRADCHECK(erf, signed_values(3, 4))
UNARY_GRADCHECK(gelu, signed_values(3, 4))
UNARY_GRADCHECK(quick_gelu, signed_values(3, 4))
UNARY_GRADCHECK(sin, signed_values(3, 4))
UNARY_GRADCHECK(cos, signed_values(3, 4))
UNARY_GRADCHECK(square, signed_values(3, 4))
UNARY_GRADCHECK(reciprocal, positive(3, 4))
UNARY_GRADCHECK(abs, positive(3, 4))
UNARY_GRADCHECK(relu, positive(3, 4))

TEST_CASE("gradcheck arithmetic with broadcasting", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& a, const Tensor<double, 1>& b) { return eval((a - b) * a / (b + 3.0)); },
                        signed_values(3, 4), Tensor<double, 1>::rand({4}));
}

TEST_CASE("gradcheck pow, maximum and minimum", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& a, const T2& b) { return eval(pow(a, b) + maximum(a, b) - minimum(a, 2.0 * b)); },
                        positive(3, 4), positive(3, 4));
}

TEST_CASE("gradcheck where and casts", "[gradcheck]") {
    // The float round trip rounds b to 24 bits: a wider step keeps that rounding out of the
    // difference quotient (the branch is linear in b, so the step adds no truncation error).
    GradcheckOptions wide;
    wide.eps = 1e-2;
    wide.atol = 1e-4;
    WEFT_CHECK_GRADIENT_WITH(
        wide, [](const T2& a, const T2& b) { return eval(where(a > 0, a * b, cast<double>(cast<float>(b)) * 3.0)); },
        signed_values(3, 4), signed_values(3, 4));
}

TEST_CASE("gradcheck sum and mean over axes", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const Tensor<double, 3>& x) { return eval(sum(x * x, {0, 2}) + mean(x, {0, 2})); },
                        Tensor<double, 3>::randn({2, 3, 4}));
}

TEST_CASE("gradcheck max and min over an axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return eval(max(x, 1) - min(x, {0}, keepdim).reshape(4)); },
                        T2::randn({4, 4}));
}

TEST_CASE("gradcheck var with and without correction", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return eval(var(x, {1}) + var(x, {1}, keepdim, 0).reshape(3)); },
                        T2::randn({3, 5}));
}

TEST_CASE("gradcheck views: permute, slice, select, expand, reshape", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const Tensor<double, 3>& x) {
            auto y = x.permute(2, 0, 1).slice(0, 1, 4, 2);       // [2, 2, 3]
            auto z = x.select(1, 2).unsqueeze(0).expand(2, -1, -1);  // [2, 2, 4]
            return eval(y.reshape(2, 6) * 2.0 + z.reshape(2, 8).slice(1, 0, 6));
        },
        Tensor<double, 3>::randn({2, 3, 4}));
}

TEST_CASE("gradcheck matmul, all rank pairs", "[gradcheck]") {
    using T3 = Tensor<double, 3>;
    WEFT_CHECK_GRADIENT([](const T2& a, const T2& b) { return matmul(a, b); }, T2::randn({3, 4}), T2::randn({4, 2}));
    WEFT_CHECK_GRADIENT([](const T3& a, const T3& b) { return matmul(a, b); }, T3::randn({2, 3, 4}),
                        T3::randn({1, 4, 2}));
    WEFT_CHECK_GRADIENT([](const T3& a, const T2& b) { return matmul(a, b.t()); }, T3::randn({2, 3, 4}),
                        T2::randn({5, 4}));
    WEFT_CHECK_GRADIENT([](const T2& a, const T3& b) { return matmul(a, b); }, T2::randn({3, 4}),
                        T3::randn({2, 4, 2}));
}

TEST_CASE("gradcheck bmm", "[gradcheck]") {
    using T3 = Tensor<double, 3>;
    WEFT_CHECK_GRADIENT([](const T3& a, const T3& b) { return bmm(a, b.transpose(1, 2)); }, T3::randn({2, 3, 4}),
                        T3::randn({2, 5, 4}));
}

TEST_CASE("gradcheck linear with and without bias", "[gradcheck]") {
    using T3 = Tensor<double, 3>;
    WEFT_CHECK_GRADIENT([](const T3& x, const T2& w, const Tensor<double, 1>& b) { return linear(x, w, b); },
                        T3::randn({2, 3, 4}), T2::randn({5, 4}), Tensor<double, 1>::randn({5}));
    WEFT_CHECK_GRADIENT([](const T2& x, const T2& w) { return linear(x, w); }, T2::randn({3, 4}), T2::randn({5, 4}));
}
