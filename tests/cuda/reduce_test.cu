// Reductions on the GPU (Executor<Cuda>::reduce) against the CPU executor: sum, mean, max, min,
// argmax, argmin and var over random sets of axes, with and without keepdim, ties and NaNs.
// (reduce_large_test.cu: fused and non-contiguous operands, integers, the split path.)
//
// The CPU sums floats in double, the GPU in float (reduce.hpp), so float sums compare within
// float rounding of the partial sums (tolerance grows with sqrt of the count); max, min, argmax,
// argmin and integer sums compare exactly.
#include "common.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace weft;
using namespace weft_test;

namespace {

double sum_tolerance(index_t count) { return 2e-5 * std::sqrt(double(count)) + 1e-5; }

// `n` distinct axes of a rank-R tensor, drawn at random (sorted or not: order must not matter).
template <int N>
void random_axes(std::mt19937& rng, int rank, int (&axes)[N]) {
    std::vector<int> all(static_cast<std::size_t>(rank));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    for (int k = 0; k < N; ++k) axes[k] = (rng() % 2) ? all[std::size_t(k)] : all[std::size_t(k)] - rank;  // negative too
}

template <int N>
index_t count_of(const Shape<4>& s, const int (&axes)[N]) {
    index_t c = 1;
    for (int a : axes) c *= s[a < 0 ? a + 4 : a];
    return c;
}

// Every reduction over the same N random axes of x, on both devices.
template <int N>
void check_axes(const Tensor<float, 4, Cpu>& x, const Tensor<float, 4, Cuda>& xg, const int (&axes)[N]) {
    std::string names;
    for (int a : axes) names += std::to_string(a) + " ";
    INFO("axes " << names);
    const index_t count = count_of(x.shape(), axes);
    const double tol = sum_tolerance(count);
    require_close(sum(xg, axes), sum(x, axes), 1e-5, tol);
    require_close(sum(xg, axes, keepdim), sum(x, axes, keepdim), 1e-5, tol);
    require_close(mean(xg, axes), mean(x, axes), 1e-5, tol / double(count));
    require_close(mean(xg, axes, keepdim), mean(x, axes, keepdim), 1e-5, tol / double(count));
    require_identical(max(xg, axes), max(x, axes));
    require_identical(min(xg, axes, keepdim), min(x, axes, keepdim));
    require_close(var(xg, axes), var(x, axes), 1e-4, 1e-5);
    require_close(var(xg, axes, keepdim, 0), var(x, axes, keepdim, 0), 1e-4, 1e-5);
}

}  // namespace

TEST_CASE("cuda: sum, mean, max, min and var over random axes match the CPU", "[cuda]") {
    const Shape<4> s{5, 6, 7, 33};
    const auto x = randn_host(s, 100);
    const auto xg = to_gpu(x);
    std::mt19937 rng(2024);
    for (int round = 0; round < 4; ++round) {
        int a1[1], a2[2], a3[3];
        random_axes(rng, 4, a1);
        random_axes(rng, 4, a2);
        random_axes(rng, 4, a3);
        check_axes(x, xg, a1);
        check_axes(x, xg, a2);
        check_axes(x, xg, a3);
    }
    const int all[4] = {3, 1, 0, 2};
    check_axes(x, xg, all);
    // The all-axes forms return rank 0.
    REQUIRE(std::fabs(double(sum(xg).item()) - double(sum(x).item())) <= sum_tolerance(x.numel()));
    REQUIRE(max(xg).item() == max(x).item());
    REQUIRE(min(xg).item() == min(x).item());
}

TEST_CASE("cuda: argmax and argmin keep the first position, with ties and NaNs", "[cuda]") {
    // Small integers as floats: every row has many ties for its maximum and minimum.
    Generator g(7);
    const Tensor<float, 3, Cpu> x = cast<float>(Tensor<std::int32_t, 3, Cpu>::randint(0, 5, {6, 50, 40}, g));
    const auto xg = to_gpu(x);
    for (int axis : {0, 1, 2, -1}) {
        INFO("axis " << axis);
        require_identical(argmax(xg, axis), argmax(x, axis));
        require_identical(argmin(xg, axis), argmin(x, axis));
    }
    // A NaN wins over every number (the first NaN, when there are several).
    auto y = randn_host(Shape<2>{8, 300}, 101);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    y(1, 17) = nan;
    y(1, 250) = nan;
    y(5, 299) = nan;
    y(6, 0) = nan;
    const auto yg = to_gpu(y);
    require_identical(argmax(yg, 1), argmax(y, 1));
    require_identical(argmin(yg, 1), argmin(y, 1));
    require_identical(argmax(yg, 0), argmax(y, 0));
    const auto am = argmax(yg, 1).to<Cpu>();
    CHECK(am(1) == 17);
    CHECK(am(5) == 299);
    CHECK(am(6) == 0);
    const auto mx = max(yg, 1).to<Cpu>();
    CHECK(std::isnan(mx(1)));
    CHECK(!std::isnan(mx(0)));
}
