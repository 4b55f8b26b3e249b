// Element-wise expressions with broadcasting (weft/expr/operators.hpp, nodes.hpp, broadcast.hpp),
// checked against xtensor as an independent reference on random shapes and layouts.
//
// Each trial draws a broadcast output shape (ranks 1-4, extents 1-5), derives operand shapes
// from it (dropping leading axes, setting random axes to 1), and builds each operand in a random
// layout: dense, transposed, strided slice, or stride-0 expanded. The operands' logical values
// are copied into xt::xarray (reading weft's shape/strides/data directly); xtensor broadcasts
// them by its own rules and the reference result is computed from that (see "the reference").
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include <weft/weft.hpp>

#include "support/tensor_values.hpp"

using namespace weft;
using weft::test::iota;
using weft::test::logical_values;
using Catch::Contains;

namespace {

// ---- reading weft tensors without weft's copy routines -------------------------------------------

template <int R>
std::vector<std::size_t> xt_shape(const Shape<R>& s) {
    std::vector<std::size_t> v;
    for (int d = 0; d < R; ++d) v.push_back(std::size_t(s[d]));
    return v;
}

template <class T, int R>
xt::xarray<T> to_xt(const Tensor<T, R>& t) {
    xt::xarray<T> a = xt::xarray<T>::from_shape(xt_shape(t.shape()));
    const auto v = logical_values(t);
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

// ---- random operands -------------------------------------------------------------------------------

template <int R>
Shape<R> random_shape(std::mt19937& rng) {
    Shape<R> s;
    for (int d = 0; d < R; ++d) s[d] = 1 + index_t(rng() % 5);
    return s;
}

// The trailing RA extents of `out`, each set to 1 with probability 1/3.
template <int RA, int R>
Shape<RA> operand_shape(const Shape<R>& out, std::mt19937& rng) {
    static_assert(RA <= R);
    Shape<RA> s;
    for (int d = 0; d < RA; ++d) s[d] = (rng() % 3 == 0) ? 1 : out[d + (R - RA)];
    return s;
}

// Uniform in [lo, hi]; whole numbers only when `ints` (for ties in comparisons), or for integer T.
template <class T>
T random_value(std::mt19937& rng, double lo, double hi, bool ints) {
    if constexpr (std::is_same_v<T, bool>) {
        return rng() % 2 == 0;
    } else if constexpr (std::is_integral_v<T>) {
        return T(std::int64_t(lo) + std::int64_t(rng() % std::uint64_t(hi - lo + 1)));
    } else {
        if (ints) return T(double(std::int64_t(lo) + std::int64_t(rng() % std::uint64_t(hi - lo + 1))));
        return T(std::uniform_real_distribution<double>(lo, hi)(rng));
    }
}

template <class T, int R>
Tensor<T, R> dense_random(const Shape<R>& shape, std::mt19937& rng, double lo, double hi, bool ints) {
    std::vector<T> v;
    for (index_t i = 0; i < shape.numel(); ++i) v.push_back(random_value<T>(rng, lo, hi, ints));
    return Tensor<T, R>::from_vector(v, shape);
}

template <class T, int R, std::size_t... I>
Tensor<T, R> expand_to(const Tensor<T, R>& t, const Shape<R>& shape, std::index_sequence<I...>) {
    return t.expand(shape[int(I)]...);
}

// A tensor of `shape` with random values in a random memory layout.
template <class T, int R>
Tensor<T, R> random_operand(const Shape<R>& shape, std::mt19937& rng, double lo = -2, double hi = 2,
                            bool ints = false) {
    const int layout = int(rng() % 4);
    if (layout == 1 && R >= 2) {  // axes reversed in memory, viewed back in order
        Shape<R> rev;
        for (int d = 0; d < R; ++d) rev[d] = shape[R - 1 - d];
        auto t = dense_random<T>(rev, rng, lo, hi, ints);
        for (int d = 0; d < R / 2; ++d) t = t.transpose(d, R - 1 - d);
        return t;
    }
    if (layout == 2) {  // every other element along a random axis, starting at 1
        const int axis = int(rng() % R);
        Shape<R> big = shape;
        big[axis] = 2 * shape[axis] + 1;
        return dense_random<T>(big, rng, lo, hi, ints).slice(axis, 1, big[axis], 2);
    }
    if (layout == 3) {  // stride 0: one slice expanded along a random axis
        const int axis = int(rng() % R);
        Shape<R> small = shape;
        small[axis] = 1;
        return expand_to(dense_random<T>(small, rng, lo, hi, ints), shape, std::make_index_sequence<R>{});
    }
    return dense_random<T>(shape, rng, lo, hi, ints);
}

// ---- the reference -----------------------------------------------------------------------------------
//
// xtensor broadcasts the operands to the result shape by its own rules (xt::broadcast_shape and
// xt::broadcast); the element function is then applied with plain <cmath>, so each of the many ops
// below costs a small loop instead of a full xtensor assignment instantiation (compile time is a
// budget). A few composite expressions are evaluated entirely by xtensor as well.

template <class X>
std::vector<std::size_t> shape_vector(const X& x) {
    return std::vector<std::size_t>(x.shape().begin(), x.shape().end());
}

template <class T>
xt::xarray<T> broadcast_to(const xt::xarray<T>& x, const std::vector<std::size_t>& shape) {
    return xt::broadcast(x, shape);
}

// f applied to the operands broadcast together; Out is the element type of the result.
template <class Out, class F, class... X>
xt::xarray<Out> ref_map(F f, const X&... xs) {
    std::vector<std::size_t> shape;
    std::size_t rank = 0;
    ((rank = std::max(rank, xs.dimension())), ...);
    shape.assign(rank, 1);
    (xt::broadcast_shape(xs.shape(), shape), ...);
    const auto operands = std::make_tuple(broadcast_to(xs, shape)...);
    xt::xarray<Out> out = xt::xarray<Out>::from_shape(shape);
    for (std::size_t i = 0; i < out.size(); ++i)
        out.data()[i] = std::apply([&](const auto&... o) { return Out(f(o.data()[i]...)); }, operands);
    return out;
}

template <class T, int R, class Ref>
void require_exact(const Tensor<T, R>& got, const Ref& ref_in) {
    const xt::xarray<T> ref = ref_in;
    REQUIRE(xt_shape(got.shape()) == shape_vector(ref));
    const auto v = logical_values(got);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!(v[i] == ref.data()[i]) && !(std::isnan(double(v[i])) && std::isnan(double(ref.data()[i])))) {
            if (++bad <= 5) UNSCOPED_INFO("element " << i << ": weft " << +v[i] << " reference " << +ref.data()[i]);
        }
    REQUIRE(bad == 0);
}

template <class T, int R, class Ref>
void require_close(const Tensor<T, R>& got, const Ref& ref_in, double rtol = 1e-6, double atol = 1e-7) {
    const xt::xarray<T> ref = ref_in;
    REQUIRE(xt_shape(got.shape()) == shape_vector(ref));
    const auto v = logical_values(got);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const double a = double(v[i]), b = double(ref.data()[i]);
        const bool ok = (std::isnan(a) && std::isnan(b)) || std::abs(a - b) <= atol + rtol * std::abs(b);
        if (!ok && ++bad <= 5) UNSCOPED_INFO("element " << i << ": weft " << a << " reference " << b);
    }
    REQUIRE(bad == 0);
}

// Evaluates an expression, checking the type and layout eval() promises.
template <class E>
auto run(const E& e) {
    auto out = eval(e);
    STATIC_REQUIRE(std::is_same_v<decltype(out), Tensor<value_of<E>, rank_of<E>>>);
    REQUIRE(out.shape() == e.shape());
    REQUIRE(out.is_contiguous());
    return out;
}

// ---- trials ------------------------------------------------------------------------------------------

// Arithmetic on two broadcast float operands of ranks RA and RB inside a rank-R output.
template <int R, int RA, int RB>
void arithmetic_trial(std::mt19937& rng) {
    const auto out = random_shape<R>(rng);
    const auto a = random_operand<float>(operand_shape<RA>(out, rng), rng);
    const auto b = random_operand<float>(operand_shape<RB>(out, rng), rng);
    const auto pos = random_operand<float>(operand_shape<RB>(out, rng), rng, 0.25, 3);
    INFO("a " << a.shape() << " strides " << a.strides() << ", b " << b.shape() << " strides " << b.strides()
              << ", pos " << pos.shape() << " strides " << pos.strides());
    const auto xa = to_xt(a), xb = to_xt(b), xp = to_xt(pos);
    require_exact(run(a + b), ref_map<float>([](float x, float y) { return x + y; }, xa, xb));
    require_exact(run(a - b), ref_map<float>([](float x, float y) { return x - y; }, xa, xb));
    require_exact(run(a * b), ref_map<float>([](float x, float y) { return x * y; }, xa, xb));
    require_exact(run(a / pos), ref_map<float>([](float x, float y) { return x / y; }, xa, xp));
    require_exact(run(-a), ref_map<float>([](float x) { return -x; }, xa));
    require_exact(run(maximum(a, b)), ref_map<float>([](float x, float y) { return std::max(x, y); }, xa, xb));
    require_exact(run(minimum(a, b)), ref_map<float>([](float x, float y) { return std::min(x, y); }, xa, xb));
    // A deeper tree, every leaf broadcast its own way, evaluated by xtensor end to end.
    require_exact(run((a - b) * (pos + 1.0f) - a / pos), (xa - xb) * (xp + 1.0f) - xa / xp);
}

// pow and C++ numbers mixed into expressions (compiled for one rank: the broadcasting is the
// same as above, this checks the scalar handling).
template <int R>
void scalar_trial(std::mt19937& rng) {
    const auto out = random_shape<R>(rng);
    const auto a = random_operand<float>(operand_shape<R>(out, rng), rng);
    const auto b = random_operand<float>(operand_shape<R - 1>(out, rng), rng);
    const auto pos = random_operand<float>(operand_shape<R - 1>(out, rng), rng, 0.25, 3);
    INFO("a " << a.shape() << " strides " << a.strides() << ", b " << b.shape() << ", pos " << pos.shape());
    const auto xa = to_xt(a), xb = to_xt(b), xp = to_xt(pos);
    require_close(run(pow(pos, a)), ref_map<float>([](float x, float y) { return std::pow(x, y); }, xp, xa));
    // Numbers take the tensor's type: x * 2 multiplies by 2.0f.
    require_exact(run(a * 2), ref_map<float>([](float x) { return x * 2.0f; }, xa));
    require_exact(run(2 - a), ref_map<float>([](float x) { return 2.0f - x; }, xa));
    require_exact(run(a / 4.0), ref_map<float>([](float x) { return x / 4.0f; }, xa));
    require_exact(run(maximum(a, 0.5f)), ref_map<float>([](float x) { return std::max(x, 0.5f); }, xa));
    require_exact(run(minimum(0, b)), ref_map<float>([](float x) { return std::min(0.0f, x); }, xb));
}

// Comparisons on operands with many ties (small whole numbers stored as floats).
template <int R, int RA, int RB>
void logic_trial(std::mt19937& rng) {
    const auto out = random_shape<R>(rng);
    const auto a = random_operand<float>(operand_shape<RA>(out, rng), rng, -2, 2, true);
    const auto b = random_operand<float>(operand_shape<RB>(out, rng), rng, -2, 2, true);
    const auto m = random_operand<bool>(operand_shape<RA>(out, rng), rng);
    const auto n = random_operand<bool>(operand_shape<RB>(out, rng), rng);
    INFO("a " << a.shape() << " b " << b.shape() << " m " << m.shape() << " n " << n.shape());
    const auto xa = to_xt(a), xb = to_xt(b);
    const auto xm = to_xt(m), xn = to_xt(n);
    require_exact(run(a == b), ref_map<bool>([](float x, float y) { return x == y; }, xa, xb));
    require_exact(run(a != b), ref_map<bool>([](float x, float y) { return x != y; }, xa, xb));
    require_exact(run(a < b), ref_map<bool>([](float x, float y) { return x < y; }, xa, xb));
    require_exact(run(a <= b), ref_map<bool>([](float x, float y) { return x <= y; }, xa, xb));
    require_exact(run(a > b), ref_map<bool>([](float x, float y) { return x > y; }, xa, xb));
    require_exact(run(a >= b), ref_map<bool>([](float x, float y) { return x >= y; }, xa, xb));
    require_exact(run(a > 0), ref_map<bool>([](float x) { return x > 0.0f; }, xa));
    require_exact(run(1 <= b), ref_map<bool>([](float x) { return 1.0f <= x; }, xb));
    require_exact(run(m == n), ref_map<bool>([](bool x, bool y) { return x == y; }, xm, xn));
}

// Logic and where(), compiled for one rank combination (the broadcasting is exercised above).
template <int R, int RA, int RB>
void where_trial(std::mt19937& rng) {
    const auto out = random_shape<R>(rng);
    const auto a = random_operand<float>(operand_shape<RA>(out, rng), rng, -2, 2, true);
    const auto b = random_operand<float>(operand_shape<RB>(out, rng), rng, -2, 2, true);
    const auto m = random_operand<bool>(operand_shape<RA>(out, rng), rng);
    const auto n = random_operand<bool>(operand_shape<RB>(out, rng), rng);
    INFO("a " << a.shape() << " b " << b.shape() << " m " << m.shape() << " n " << n.shape());
    const auto xa = to_xt(a), xb = to_xt(b);
    const auto xm = to_xt(m), xn = to_xt(n);
    require_exact(run(m && n), ref_map<bool>([](bool x, bool y) { return x && y; }, xm, xn));
    require_exact(run(m || n), ref_map<bool>([](bool x, bool y) { return x || y; }, xm, xn));
    require_exact(run(!m), ref_map<bool>([](bool x) { return !x; }, xm));
    require_exact(run(logical_not(n)), ref_map<bool>([](bool x) { return !x; }, xn));
    require_exact(run(logical_xor(m, n)), ref_map<bool>([](bool x, bool y) { return x != y; }, xm, xn));
    require_exact(run(logical_and(m, b > 0)), ref_map<bool>([](bool x, float y) { return x && y > 0; }, xm, xb));
    require_exact(run(logical_or(a < 0, n)), ref_map<bool>([](float x, bool y) { return x < 0 || y; }, xa, xn));
    require_exact(run(where(m, a, b)), ref_map<float>([](bool c, float x, float y) { return c ? x : y; }, xm, xa, xb));
    require_exact(run(where(a > b, a, b)), ref_map<float>([](float x, float y) { return x > y ? x : y; }, xa, xb));
    require_exact(run(where(n, a, 0)), ref_map<float>([](bool c, float x) { return c ? x : 0.0f; }, xn, xa));
    require_exact(run(where(m, 1.5, b)), ref_map<float>([](bool c, float y) { return c ? 1.5f : y; }, xm, xb));
    // The condition broadcast against both branches, evaluated by xtensor end to end.
    require_exact(run(where(m && n, a * 2, -b)), xt::where(xm && xn, xa * 2.0f, -xb));
}

template <int R>
void unary_trial(std::mt19937& rng) {
    const auto shape = random_shape<R>(rng);
    const auto x = random_operand<float>(shape, rng, -3, 3);
    const auto p = random_operand<float>(shape, rng, 0.1, 5);
    INFO("x " << x.shape() << " strides " << x.strides() << ", p strides " << p.strides());
    const auto xx = to_xt(x), xp = to_xt(p);
    auto f = [&](auto fn) { return ref_map<float>(fn, xx); };
    auto g = [&](auto fn) { return ref_map<float>(fn, xp); };
    require_exact(run(abs(x)), f([](float v) { return std::fabs(v); }));
    require_exact(run(square(x)), f([](float v) { return v * v; }));
    require_exact(run(relu(x)), f([](float v) { return v > 0 ? v : 0.0f; }));
    require_exact(run(reciprocal(p)), g([](float v) { return 1.0f / v; }));
    require_close(run(exp(x)), f([](float v) { return std::exp(v); }));
    require_close(run(log(p)), g([](float v) { return std::log(v); }));
    require_close(run(sqrt(p)), g([](float v) { return std::sqrt(v); }));
    require_close(run(rsqrt(p)), g([](float v) { return float(1.0 / std::sqrt(double(v))); }));
    require_close(run(sin(x)), f([](float v) { return std::sin(v); }));
    require_close(run(cos(x)), f([](float v) { return std::cos(v); }));
    require_close(run(tanh(x)), f([](float v) { return std::tanh(v); }));
    require_close(run(erf(x)), f([](float v) { return std::erf(v); }));
    // Activations against double-precision definitions.
    require_close(run(sigmoid(x)), f([](float v) { return float(1.0 / (1.0 + std::exp(-double(v)))); }));
    require_close(run(gelu(x)), f([](float v) { return float(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)))); }));
    require_close(run(quick_gelu(x)), f([](float v) { return float(v / (1.0 + std::exp(-1.702 * v))); }));
    require_close(run(pow(p, 2)), g([](float v) { return v * v; }));
    require_close(run(pow(2, x)), f([](float v) { return std::exp2(v); }));
    // A fused chain, evaluated by xtensor end to end.
    require_close(run(exp(-square(x)) * sigmoid(p) + log(p)),
                  xt::exp(-(xx * xx)) / (1.0f + xt::exp(-xp)) + xt::log(xp), 4e-6);
}

}  // namespace

TEST_CASE("broadcast_shapes: NumPy rules and errors naming both shapes") {
    REQUIRE(broadcast_shapes(Shape<3>{8, 1, 6}, Shape<2>{7, 1}) == Shape<3>{8, 7, 6});
    REQUIRE(broadcast_shapes(Shape<1>{1}, Shape<2>{3, 4}) == Shape<2>{3, 4});
    REQUIRE(broadcast_shapes(Shape<0>{}, Shape<2>{3, 4}) == Shape<2>{3, 4});
    REQUIRE(broadcast_shapes(Shape<2>{0, 1}, Shape<1>{5}) == Shape<2>{0, 5});
    REQUIRE(broadcast_shapes(Shape<2>{1, 0}, Shape<1>{1}) == Shape<2>{1, 0});
    REQUIRE_THROWS_WITH(broadcast_shapes(Shape<1>{3}, Shape<1>{4}), Contains("[3]") && Contains("[4]"));
    REQUIRE_THROWS_AS(broadcast_shapes(Shape<2>{0, 2}, Shape<1>{3}), Error);

    REQUIRE(broadcasts_to(Shape<1>{4}, Shape<2>{3, 4}));
    REQUIRE(broadcasts_to(Shape<2>{1, 4}, Shape<2>{3, 4}));
    REQUIRE_FALSE(broadcasts_to(Shape<2>{3, 1}, Shape<2>{1, 4}));  // would grow the destination
    REQUIRE_FALSE(broadcasts_to(Shape<3>{1, 3, 4}, Shape<2>{3, 4}));

    auto a = Tensor<float, 2>::zeros({2, 3});
    auto b = Tensor<float, 1>::zeros({4});
    auto m = Tensor<bool, 1>::zeros({5});
    REQUIRE_THROWS_WITH(a + b, Contains("[2, 3]") && Contains("[4]") && Contains("add"));
    REQUIRE_THROWS_WITH(a < b, Contains("[2, 3]") && Contains("[4]"));
    REQUIRE_THROWS_WITH(maximum(b, a), Contains("[4]") && Contains("[2, 3]"));
    REQUIRE_THROWS_WITH(where(m, a, 0.0f), Contains("[5]") && Contains("[2, 3]"));
    REQUIRE_THROWS_WITH(where(a > 0, a, b), Contains("[2, 3]") && Contains("[4]"));
    // The error comes when the expression is built, before anything runs.
    REQUIRE_THROWS_AS(exp(a) * (b + 1.0f), Error);
    REQUIRE((a + Tensor<float, 3>::zeros({5, 1, 3})).shape() == Shape<3>{5, 2, 3});
}

TEST_CASE("xtensor reference sanity") {
    // The reference must itself be right: a few values worked out by hand.
    xt::xarray<float> x = {{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}};
    xt::xarray<float> r = {10.0f, 20.0f, 30.0f};
    const xt::xarray<float> y = x * r - 1.0f;
    REQUIRE(y(1, 2) == 179.0f);
    REQUIRE(y(0, 0) == 9.0f);
    auto t = Tensor<float, 2>::from({{1, 2, 3}, {4, 5, 6}}).t();
    const auto xt_t = to_xt(t);
    REQUIRE(xt_t.shape()[0] == 3);
    REQUIRE(xt_t(2, 0) == 3.0f);
    REQUIRE(xt_t(0, 1) == 4.0f);
}

TEST_CASE("arithmetic with broadcasting matches xtensor on random shapes and layouts") {
    std::mt19937 rng(20240601);
    for (int trial = 0; trial < 40; ++trial) {
        arithmetic_trial<2, 2, 1>(rng);
        arithmetic_trial<3, 1, 3>(rng);
        arithmetic_trial<4, 4, 4>(rng);
        arithmetic_trial<4, 4, 2>(rng);
        scalar_trial<3>(rng);
    }
}

TEST_CASE("comparisons logic and where match xtensor on random shapes and layouts") {
    std::mt19937 rng(77);
    for (int trial = 0; trial < 40; ++trial) {
        logic_trial<2, 1, 2>(rng);
        logic_trial<4, 4, 3>(rng);
        where_trial<3, 3, 2>(rng);
    }
}

TEST_CASE("unary functions match xtensor on random shapes and layouts") {
    std::mt19937 rng(4242);
    for (int trial = 0; trial < 60; ++trial) unary_trial<4>(rng);
}

TEST_CASE("casts: float to double exact and float to bf16 rounded") {
    std::mt19937 rng(5);
    for (int trial = 0; trial < 20; ++trial) {
        const auto a = random_operand<float>(random_shape<3>(rng), rng, -1000, 1000);
        const auto xa = to_xt(a);
        require_exact(run(cast<double>(a)), ref_map<double>([](float v) { return double(v); }, xa));
        require_exact(run(cast<double>(a) * 3.0), ref_map<double>([](float v) { return double(v) * 3.0; }, xa));
        require_exact(run(cast<std::int32_t>(a)), ref_map<std::int32_t>([](float v) { return std::int32_t(v); }, xa));
        require_exact(run(cast<float>(cast<double>(a) / 3.0)), ref_map<float>([](float v) { return float(double(v) / 3.0); }, xa));

        // bf16: each element rounds to nearest even; read back in a fused float expression the
        // rounding still happens (the cast is not skipped because the consumer computes in float).
        const auto b = run(cast<bf16>(a));
        STATIC_REQUIRE(std::is_same_v<decltype(b), const Tensor<bf16, 3>>);
        const auto fused = run(cast<float>(cast<bf16>(a)) - a);
        const auto av = logical_values(a);
        const auto bv = logical_values(b);
        const auto fv = logical_values(fused);
        for (std::size_t i = 0; i < av.size(); ++i) {
            REQUIRE(bv[i].bits == bf16(av[i]).bits);
            REQUIRE(fv[i] == float(bf16(av[i])) - av[i]);
        }
        // half too
        const auto h = run(cast<half>(a));
        const auto hv = logical_values(h);
        for (std::size_t i = 0; i < av.size(); ++i) REQUIRE(hv[i].bits == half(av[i]).bits);
    }
    // Exactly the bf16 ties: 1 + 2^-8 rounds to 1, 1 + 3 * 2^-8 to 1 + 2^-6.
    auto ties = Tensor<float, 1>::from({1.0f + 0x1.0p-8f, 1.0f + 3 * 0x1.0p-8f});
    auto tb = eval(cast<bf16>(ties));
    REQUIRE(float(tb(0)) == 1.0f);
    REQUIRE(float(tb(1)) == 1.0f + 0x1.0p-6f);
}

TEST_CASE("integer tensors: arithmetic cast to float and comparisons") {
    std::mt19937 rng(6);
    for (int trial = 0; trial < 20; ++trial) {
        const auto out = random_shape<3>(rng);
        const auto a = random_operand<std::int32_t>(operand_shape<3>(out, rng), rng, -50, 50);
        auto b = random_operand<std::int32_t>(operand_shape<2>(out, rng), rng, 1, 9);
        const auto xa = to_xt(a), xb = to_xt(b);
        require_exact(run(a + b), ref_map<std::int32_t>([](int x, int y) { return x + y; }, xa, xb));
        require_exact(run(a - b * 3), ref_map<std::int32_t>([](int x, int y) { return x - y * 3; }, xa, xb));
        require_exact(run(a / b), ref_map<std::int32_t>([](int x, int y) { return x / y; }, xa, xb));  // toward zero
        require_exact(run(-a), ref_map<std::int32_t>([](int x) { return -x; }, xa));
        require_exact(run(abs(a)), ref_map<std::int32_t>([](int x) { return std::abs(x); }, xa));
        require_exact(run(maximum(a, b)), ref_map<std::int32_t>([](int x, int y) { return std::max(x, y); }, xa, xb));
        require_exact(run(a >= b), ref_map<bool>([](int x, int y) { return x >= y; }, xa, xb));
        require_exact(run(cast<float>(a)), ref_map<float>([](int x) { return float(x); }, xa));
        require_exact(run(cast<float>(a) / 4.0f), ref_map<float>([](int x) { return float(x) / 4.0f; }, xa));
        require_exact(run(where(a > 0, a, b)), ref_map<std::int32_t>([](int x, int y) { return x > 0 ? x : y; }, xa, xb));
    }
    // int64 keeps values beyond 32 bits; uint8 wraps like C++ unsigned char arithmetic stores.
    auto big = Tensor<std::int64_t, 1>::from({3'000'000'000LL, -5});
    auto doubled = eval(big * 2);
    REQUIRE(doubled(0) == 6'000'000'000LL);
    REQUIRE(doubled(1) == -10);
    auto u = Tensor<std::uint8_t, 1>::from({250, 3});
    auto sum_u = eval(u + std::uint8_t(10));
    REQUIRE(sum_u(0) == std::uint8_t(260 % 256));
    REQUIRE(sum_u(1) == 13);
}

TEST_CASE("16-bit float expressions compute in float and round once") {
    std::mt19937 rng(8);
    const auto shape = Shape<2>{17, 23};
    const auto fa = random_operand<float>(shape, rng), fb = random_operand<float>(shape, rng),
               fc = random_operand<float>(Shape<2>{1, 23}, rng);
    const Tensor<bf16, 2> a = cast<bf16>(fa), b = cast<bf16>(fb);
    const Tensor<bf16, 1> c = cast<bf16>(fc[0]);
    const Tensor<half, 2> ha = cast<half>(fa), hb = cast<half>(fb);
    auto y = run((a + b) * c);
    auto z = run(exp(a) / (b * b + 1.0f));
    auto w = run((ha - hb) * ha);
    STATIC_REQUIRE(std::is_same_v<decltype(y), Tensor<bf16, 2>>);
    STATIC_REQUIRE(std::is_same_v<decltype(w), Tensor<half, 2>>);
    int differs_from_double_rounding = 0;
    for (index_t i = 0; i < 17; ++i)
        for (index_t j = 0; j < 23; ++j) {
            const float av = float(a(i, j)), bv = float(b(i, j)), cv = float(c(j));
            REQUIRE(y(i, j).bits == bf16((av + bv) * cv).bits);
            REQUIRE(float(z(i, j)) == Approx(float(bf16(std::exp(av) / (bv * bv + 1.0f)))).epsilon(1e-2));
            const float hav = float(ha(i, j)), hbv = float(hb(i, j));
            REQUIRE(w(i, j).bits == half((hav - hbv) * hav).bits);
            // Rounding the intermediate sum to bf16 would often give another answer.
            differs_from_double_rounding += bf16(float(bf16(av + bv)) * cv).bits != y(i, j).bits;
        }
    REQUIRE(differs_from_double_rounding > 0);
    // Comparisons of 16-bit floats give bool.
    auto gt = run(a > b);
    STATIC_REQUIRE(std::is_same_v<decltype(gt), Tensor<bool, 2>>);
    REQUIRE(gt(3, 4) == (float(a(3, 4)) > float(b(3, 4))));
}

TEST_CASE("NaN and infinity through maximum minimum and relu") {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    auto a = Tensor<float, 1>::from({nan, 1.0f, nan, -inf, 2.0f});
    auto b = Tensor<float, 1>::from({1.0f, nan, nan, 0.0f, inf});
    auto mx = eval(maximum(a, b));
    auto mn = eval(minimum(a, b));
    // NaN in either operand propagates, as torch.maximum/minimum.
    REQUIRE(std::isnan(mx(0)));
    REQUIRE(std::isnan(mx(1)));
    REQUIRE(std::isnan(mx(2)));
    REQUIRE(mx(3) == 0.0f);
    REQUIRE(mx(4) == inf);
    REQUIRE(std::isnan(mn(0)));
    REQUIRE(std::isnan(mn(1)));
    REQUIRE(mn(3) == -inf);
    REQUIRE(mn(4) == 2.0f);
    auto r = eval(exp(a) * 0.0f);
    REQUIRE(std::isnan(r(0)));
    REQUIRE(r(3) == 0.0f);
}

TEST_CASE("expressions hold their operands by value") {
    auto make = [] {
        auto a = Tensor<float, 1>::from({1, 2, 3});
        auto b = Tensor<float, 1>::from({10, 20, 30});
        return exp(a * 0.0f) + b;  // a and b go out of scope here
    };
    const auto e = make();
    auto r = eval(e);
    REQUIRE(logical_values(r) == std::vector<float>{11, 21, 31});
    // Nothing runs until evaluation: changing an operand after building changes the result.
    auto x = Tensor<float, 1>::from({1, 2});
    auto lazy = x * 2.0f;
    x(0) = 100.0f;
    REQUIRE(eval(lazy)(0) == 200.0f);
    std::ostringstream os;
    os << (x + 1.0f);
    REQUIRE(os.str() == "tensor([101.0000,   3.0000], dtype=float32, shape=[2])");
}
