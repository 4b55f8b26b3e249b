// Reductions (weft/expr/reduce.hpp) against xtensor on random shapes, axis subsets and layouts.
//
// The reference: xtensor's lazy reducers (xt::sum, xt::amax, xt::amin, xt::argmax, xt::argmin)
// over a double copy of the operand's logical values. Mean and variance are built from xt::sum:
// xtensor 0.24's xt::mean/xt::variance go through its "immediate" evaluation strategy, which
// crashes with GCC 12 (xtensor-stack/xtensor#2785), so they are not used.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

// xtensor 0.24's svector::insert (reached from xt::argmax) trips GCC 12's -Warray-bounds on a
// branch it never takes; the warning is about xtensor's code, not these tests.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xtensor.hpp>
#pragma GCC diagnostic pop

#include <weft/weft.hpp>

#include "support/tensor_values.hpp"

using namespace weft;
using weft::test::iota;
using weft::test::logical_values;
using Catch::Contains;

namespace {

template <int R>
std::vector<std::size_t> xt_shape(const Shape<R>& s) {
    std::vector<std::size_t> v;
    for (int d = 0; d < R; ++d) v.push_back(std::size_t(s[d]));
    return v;
}

// The operand's logical values as doubles, in an xt::xarray of its shape.
template <class T, int R>
xt::xarray<double> to_xt(const Tensor<T, R>& t) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(xt_shape(t.shape()));
    const auto v = logical_values(t);
    for (std::size_t i = 0; i < v.size(); ++i) a.data()[i] = double(v[i]);
    return a;
}

template <int R>
Shape<R> random_shape(std::mt19937& rng) {
    Shape<R> s;
    for (int d = 0; d < R; ++d) s[d] = 1 + index_t(rng() % 5);
    return s;
}

template <class T, int R>
Tensor<T, R> dense_random(const Shape<R>& shape, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    std::vector<T> v;
    for (index_t i = 0; i < shape.numel(); ++i) v.push_back(T(dist(rng)));
    return Tensor<T, R>::from_vector(v, shape);
}

template <class T, int R, std::size_t... I>
Tensor<T, R> expand_to(const Tensor<T, R>& t, const Shape<R>& shape, std::index_sequence<I...>) {
    return t.expand(shape[int(I)]...);
}

// Random values in a random layout: dense, axes reversed, strided slice, or stride-0 expanded.
template <class T, int R>
Tensor<T, R> random_operand(const Shape<R>& shape, std::mt19937& rng) {
    const int layout = int(rng() % 4);
    if (layout == 1 && R >= 2) {
        Shape<R> rev;
        for (int d = 0; d < R; ++d) rev[d] = shape[R - 1 - d];
        auto t = dense_random<T>(rev, rng);
        for (int d = 0; d < R / 2; ++d) t = t.transpose(d, R - 1 - d);
        return t;
    }
    if (layout == 2) {
        const int axis = int(rng() % R);
        Shape<R> big = shape;
        big[axis] = 2 * shape[axis] + 1;
        return dense_random<T>(big, rng).slice(axis, 1, big[axis], 2);
    }
    if (layout == 3) {
        const int axis = int(rng() % R);
        Shape<R> small = shape;
        small[axis] = 1;
        return expand_to(dense_random<T>(small, rng), shape, std::make_index_sequence<R>{});
    }
    return dense_random<T>(shape, rng);
}

// N distinct axes of a rank-R tensor in random order, each written as +a or a - R at random.
template <int R, int N>
std::array<int, N> random_axes(std::mt19937& rng) {
    std::array<int, R> all;
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    std::array<int, N> axes;
    for (int k = 0; k < N; ++k) axes[k] = (rng() % 2) ? all[k] : all[k] - R;
    return axes;
}

template <int R, int N>
std::vector<std::size_t> sorted_axes(const std::array<int, N>& axes) {
    std::vector<std::size_t> v;
    for (int a : axes) v.push_back(std::size_t(a < 0 ? a + R : a));
    std::sort(v.begin(), v.end());
    return v;
}

// Shape with the reduced axes set to 1 (keepdim) or removed.
template <int R>
std::vector<std::size_t> reduced_shape(const Shape<R>& in, const std::vector<std::size_t>& axes, bool keep) {
    std::vector<std::size_t> out;
    for (int d = 0; d < R; ++d) {
        const bool reduced = std::find(axes.begin(), axes.end(), std::size_t(d)) != axes.end();
        if (!reduced) out.push_back(std::size_t(in[d]));
        else if (keep) out.push_back(1);
    }
    return out;
}

template <class T, int R>
void require_values(const Tensor<T, R>& got, const std::vector<std::size_t>& shape, const xt::xarray<double>& ref,
                    double rtol) {
    REQUIRE(xt_shape(got.shape()) == shape);
    REQUIRE(got.numel() == index_t(ref.size()));
    const auto v = logical_values(got);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const double a = double(v[i]), b = ref.data()[i];
        const bool ok = (std::isnan(a) && std::isnan(b)) || std::abs(a - b) <= rtol * (1 + std::abs(b));
        if (!ok && ++bad <= 5) UNSCOPED_INFO("element " << i << ": weft " << a << " xtensor " << b);
    }
    REQUIRE(bad == 0);
}

// Calls f with the axes as a braced array of compile-time length N.
template <int N, class F>
auto with_axes(const std::array<int, N>& axes, F f) {
    int raw[N];
    for (int k = 0; k < N; ++k) raw[k] = axes[k];
    return f(raw);
}

template <int R, int N, bool AllOps>
void reduce_trial(std::mt19937& rng) {
    const auto shape = random_shape<R>(rng);
    const auto x = random_operand<float>(shape, rng);
    const auto axes = random_axes<R, N>(rng);
    const auto ax = sorted_axes<R, N>(axes);
    INFO("shape " << x.shape() << " strides " << x.strides() << " axes " << Catch::Detail::stringify(axes));
    const auto xx = to_xt(x);
    double count = 1;
    for (auto a : ax) count *= double(shape[int(a)]);
    const xt::xarray<double> ref_sum = xt::sum(xx, ax);
    const auto plain = reduced_shape(shape, ax, false), kept = reduced_shape(shape, ax, true);

    with_axes<N>(axes, [&](const int(&a)[N]) {
        // Accumulated in double, rounded once to float.
        require_values(sum(x, a), plain, ref_sum, 1e-6);
        require_values(sum(x, a, keepdim), kept, ref_sum, 1e-6);
        const xt::xarray<double> ref_max = xt::amax(xx, ax);
        require_values(max(x, a, keepdim), kept, ref_max, 0);
        if constexpr (AllOps) {
            require_values(mean(x, a), plain, xt::xarray<double>(ref_sum / count), 1e-6);
            const xt::xarray<double> ref_min = xt::amin(xx, ax);
            require_values(min(x, a), plain, ref_min, 0);
            require_values(max(x, a), plain, ref_max, 0);
            // var = sum((x - mean)^2) / (count - correction), the mean broadcast back by xtensor.
            xt::xarray<double> m = ref_sum / count;
            m.reshape(kept);
            const xt::xarray<double> ss = xt::sum((xx - m) * (xx - m), ax);
            require_values(var(x, a, 0), plain, xt::xarray<double>(ss / count), 1e-5);
            if (count > 1) require_values(var(x, a, keepdim), kept, xt::xarray<double>(ss / (count - 1)), 1e-5);
            // A reduction over an expression runs in one pass and matches reducing its value.
            require_values(sum(x * x - 1.0f, a), plain, xt::xarray<double>(xt::sum(xx * xx - 1.0, ax)), 1e-5);
        }
    });
}

template <int R>
void arg_trial(std::mt19937& rng) {
    const auto shape = random_shape<R>(rng);
    auto x = random_operand<float>(shape, rng);
    const int axis = int(rng() % R);
    const int written = (rng() % 2) ? axis : axis - R;
    INFO("shape " << x.shape() << " strides " << x.strides() << " axis " << written);
    const auto xx = to_xt(x);
    // xtensor 0.24's argmax(x, axis) answers 0 for every 1-d input; its flat form is right there.
    const xt::xarray<std::size_t> ref_max = R == 1 ? xt::xarray<std::size_t>(xt::argmax(xx))
                                                   : xt::xarray<std::size_t>(xt::argmax(xx, std::size_t(axis)));
    const xt::xarray<std::size_t> ref_min = R == 1 ? xt::xarray<std::size_t>(xt::argmin(xx))
                                                   : xt::xarray<std::size_t>(xt::argmin(xx, std::size_t(axis)));
    auto am = argmax(x, written);
    auto an = argmin(x, written);
    STATIC_REQUIRE(std::is_same_v<decltype(am), Tensor<std::int64_t, R - 1>>);
    const auto plain = reduced_shape(shape, {std::size_t(axis)}, false);
    REQUIRE(xt_shape(am.shape()) == plain);
    REQUIRE(xt_shape(an.shape()) == plain);
    const auto vm = logical_values(am), vn = logical_values(an);
    for (std::size_t i = 0; i < vm.size(); ++i) {
        REQUIRE(vm[i] == std::int64_t(ref_max.data()[i]));
        REQUIRE(vn[i] == std::int64_t(ref_min.data()[i]));
    }
}

}  // namespace

TEST_CASE("reductions over random axis subsets match xtensor") {
    std::mt19937 rng(31337);
    for (int trial = 0; trial < 30; ++trial) {
        reduce_trial<1, 1, true>(rng);
        reduce_trial<2, 1, true>(rng);
        reduce_trial<2, 2, false>(rng);
        reduce_trial<3, 1, false>(rng);
        reduce_trial<3, 2, true>(rng);
        reduce_trial<3, 3, false>(rng);
        reduce_trial<4, 1, true>(rng);
        reduce_trial<4, 2, false>(rng);
        reduce_trial<4, 3, true>(rng);
        reduce_trial<4, 4, false>(rng);
    }
}

TEST_CASE("argmax and argmin match xtensor on random shapes") {
    std::mt19937 rng(99);
    for (int trial = 0; trial < 40; ++trial) {
        arg_trial<1>(rng);
        arg_trial<2>(rng);
        arg_trial<3>(rng);
        arg_trial<4>(rng);
    }
}

TEST_CASE("reductions of broadcast expressions run in one pass") {
    std::mt19937 rng(5);
    for (int trial = 0; trial < 20; ++trial) {
        const auto shape = random_shape<3>(rng);
        auto a = random_operand<float>(shape, rng);
        auto b = random_operand<float>(Shape<2>{1, shape[2]}, rng);  // broadcast over two axes
        const auto xa = to_xt(a);
        auto xb = to_xt(b);
        const xt::xarray<double> prod = xa * xb;
        // sum(a * b, {1}): [A, B, C] -> [A, C]
        require_values(sum(a * b, {1}), reduced_shape(shape, {1}, false),
                       xt::xarray<double>(xt::sum(prod, std::vector<std::size_t>{1})), 1e-6);
        // The softmax pattern: x - max(x, -1, keepdim) then exp and sum.
        auto shifted_exp = exp(a - max(a, {-1}, keepdim));
        xt::xarray<double> mx = xt::amax(xa, std::vector<std::size_t>{2});
        mx.reshape({std::size_t(shape[0]), std::size_t(shape[1]), std::size_t(1)});
        const xt::xarray<double> ref = xt::sum(xt::exp(xa - mx), std::vector<std::size_t>{2});
        require_values(sum(shifted_exp, -1), reduced_shape(shape, {2}, false), ref, 1e-5);
        // Reductions return tensors that can be used again.
        auto m = mean(a, {0, 2});
        STATIC_REQUIRE(std::is_same_v<decltype(m), Tensor<float, 1>>);
        require_values(m, {std::size_t(shape[1])},
                       xt::xarray<double>(xt::sum(xa, std::vector<std::size_t>{0, 2}) / double(shape[0] * shape[2])),
                       1e-6);
    }
}

TEST_CASE("full reductions return rank-0 tensors") {
    auto x = Tensor<float, 3>::from({{{1, 2}, {3, 4}}, {{5, 6}, {7, -8}}});
    auto s = sum(x);
    STATIC_REQUIRE(std::is_same_v<decltype(s), Tensor<float, 0>>);
    REQUIRE(s.item() == 20.0f);
    REQUIRE(mean(x).item() == 2.5f);
    REQUIRE(max(x).item() == 7.0f);
    REQUIRE(min(x).item() == -8.0f);
    REQUIRE(sum(x, {0, 1, 2}).item() == 20.0f);
    REQUIRE(sum(x, {2, 0, 1}, keepdim).shape() == Shape<3>{1, 1, 1});
    REQUIRE(sum(x.transpose(0, 2)).item() == 20.0f);
    REQUIRE(max(x.transpose(0, 2), {0, 1}).shape() == Shape<1>{2});
}

TEST_CASE("integer and bool sums accumulate and return int64") {
    // 2e9 fits int32 but three of them do not.
    auto x = Tensor<std::int32_t, 2>::from({{2'000'000'000, 2'000'000'000, 2'000'000'000}, {-7, 3, 1}});
    auto rows = sum(x, 1);
    STATIC_REQUIRE(std::is_same_v<decltype(rows), Tensor<std::int64_t, 1>>);
    REQUIRE(rows(0) == 6'000'000'000LL);
    REQUIRE(rows(1) == -3);
    auto all = sum(x);
    STATIC_REQUIRE(std::is_same_v<decltype(all), Tensor<std::int64_t, 0>>);
    REQUIRE(all.item() == 5'999'999'997LL);
    REQUIRE(sum(x, {0}, keepdim).shape() == Shape<2>{1, 3});
    REQUIRE(sum(x, {0})(1) == 2'000'000'003LL);

    auto u = Tensor<std::uint8_t, 1>::full({1000}, 255);
    REQUIRE(sum(u).item() == 255000);

    auto b = Tensor<bool, 2>::from({{true, false, true}, {true, true, true}});
    auto counts = sum(b, 1);
    STATIC_REQUIRE(std::is_same_v<decltype(counts), Tensor<std::int64_t, 1>>);
    REQUIRE(counts(0) == 2);
    REQUIRE(counts(1) == 3);
    // Counting a comparison: the fused bool expression is summed without a temporary.
    auto v = Tensor<float, 1>::from({-1, 2, 3, -4, 5});
    REQUIRE(sum(v > 0).item() == 3);
    // max/min/argmax of integers stay exact.
    REQUIRE(max(x).item() == 2'000'000'000);
    REQUIRE(min(x, 1)(1) == -7);
    REQUIRE(argmin(x, 1)(1) == 0);
}

TEST_CASE("reductions over empty ranges") {
    auto e = Tensor<float, 2>::zeros({2, 0});
    auto s = sum(e, 1);
    REQUIRE(s.shape() == Shape<1>{2});
    REQUIRE(s(0) == 0.0f);
    REQUIRE(s(1) == 0.0f);
    REQUIRE(sum(e).item() == 0.0f);
    REQUIRE(std::isnan(mean(e, 1)(0)));  // 0 / 0, as torch
    REQUIRE(sum(Tensor<std::int32_t, 1>::zeros({0})).item() == 0);
    // Reducing the non-empty axis of an empty tensor gives an empty result, not an error.
    REQUIRE(sum(e, 0).shape() == Shape<1>{0});
    REQUIRE(max(e, 0).shape() == Shape<1>{0});
    // max, min and arg* have no identity: an empty range is an error naming the shape.
    REQUIRE_THROWS_WITH(max(e, 1), Contains("[2, 0]") && Contains("max"));
    REQUIRE_THROWS_WITH(min(e), Contains("[2, 0]"));
    REQUIRE_THROWS_WITH(argmax(e, 1), Contains("[2, 0]"));
    REQUIRE_THROWS_AS(argmin(e, -1), Error);
    REQUIRE_THROWS_AS(max(Tensor<float, 1>::zeros({0})), Error);
}

TEST_CASE("NaN propagates through max min argmax and argmin") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    auto x = Tensor<float, 2>::from({{1, nan, 3, nan}, {4, 2, 9, 0}, {nan, 5, 6, 7}});
    auto mx = max(x, 1);
    REQUIRE(std::isnan(mx(0)));
    REQUIRE(mx(1) == 9.0f);
    REQUIRE(std::isnan(mx(2)));
    auto mn = min(x, 1);
    REQUIRE(std::isnan(mn(0)));
    REQUIRE(mn(1) == 0.0f);
    // Over the kept-last-axis path too.
    auto col = max(x, 0);
    REQUIRE(std::isnan(col(0)));
    REQUIRE(std::isnan(col(1)));
    REQUIRE(col(2) == 9.0f);
    REQUIRE(std::isnan(col(3)));
    REQUIRE(std::isnan(max(x).item()));
    // argmax/argmin point at the first NaN, as torch.
    auto am = argmax(x, 1);
    REQUIRE(am(0) == 1);
    REQUIRE(am(1) == 2);
    REQUIRE(am(2) == 0);
    auto an = argmin(x, 1);
    REQUIRE(an(0) == 1);
    REQUIRE(an(1) == 3);
    REQUIRE(an(2) == 0);
    auto am0 = argmax(x, 0);
    REQUIRE(am0(0) == 2);
    REQUIRE(am0(1) == 0);
    REQUIRE(am0(2) == 1);
    REQUIRE(am0(3) == 0);
    // NaN in a sum stays NaN.
    REQUIRE(std::isnan(sum(x, 1)(0)));
    REQUIRE(sum(x, 1)(1) == 15.0f);
}

TEST_CASE("argmax and argmin return the first of equal values") {
    auto x = Tensor<float, 2>::from({{1, 3, 3, 2}, {5, 5, 5, 5}, {0, -1, 7, -1}});
    REQUIRE(logical_values(argmax(x, 1)) == std::vector<std::int64_t>{1, 0, 2});
    REQUIRE(logical_values(argmin(x, 1)) == std::vector<std::int64_t>{0, 0, 1});
    auto y = Tensor<std::int32_t, 2>::from({{2, 2}, {2, 1}, {2, 2}});
    REQUIRE(logical_values(argmax(y, 0)) == std::vector<std::int64_t>{0, 0});
    REQUIRE(logical_values(argmin(y, 0)) == std::vector<std::int64_t>{0, 1});
    // Infinities are ordinary values.
    const float inf = std::numeric_limits<float>::infinity();
    auto z = Tensor<float, 1>::from({-inf, -inf, 2, inf, inf});
    REQUIRE(argmax(z, 0).item() == 3);
    REQUIRE(argmin(z, 0).item() == 0);
    REQUIRE(max(z).item() == inf);
    // Along a transposed view the position counts along the view's axis.
    REQUIRE(logical_values(argmax(x.t(), 0)) == std::vector<std::int64_t>{1, 0, 2});
}

TEST_CASE("var: correction 0 and 1 against direct formulas") {
    auto x = Tensor<double, 2>::from({{1, 2, 3, 4}, {2, 2, 2, 2}, {-1, 5, 0, 8}});
    // Row 0: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5.
    auto unbiased = var(x, 1);
    auto biased = var(x, 1, 0);
    REQUIRE(unbiased(0) == Approx(5.0 / 3));
    REQUIRE(biased(0) == Approx(5.0 / 4));
    REQUIRE(unbiased(1) == 0.0);
    // Row 2: mean 3, deviations 16 + 4 + 9 + 25 = 54.
    REQUIRE(unbiased(2) == Approx(18.0));
    REQUIRE(biased(2) == Approx(13.5));
    REQUIRE(var(x, {1}, keepdim, 0).shape() == Shape<2>{3, 1});
    REQUIRE(var(x, {0, 1}, 1).item() == Approx([] {
                const double v[] = {1, 2, 3, 4, 2, 2, 2, 2, -1, 5, 0, 8};
                double m = 0, s = 0;
                for (double a : v) m += a / 12;
                for (double a : v) s += (a - m) * (a - m);
                return s / 11;
            }()));
    // One element with Bessel's correction: 0 / 0.
    REQUIRE(std::isnan(var(Tensor<float, 1>::from({3.0f}), 0).item()));
    REQUIRE(var(Tensor<float, 1>::from({3.0f}), 0, 0).item() == 0.0f);
    // Shifting by a large constant does not change the variance (two passes, not E[x^2] - E[x]^2).
    auto shifted = Tensor<float, 1>::from({10000.0f, 10001.0f, 10002.0f});
    REQUIRE(var(shifted, 0).item() == Approx(1.0f).epsilon(1e-6));
}

TEST_CASE("reductions of 16-bit floats accumulate in wide precision") {
    // 4096 ones: a bf16 accumulator would stop at 256 (256 + 1 rounds back to 256).
    auto ones = Tensor<bf16, 1>::full({4096}, bf16(1.0f));
    auto s = sum(ones);
    STATIC_REQUIRE(std::is_same_v<decltype(s), Tensor<bf16, 0>>);
    REQUIRE(float(s.item()) == 4096.0f);
    REQUIRE(float(mean(ones).item()) == 1.0f);
    auto h = Tensor<half, 2>::full({3, 3000}, half(0.5f));
    auto hs = sum(h, 1);
    REQUIRE(float(hs(2)) == 1500.0f);
    REQUIRE(float(max(h).item()) == 0.5f);
    // var keeps the mean in float: rounded to bf16, the mean of {100, 100, 100.5} (100.1667)
    // would become 100 and the variance 0.125 instead of 0.0833.
    auto b = Tensor<bf16, 1>::from({bf16(100.0f), bf16(100.0f), bf16(100.5f)});
    REQUIRE(float(var(b, 0).item()) == Approx(1.0 / 12).epsilon(0.01));
    REQUIRE(float(var(b, 0, 0).item()) == Approx(1.0 / 18).epsilon(0.01));
    auto hb = Tensor<half, 2>::from({{half(1000.0f), half(1000.0f), half(1000.5f)}});
    REQUIRE(float(var(hb, {1}, keepdim)(0, 0)) == Approx(1.0 / 12).epsilon(0.01));
    // float sums accumulate in double: 2^24 + 1 + 1 + ... is exact in double.
    std::vector<float> v(1001, 1.0f);
    v[0] = 16777216.0f;
    auto f = Tensor<float, 1>::from_vector(v, {1001});
    REQUIRE(sum(f).item() == 16778216.0f);
}

TEST_CASE("reduction axis errors") {
    auto x = Tensor<float, 3>::zeros({2, 3, 4});
    REQUIRE_THROWS_WITH(sum(x, {1, 1}), Contains("twice"));
    REQUIRE_THROWS_WITH(sum(x, {0, -3}), Contains("twice"));  // -3 is axis 0
    REQUIRE_THROWS_WITH(mean(x, {3}), Contains("axis 3"));
    REQUIRE_THROWS_AS(max(x, -4), Error);
    REQUIRE_THROWS_AS(argmax(x, 3), Error);
    REQUIRE_THROWS_AS(var(x, {0, 0}), Error);
    REQUIRE(sum(x, {-1, 0}).shape() == Shape<1>{3});
    // One axis: a braced list, an int, or any other integer type.
    REQUIRE(sum(x, {1}).shape() == Shape<2>{2, 4});
    REQUIRE(sum(x, index_t(-1)).shape() == Shape<2>{2, 3});
    REQUIRE(var(x, {2}).shape() == Shape<2>{2, 3});
    REQUIRE(mean(x, {-2}, keepdim).shape() == Shape<3>{2, 1, 4});
}
