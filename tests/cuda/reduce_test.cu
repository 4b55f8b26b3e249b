// Reductions on the GPU (Executor<Cuda>::reduce) against the CPU executor: sum, mean, max, min,
// argmax, argmin and var over random sets of axes, with and without keepdim, over fused and
// non-contiguous operands, integer and bool inputs, and sizes that take the split (two-pass) path.
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

TEST_CASE("cuda: reductions of fused and non-contiguous expressions", "[cuda]") {
    const auto a = randn_host(Shape<3>{12, 40, 24}, 102);
    const auto b = randn_host(Shape<1>{24}, 103);
    const auto ag = to_gpu(a);
    const auto bg = to_gpu(b);
    // A fused operand: multiplied inside the reduction loop.
    require_close(sum(ag * bg, {0, 2}), sum(a * b, {0, 2}), 1e-5, sum_tolerance(12 * 24));
    // Softmax-style: max with keepdim, then a second pass that broadcasts it.
    const auto m = max(ag, -1, keepdim);
    require_identical(m, max(a, -1, keepdim));
    require_close(sum(exp(ag - m), -1), sum(exp(a - max(a, -1, keepdim)), -1), 1e-5, 1e-5);
    // Non-contiguous inputs: permuted, sliced with a step, expanded.
    const auto p = ag.permute(2, 0, 1);
    const auto pc = a.permute(2, 0, 1);
    require_close(sum(p, 1), sum(pc, 1), 1e-5, sum_tolerance(12));
    require_close(mean(p, {0, 2}), mean(pc, {0, 2}), 1e-5, 1e-6);
    require_identical(argmax(p.slice(2, 1, 40, 3), 2), argmax(pc.slice(2, 1, 40, 3), 2));
    const auto e = bg.unsqueeze(0).expand(5, 24);
    require_close(sum(e, 0), sum(b.unsqueeze(0).expand(5, 24), 0), 1e-5, 1e-5);
    require_close(var(ag.transpose(0, 2), 1), var(a.transpose(0, 2), 1), 1e-4, 1e-5);
}

TEST_CASE("cuda: integer and bool reductions are exact", "[cuda]") {
    Generator g(8);
    const auto xi = Tensor<std::int32_t, 3, Cpu>::randint(-1000, 1000, {9, 31, 17}, g);
    const auto xig = to_gpu(xi);
    for (int axis : {0, 1, 2}) {
        INFO("axis " << axis);
        require_identical(sum(xig, axis), sum(xi, axis));
        require_identical(max(xig, axis), max(xi, axis));
        require_identical(min(xig, axis, keepdim), min(xi, axis, keepdim));
        require_identical(argmax(xig, axis), argmax(xi, axis));
    }
    REQUIRE(sum(xig).item() == sum(xi).item());
    const auto xl = Tensor<std::int64_t, 2, Cpu>::randint(-(std::int64_t(1) << 40), std::int64_t(1) << 40, {7, 300}, g);
    require_identical(sum(to_gpu(xl), 1), sum(xl, 1));
    const Tensor<bool, 3, Cpu> mask = xi > 0;
    require_identical(sum(to_gpu(mask), {0, 2}), sum(mask, {0, 2}));
}

TEST_CASE("cuda: large reductions split over blocks agree with the CPU", "[cuda]") {
    // Few outputs, many positions: the positions of each output are spread over many blocks and
    // merged by a second kernel. Reduced axis innermost (rows) and outermost (columns).
    const index_t n = index_t(1) << 20;
    const auto rows = rand_host(Shape<2>{3, n}, 104, -1.0f, 1.0f);
    const auto rowsg = to_gpu(rows);
    require_close(sum(rowsg, 1), sum(rows, 1), 1e-5, sum_tolerance(n));
    require_close(mean(rowsg, 1), mean(rows, 1), 1e-5, 1e-7);
    require_identical(max(rowsg, 1), max(rows, 1));
    require_identical(argmin(rowsg, 1), argmin(rows, 1));
    require_close(var(rowsg, 1), var(rows, 1), 1e-4, 1e-6);

    const auto cols = rowsg.t();  // [n, 3], reduced axis outermost, strided
    require_close(sum(cols, 0), sum(rows.t(), 0), 1e-5, sum_tolerance(n));
    const auto colsd = to_gpu(rows.t().contiguous());  // [n, 3] dense: the kept axis is innermost
    require_close(sum(colsd, 0), sum(rows.t(), 0), 1e-5, sum_tolerance(n));
    require_identical(argmax(colsd, 0), argmax(rows.t(), 0));

    // Ties in different blocks, and in different threads of one block: the first position wins.
    auto ties = Tensor<float, 2, Cpu>::zeros({2, n});
    for (index_t p : {index_t(300001), index_t(700000), index_t(300000)}) ties(0, p) = 1.0f;
    for (index_t p : {index_t(123457 + 256), index_t(999999), index_t(123457)}) ties(1, p) = 1.0f;
    for (index_t p : {index_t(5001 + 3 * 4096), index_t(5000)}) ties(0, p) = -1.0f;
    for (index_t p : {n - 1, n - 2}) ties(1, p) = -1.0f;
    const auto tiesg = to_gpu(ties);
    const auto amax = argmax(tiesg, 1).to<Cpu>(), amin = argmin(tiesg, 1).to<Cpu>();
    CHECK(amax(0) == 300000);
    CHECK(amax(1) == 123457);
    CHECK(amin(0) == 5000);
    CHECK(amin(1) == n - 2);
    require_identical(amax, argmax(ties, 1));
    require_identical(amin, argmin(ties, 1));
    const auto ties_t = ties.t().contiguous();  // [n, 2]: the kept axis innermost
    require_identical(argmax(to_gpu(ties_t), 0), argmax(ties_t, 0));
    require_identical(argmin(to_gpu(ties_t), 0), argmin(ties_t, 0));
    Generator g(9);
    const Tensor<float, 2, Cpu> few = cast<float>(Tensor<std::int32_t, 2, Cpu>::randint(0, 3, {2, n}, g));
    require_identical(argmax(to_gpu(few), 1), argmax(few, 1));

    // One output over 16M elements.
    const auto big = rand_host(Shape<1>{index_t(1) << 24}, 105);
    const auto bigg = to_gpu(big);
    const double want = double(sum(big).item());
    REQUIRE(std::fabs(double(sum(bigg).item()) - want) <= 1e-5 * want);
    REQUIRE(max(bigg).item() == max(big).item());
    REQUIRE(argmax(bigg, 0).item() == argmax(big, 0).item());
}
