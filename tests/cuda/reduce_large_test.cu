// Reductions on the GPU (Executor<Cuda>::reduce) against the CPU executor, continued: fused and
// non-contiguous operands, integer and bool inputs, and sizes that take the split (two-pass) path.
// (A separate file so that nvcc compiles the reduction tests in two parallel jobs.)
//
// The CPU sums floats in double, the GPU in float (reduce.hpp), so float sums compare within
// float rounding of the partial sums (tolerance grows with sqrt of the count); max, min, argmax,
// argmin and integer sums compare exactly.
#include "common.cuh"

#include <cmath>
#include <cstdint>

using namespace weft;
using namespace weft_test;

namespace {

double sum_tolerance(index_t count) { return 2e-5 * std::sqrt(double(count)) + 1e-5; }

}  // namespace

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
