// The element-wise functors' stated derivatives (weft/expr/functors.hpp) against central finite
// differences in double precision, at random points away from kinks and poles.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <weft/expr/functors.hpp>

using namespace weft;

namespace {

// Central difference with a step scaled to x: truncation error ~h^2 and rounding ~eps/h are
// both ~1e-10 relative, far below the 1e-6 the checks allow.
template <class F>
double central_difference(F f, double x) {
    const double h = 1e-5 * std::max(1.0, std::abs(x));
    return (f(x + h) - f(x - h)) / (2 * h);
}

double rel_error(double got, double want) { return std::abs(got - want) / std::max(1e-3, std::abs(want)); }

// Points in [lo, hi] at least `gap` away from every kink in `kinks`.
std::vector<double> points(std::mt19937& rng, double lo, double hi, std::vector<double> kinks = {}, double gap = 0.05) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<double> out;
    while (out.size() < 25) {
        const double x = dist(rng);
        bool near = false;
        for (double k : kinks) near = near || std::abs(x - k) < gap;
        if (!near) out.push_back(x);
    }
    return out;
}

template <class F>
void check_unary(const char* name, const std::vector<double>& xs) {
    const F f{};
    STATIC_REQUIRE(fn::DifferentiableUnary<F, double>);
    for (double x : xs) {
        const double y = f(x);
        const double analytic = f.d(x, y);
        const double numeric = central_difference([&](double t) { return f(t); }, x);
        INFO(name << " at x = " << x << ": d = " << analytic << ", finite difference " << numeric);
        REQUIRE(rel_error(analytic, numeric) < 1e-6);
    }
}

template <class F>
void check_binary(const char* name, const std::vector<double>& as, const std::vector<double>& bs) {
    const F f{};
    STATIC_REQUIRE(fn::DifferentiableBinary<F, double>);
    for (std::size_t i = 0; i < as.size(); ++i) {
        const double a = as[i], b = bs[i];
        const double y = f(a, b);
        const double da = f.d0(a, b, y), db = f.d1(a, b, y);
        const double na = central_difference([&](double t) { return f(t, b); }, a);
        const double nb = central_difference([&](double t) { return f(a, t); }, b);
        INFO(name << " at (" << a << ", " << b << "): d0 = " << da << " vs " << na << ", d1 = " << db << " vs " << nb);
        REQUIRE(rel_error(da, na) < 1e-6);
        REQUIRE(rel_error(db, nb) < 1e-6);
    }
}

}  // namespace

TEST_CASE("unary functor derivatives match finite differences") {
    std::mt19937 rng(1);
    check_unary<fn::Neg>("neg", points(rng, -5, 5));
    check_unary<fn::Abs>("abs", points(rng, -5, 5, {0}));
    check_unary<fn::Square>("square", points(rng, -5, 5));
    check_unary<fn::Reciprocal>("reciprocal", points(rng, -4, 4, {0}, 0.2));
    check_unary<fn::Exp>("exp", points(rng, -5, 5));
    check_unary<fn::Log>("log", points(rng, 0.05, 20));
    check_unary<fn::Sqrt>("sqrt", points(rng, 0.05, 20));
    check_unary<fn::Rsqrt>("rsqrt", points(rng, 0.05, 20));
    check_unary<fn::Sin>("sin", points(rng, -7, 7));
    check_unary<fn::Cos>("cos", points(rng, -7, 7));
    check_unary<fn::Tanh>("tanh", points(rng, -4, 4));
    check_unary<fn::Sigmoid>("sigmoid", points(rng, -8, 8));
    check_unary<fn::Erf>("erf", points(rng, -3, 3));
    check_unary<fn::Relu>("relu", points(rng, -5, 5, {0}));
    check_unary<fn::Gelu>("gelu", points(rng, -5, 5));
    check_unary<fn::QuickGelu>("quick_gelu", points(rng, -6, 6));
}

TEST_CASE("binary functor derivatives match finite differences") {
    std::mt19937 rng(2);
    const auto a = points(rng, -5, 5), b = points(rng, -5, 5);
    check_binary<fn::Add>("add", a, b);
    check_binary<fn::Sub>("sub", a, b);
    check_binary<fn::Mul>("mul", a, b);
    check_binary<fn::Div>("div", a, points(rng, -4, 4, {0}, 0.3));
    check_binary<fn::Pow>("pow", points(rng, 0.1, 4), points(rng, -3, 3));
    // maximum/minimum away from ties: shift b so that |a - b| is never tiny.
    std::vector<double> far;
    for (std::size_t i = 0; i < a.size(); ++i) far.push_back(a[i] + (i % 2 ? 0.5 : -0.5) + 0.05 * b[i]);  // |a - far| >= 0.25
    check_binary<fn::Maximum>("maximum", a, far);
    check_binary<fn::Minimum>("minimum", a, far);
}

TEST_CASE("functor values against the closed forms") {
    REQUIRE(fn::Sigmoid{}(0.0) == 0.5);
    REQUIRE(fn::Gelu{}(1.0) == Approx(0.8413447460685429).epsilon(1e-14));     // Phi(1)
    REQUIRE(fn::Gelu{}(-1.0) == Approx(-0.15865525393145707).epsilon(1e-14));  // -Phi(-1)
    REQUIRE(fn::QuickGelu{}(1.0) == Approx(1.0 / (1.0 + std::exp(-1.702))).epsilon(1e-14));
    REQUIRE(fn::Rsqrt{}(4.0) == 0.5);
    REQUIRE(fn::Relu{}(-0.0) == 0.0);
    REQUIRE(fn::Pow{}(2.0, 10.0) == 1024.0);
    REQUIRE(fn::Maximum{}(1.0, 2.0) == 2.0);
    REQUIRE(fn::Minimum{}(1.0, 2.0) == 1.0);
    // float stays float (the functors compute in the compute type).
    STATIC_REQUIRE(std::is_same_v<decltype(fn::Exp{}(1.0f)), float>);
    STATIC_REQUIRE(std::is_same_v<decltype(fn::Gelu{}.d(1.0f, 1.0f)), float>);
    REQUIRE(fn::Gelu{}(1.0f) == Approx(0.8413447f).epsilon(1e-6));
}

TEST_CASE("derivatives at kinks and ties follow PyTorch") {
    // Gradient split in half between equal operands.
    REQUIRE(fn::Maximum{}.d0(2.0, 2.0, 2.0) == 0.5);
    REQUIRE(fn::Maximum{}.d1(2.0, 2.0, 2.0) == 0.5);
    REQUIRE(fn::Minimum{}.d0(-1.0, -1.0, -1.0) == 0.5);
    REQUIRE(fn::Minimum{}.d1(-1.0, -1.0, -1.0) == 0.5);
    REQUIRE(fn::Maximum{}.d0(3.0, 2.0, 3.0) == 1.0);
    REQUIRE(fn::Maximum{}.d1(3.0, 2.0, 3.0) == 0.0);
    REQUIRE(fn::Minimum{}.d0(3.0, 2.0, 2.0) == 0.0);
    REQUIRE(fn::Minimum{}.d1(3.0, 2.0, 2.0) == 1.0);
    // abs and relu have derivative 0 at 0.
    REQUIRE(fn::Abs{}.d(0.0, 0.0) == 0.0);
    REQUIRE(fn::Relu{}.d(0.0, 0.0) == 0.0);
    REQUIRE(fn::Abs{}.d(-2.0, 2.0) == -1.0);
    // pow's exponent derivative is taken as 0 where log(a) is undefined.
    REQUIRE(fn::Pow{}.d1(0.0, 2.0, 0.0) == 0.0);
    REQUIRE(fn::Pow{}.d0(0.0, 2.0, 0.0) == 0.0);
    REQUIRE(fn::Pow{}.d0(-2.0, 3.0, -8.0) == Approx(12.0));
}

TEST_CASE("which functors are differentiable") {
    STATIC_REQUIRE(fn::DifferentiableUnary<fn::Exp, float>);
    STATIC_REQUIRE_FALSE(fn::DifferentiableUnary<fn::LogicalNot, bool>);
    STATIC_REQUIRE(fn::DifferentiableBinary<fn::Pow, double>);
    STATIC_REQUIRE_FALSE(fn::DifferentiableBinary<fn::Less, double>);
    STATIC_REQUIRE_FALSE(fn::DifferentiableBinary<fn::LogicalXor, bool>);
    REQUIRE(std::string(fn::Add::name) == "add");
    REQUIRE(std::string(fn::QuickGelu::name) == "quick_gelu");
}
