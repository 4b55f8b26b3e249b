// Philox-4x32-10 and the random factories (weft/core/philox.hpp, Tensor::rand/randn/randint).
//
// Statistical checks use 10^6 samples and 5-sigma bounds, so a correct generator fails them with
// probability below 10^-6 each; a biased or correlated one fails them reliably.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <weft/core.hpp>

using namespace weft;

namespace {

template <class T, int R>
std::vector<double> as_doubles(const Tensor<T, R>& t) {
    REQUIRE(t.is_contiguous());
    std::vector<double> v(std::size_t(t.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = double(t.data()[i]);
    return v;
}

template <class T, int R>
bool same_values(const Tensor<T, R>& a, const Tensor<T, R>& b) {
    if (!(a.shape() == b.shape())) return false;
    for (index_t i = 0; i < a.numel(); ++i)
        if (std::memcmp(&a.data()[i], &b.data()[i], sizeof(T)) != 0) return false;
    return true;
}

double mean_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / double(v.size());
}

double var_of(const std::vector<double>& v) {
    const double m = mean_of(v);
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return s / double(v.size());
}

// Pearson's chi-square statistic of `counts` against equal expected counts.
double chi_square(const std::vector<double>& counts) {
    double total = 0;
    for (double c : counts) total += c;
    const double expected = total / double(counts.size());
    double chi = 0;
    for (double c : counts) chi += (c - expected) * (c - expected) / expected;
    return chi;
}

PhiloxBlock kat(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, std::uint32_t k0,
                std::uint32_t k1) {
    // weft packs (c0, c1) as the 64-bit counter, (c2, c3) as the subsequence, (k0, k1) as the key,
    // low word first.
    return philox4x32_10(std::uint64_t(c1) << 32 | c0, std::uint64_t(c3) << 32 | c2, std::uint64_t(k1) << 32 | k0);
}

}  // namespace

TEST_CASE("philox4x32_10: Random123 known-answer vectors") {
    // kat_vectors from Random123 1.09: philox4x32 10 <ctr> <key> <expected>
    auto z = kat(0, 0, 0, 0, 0, 0);
    REQUIRE(z.w[0] == 0x6627e8d5u);
    REQUIRE(z.w[1] == 0xe169c58du);
    REQUIRE(z.w[2] == 0xbc57ac4cu);
    REQUIRE(z.w[3] == 0x9b00dbd8u);

    auto f = kat(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
    REQUIRE(f.w[0] == 0x408f276du);
    REQUIRE(f.w[1] == 0x41c83b0eu);
    REQUIRE(f.w[2] == 0xa20bc7c6u);
    REQUIRE(f.w[3] == 0x6d5451fdu);

    auto pi = kat(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
    REQUIRE(pi.w[0] == 0xd16cfe09u);
    REQUIRE(pi.w[1] == 0x94fdccebu);
    REQUIRE(pi.w[2] == 0x5001e420u);
    REQUIRE(pi.w[3] == 0x24126ea1u);
}

TEST_CASE("philox4x32_10: every input word matters") {
    const auto base = philox4x32_10(5, 6, 7);
    const PhiloxBlock others[] = {philox4x32_10(4, 6, 7), philox4x32_10(5, 7, 7), philox4x32_10(5, 6, 8),
                                  philox4x32_10(5 + (1ull << 32), 6, 7), philox4x32_10(5, 6 + (1ull << 32), 7),
                                  philox4x32_10(5, 6, 7 + (1ull << 32))};
    for (const auto& o : others) {
        int differing = 0;
        for (int k = 0; k < 4; ++k) differing += o.w[k] != base.w[k];
        REQUIRE(differing == 4);
    }
}

TEST_CASE("Generator: same seed gives identical tensors and each call advances") {
    Generator a(1234), b(1234), c(1235);
    auto x1 = Tensor<float, 2>::rand({7, 9}, a);
    auto y1 = Tensor<float, 2>::rand({7, 9}, b);
    auto z1 = Tensor<float, 2>::rand({7, 9}, c);
    REQUIRE(same_values(x1, y1));
    REQUIRE_FALSE(same_values(x1, z1));

    // 63 floats at four per Philox block use 16 blocks.
    REQUIRE(a.offset == 16);
    auto x2 = Tensor<float, 2>::rand({7, 9}, a);
    REQUIRE(a.offset == 32);
    REQUIRE_FALSE(same_values(x1, x2));
    // No element repeats across the two calls (a reused counter would repeat whole blocks).
    std::vector<float> all(x1.data(), x1.data() + 63);
    all.insert(all.end(), x2.data(), x2.data() + 63);
    std::sort(all.begin(), all.end());
    REQUIRE(std::adjacent_find(all.begin(), all.end()) == all.end());

    // Blocks used per element: randn float 2 per block, double rand 2, randn double 1, randint 2.
    Generator g(1);
    Tensor<float, 1>::randn({5}, g);
    REQUIRE(g.offset == 3);
    Tensor<double, 1>::rand({5}, g);
    REQUIRE(g.offset == 6);
    Tensor<double, 1>::randn({5}, g);
    REQUIRE(g.offset == 11);
    Tensor<std::int32_t, 1>::randint(0, 10, {5}, g);
    REQUIRE(g.offset == 14);
    Tensor<float, 1>::rand({0}, g);
    REQUIRE(g.offset == 14);

    // Continuing a stream equals starting one at that offset.
    Generator h(1);
    h.offset = 6;
    auto from_h = Tensor<double, 1>::randn({5}, h);
    Generator k(1);
    Tensor<float, 1>::randn({5}, k);
    Tensor<double, 1>::rand({5}, k);
    REQUIRE(same_values(from_h, Tensor<double, 1>::randn({5}, k)));
}

TEST_CASE("random tensors depend on (seed offset index) only") {
    Generator a(99), b(99);
    auto small = Tensor<float, 1>::rand({10}, a);
    auto big = Tensor<float, 2>::rand({10, 10}, b);
    for (index_t i = 0; i < 10; ++i) REQUIRE(small(i) == big(0, i));  // the shape does not matter

    Generator c(5), d(5);
    auto n1 = Tensor<float, 1>::randn({7}, c);
    auto n2 = Tensor<float, 3>::randn({2, 3, 5}, d);
    for (index_t i = 0; i < 7; ++i) REQUIRE(n1(i) == n2.data()[i]);

    // A tensor's elements equal the documented functor of the linear index.
    Generator e(77);
    e.offset = 3;
    auto u = Tensor<float, 1>::rand({9}, e);
    const random::Uniform<float> fn{77, 3, 0.0f, 1.0f};
    for (index_t i = 0; i < 9; ++i) REQUIRE(u(i) == fn(i));
}

TEST_CASE("manual_seed resets the default generator") {
    manual_seed(2024);
    REQUIRE(default_generator().seed == 2024);
    REQUIRE(default_generator().offset == 0);
    auto a = Tensor<float, 1>::rand({20});
    auto b = Tensor<float, 1>::rand({20});
    REQUIRE_FALSE(same_values(a, b));
    REQUIRE(default_generator().offset == 10);
    manual_seed(2024);
    REQUIRE(same_values(a, Tensor<float, 1>::rand({20})));
    Generator explicit_gen(2024);
    explicit_gen.offset = 5;
    REQUIRE(same_values(b, Tensor<float, 1>::rand({20}, explicit_gen)));
    manual_seed(2025);
    REQUIRE_FALSE(same_values(a, Tensor<float, 1>::rand({20})));
}

TEST_CASE("rand float: uniform on the half-open unit interval") {
    Generator g(11);
    const int n = 1'000'000;
    auto v = as_doubles(Tensor<float, 1>::rand({n}, g));
    REQUIRE(*std::min_element(v.begin(), v.end()) >= 0.0);
    REQUIRE(*std::max_element(v.begin(), v.end()) < 1.0);
    REQUIRE(std::abs(mean_of(v) - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
    REQUIRE(std::abs(var_of(v) - 1.0 / 12) < 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
    std::vector<double> bins(100);
    for (double x : v) bins[std::size_t(x * 100)] += 1;
    REQUIRE(chi_square(bins) < 180);  // 99 degrees of freedom: p(chi2 > 180) ~ 1e-6
    // Neighbours (same block and across blocks) are uncorrelated.
    double c1 = 0, c4 = 0;
    for (int i = 0; i + 4 < n; ++i) {
        c1 += (v[i] - 0.5) * (v[i + 1] - 0.5);
        c4 += (v[i] - 0.5) * (v[i + 4] - 0.5);
    }
    const double bound = 5 * (1.0 / 12) / std::sqrt(double(n));
    REQUIRE(std::abs(c1 / n) < bound);
    REQUIRE(std::abs(c4 / n) < bound);
}

TEST_CASE("rand double: uniform with 53-bit resolution") {
    Generator g(12);
    const int n = 1'000'000;
    auto t = Tensor<double, 1>::rand({n}, g);
    auto v = as_doubles(t);
    REQUIRE(*std::min_element(v.begin(), v.end()) >= 0.0);
    REQUIRE(*std::max_element(v.begin(), v.end()) < 1.0);
    REQUIRE(std::abs(mean_of(v) - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
    REQUIRE(std::abs(var_of(v) - 1.0 / 12) < 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
    // More than float's 24 bits: most values are not multiples of 2^-24.
    int fine = 0;
    for (double x : v) fine += std::ldexp(x, 24) != std::floor(std::ldexp(x, 24));
    REQUIRE(fine > n * 0.99);
}

TEMPLATE_TEST_CASE("rand of 16-bit floats stays below 1", "", bf16, half) {
    Generator g(13);
    const int n = 1'000'000;
    auto v = as_doubles(Tensor<TestType, 1>::rand({n}, g));
    REQUIRE(*std::min_element(v.begin(), v.end()) >= 0.0);
    REQUIRE(*std::max_element(v.begin(), v.end()) < 1.0);
    // Rounding to 8 or 11 bits moves the mean by at most half a unit.
    REQUIRE(std::abs(mean_of(v) - 0.5) < 5 * std::sqrt(1.0 / 12 / n) + 1.0 / 512);
}

TEST_CASE("randn float: standard normal") {
    Generator g(21);
    const int n = 1'000'000;
    auto v = as_doubles(Tensor<float, 1>::randn({n}, g));
    for (double x : v) REQUIRE(std::isfinite(x));
    REQUIRE(std::abs(mean_of(v)) < 5 / std::sqrt(double(n)));
    REQUIRE(std::abs(var_of(v) - 1.0) < 5 * std::sqrt(2.0 / n));
    // The cos (even) and sin (odd) halves are each standard normal, and uncorrelated.
    std::vector<double> even, odd;
    double cross = 0;
    for (int i = 0; i < n; i += 2) {
        even.push_back(v[i]);
        odd.push_back(v[i + 1]);
        cross += v[i] * v[i + 1];
    }
    const double half_n = n / 2.0;
    REQUIRE(std::abs(mean_of(even)) < 5 / std::sqrt(half_n));
    REQUIRE(std::abs(mean_of(odd)) < 5 / std::sqrt(half_n));
    REQUIRE(std::abs(var_of(even) - 1.0) < 5 * std::sqrt(2.0 / half_n));
    REQUIRE(std::abs(var_of(odd) - 1.0) < 5 * std::sqrt(2.0 / half_n));
    REQUIRE(std::abs(cross / half_n) < 5 / std::sqrt(half_n));
    // Shape: P(|x| < 1) = 0.682689, P(|x| < 2) = 0.954500.
    double in1 = 0, in2 = 0;
    for (double x : v) {
        in1 += std::abs(x) < 1;
        in2 += std::abs(x) < 2;
    }
    REQUIRE(std::abs(in1 / n - 0.682689) < 5 * std::sqrt(0.682689 * 0.317311 / n));
    REQUIRE(std::abs(in2 / n - 0.954500) < 5 * std::sqrt(0.9545 * 0.0455 / n));
}

TEST_CASE("randn double: standard normal") {
    Generator g(22);
    const int n = 1'000'000;
    auto v = as_doubles(Tensor<double, 1>::randn({n}, g));
    for (double x : v) REQUIRE(std::isfinite(x));
    REQUIRE(std::abs(mean_of(v)) < 5 / std::sqrt(double(n)));
    REQUIRE(std::abs(var_of(v) - 1.0) < 5 * std::sqrt(2.0 / n));
    double in1 = 0, lag = 0;
    for (int i = 0; i < n; ++i) {
        in1 += std::abs(v[i]) < 1;
        if (i + 1 < n) lag += v[i] * v[i + 1];
    }
    REQUIRE(std::abs(in1 / n - 0.682689) < 5 * std::sqrt(0.682689 * 0.317311 / n));
    REQUIRE(std::abs(lag / n) < 5 / std::sqrt(double(n)));
    // bf16 randn: same stream rounded once.
    Generator a(3), b(3);
    auto f = Tensor<float, 1>::randn({100}, a);
    auto h = Tensor<bf16, 1>::randn({100}, b);
    for (index_t i = 0; i < 100; ++i) REQUIRE(h(i).bits == bf16(f(i)).bits);
}

TEST_CASE("randint: range and uniformity") {
    Generator g(31);
    const int n = 1'000'000;
    auto t = Tensor<std::int32_t, 1>::randint(-3, 7, {n}, g);
    std::vector<double> bins(10);
    for (index_t i = 0; i < n; ++i) {
        const std::int32_t x = t.data()[i];
        REQUIRE(x >= -3);
        REQUIRE(x < 7);
        bins[std::size_t(x + 3)] += 1;
    }
    REQUIRE(chi_square(bins) < 45);  // 9 degrees of freedom: p(chi2 > 45) ~ 1e-6

    // A range of one value.
    auto one = Tensor<std::uint8_t, 1>::randint(5, 6, {100}, g);
    for (index_t i = 0; i < 100; ++i) REQUIRE(one(i) == 5);

    // Ranges beyond 32 bits use 64-bit draws: both halves of the range appear.
    const std::int64_t lo = -(std::int64_t(1) << 40), hi = std::int64_t(1) << 41;
    auto big = Tensor<std::int64_t, 1>::randint(lo, hi, {100000}, g);
    std::int64_t below_zero = 0, above_2_40 = 0;
    for (index_t i = 0; i < big.numel(); ++i) {
        const std::int64_t x = big.data()[i];
        REQUIRE(x >= lo);
        REQUIRE(x < hi);
        below_zero += x < 0;
        above_2_40 += x >= (std::int64_t(1) << 40);
    }
    // P(x < 0) = 1/3, P(x >= 2^40) = 1/3.
    REQUIRE(std::abs(double(below_zero) / 100000 - 1.0 / 3) < 0.01);
    REQUIRE(std::abs(double(above_2_40) / 100000 - 1.0 / 3) < 0.01);

    REQUIRE_THROWS_AS((Tensor<std::int32_t, 1>::randint(3, 3, {2}, g)), Error);
    REQUIRE_THROWS_AS((Tensor<std::int32_t, 1>::randint(4, 3, {2}, g)), Error);
}
