// Element-wise expressions on the GPU (exec/cuda/executor.cuh, Executor<Cuda>::assign) against
// the CPU executor on the same random inputs: every functor, broadcasting, strided operands and
// destinations, casts, where, bf16, aliasing, and the 64-bit index path.
//
// Tolerances: + - * / and conversions are correctly rounded on both sides, so those compare
// bitwise. Transcendental functions come from different libraries (glibc vs CUDA's libdevice,
// each within 1-2 ulp) and nvcc contracts a * b + c into one FMA where g++ (-std=c++20, no
// -ffp-contract=fast) does not, so those compare within a few ulp.
#include "common.cuh"

#include <cstdint>
#include <limits>

using namespace weft;
using namespace weft_test;

namespace {

constexpr double kRtol = 1e-5;  // a few float ulp
constexpr double kAtol = 1e-6;

// f is a generic lambda building an expression from one tensor; evaluated on both devices.
template <class T = float, class F, int R>
void check_unary(const char* name, F f, const Tensor<T, R, Cpu>& x, double rtol = kRtol, double atol = kAtol) {
    INFO("functor " << name);
    const auto want = eval(f(x));
    const auto xg = to_gpu(x);
    const auto got = eval(f(xg));
    require_close(got, want, rtol, atol);
}

template <class F, int R>
void check_binary(const char* name, F f, const Tensor<float, R, Cpu>& a, const Tensor<float, R, Cpu>& b,
                  double rtol = kRtol, double atol = kAtol) {
    INFO("functor " << name);
    const auto want = eval(f(a, b));
    const auto got = eval(f(to_gpu(a), to_gpu(b)));
    require_close(got, want, rtol, atol);
}

template <class F, int R>
void check_binary_exact(const char* name, F f, const Tensor<float, R, Cpu>& a, const Tensor<float, R, Cpu>& b) {
    INFO("functor " << name);
    const auto want = eval(f(a, b));
    const auto got = eval(f(to_gpu(a), to_gpu(b)));
    require_identical(got, want);
}

}  // namespace

TEST_CASE("cuda: every unary functor matches the CPU (fp32)", "[cuda]") {
    const Shape<2> s{37, 129};
    const auto x = randn_host(s, 1);               // any sign
    const auto pos = rand_host(s, 2, 0.05f, 4.0f);  // log, sqrt, rsqrt, reciprocal
    check_unary("neg", [](const auto& t) { return -t; }, x, 0, 0);
    check_unary("abs", [](const auto& t) { return abs(t); }, x, 0, 0);
    check_unary("square", [](const auto& t) { return square(t); }, x, 0, 0);
    check_unary("relu", [](const auto& t) { return relu(t); }, x, 0, 0);
    check_unary("reciprocal", [](const auto& t) { return reciprocal(t); }, pos, 0, 0);
    check_unary("sqrt", [](const auto& t) { return sqrt(t); }, pos, 0, 0);
    check_unary("rsqrt", [](const auto& t) { return rsqrt(t); }, pos);
    check_unary("exp", [](const auto& t) { return exp(t); }, x);
    check_unary("log", [](const auto& t) { return log(t); }, pos);
    check_unary("sin", [](const auto& t) { return sin(t * 3.0f); }, x);
    check_unary("cos", [](const auto& t) { return cos(t * 3.0f); }, x);
    check_unary("tanh", [](const auto& t) { return tanh(t); }, x);
    check_unary("sigmoid", [](const auto& t) { return sigmoid(t); }, x);
    check_unary("erf", [](const auto& t) { return erf(t); }, x);
    check_unary("gelu", [](const auto& t) { return gelu(t); }, x);
    check_unary("quick_gelu", [](const auto& t) { return quick_gelu(t); }, x);
}

TEST_CASE("cuda: every binary functor and comparison matches the CPU (fp32, with NaNs)", "[cuda]") {
    const Shape<2> s{41, 97};
    auto a = randn_host(s, 3);
    auto b = randn_host(s, 4);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    a(0, 0) = nan;
    b(1, 1) = nan;
    a(2, 2) = b(2, 2) = 0.5f;  // ties
    check_binary_exact("add", [](const auto& p, const auto& q) { return p + q; }, a, b);
    check_binary_exact("sub", [](const auto& p, const auto& q) { return p - q; }, a, b);
    check_binary_exact("mul", [](const auto& p, const auto& q) { return p * q; }, a, b);
    check_binary_exact("div", [](const auto& p, const auto& q) { return p / q; }, a, b);
    check_binary_exact("maximum", [](const auto& p, const auto& q) { return maximum(p, q); }, a, b);
    check_binary_exact("minimum", [](const auto& p, const auto& q) { return minimum(p, q); }, a, b);
    check_binary_exact("==", [](const auto& p, const auto& q) { return p == q; }, a, b);
    check_binary_exact("!=", [](const auto& p, const auto& q) { return p != q; }, a, b);
    check_binary_exact("<", [](const auto& p, const auto& q) { return p < q; }, a, b);
    check_binary_exact("<=", [](const auto& p, const auto& q) { return p <= q; }, a, b);
    check_binary_exact(">", [](const auto& p, const auto& q) { return p > q; }, a, b);
    check_binary_exact(">=", [](const auto& p, const auto& q) { return p >= q; }, a, b);
    const auto base = rand_host(s, 5, 0.1f, 3.0f);
    check_binary("pow", [](const auto& p, const auto& q) { return pow(p, q); }, base, b);
    // Several functors fused into one kernel.
    check_binary("fused chain", [](const auto& p, const auto& q) { return exp(-square(p)) * tanh(q) + p / (1.0f + abs(q)); },
                 a, b);
}

TEST_CASE("cuda: logical functors on bool tensors are identical to the CPU", "[cuda]") {
    const Shape<2> s{33, 65};
    const auto a = randn_host(s, 6), b = randn_host(s, 7);
    const Tensor<bool, 2, Cpu> p = a > 0.0f, q = b > 0.3f;
    const auto pg = to_gpu(p), qg = to_gpu(q);
    require_identical(eval(pg && qg), eval(p && q));
    require_identical(eval(pg || qg), eval(p || q));
    require_identical(eval(logical_xor(pg, qg)), eval(logical_xor(p, q)));
    require_identical(eval(!pg), eval(!p));
    require_identical(eval(logical_not(pg && !qg)), eval(logical_not(p && !q)));
}

TEST_CASE("cuda: bf16 element-wise expressions match the CPU", "[cuda]") {
    const Shape<2> s{29, 131};
    const Tensor<bf16, 2, Cpu> a = cast<bf16>(randn_host(s, 8));
    const Tensor<bf16, 2, Cpu> b = cast<bf16>(randn_host(s, 9));
    const auto ag = to_gpu(a), bg = to_gpu(b);
    // Computed in float and rounded once to bf16: exact operations agree bitwise...
    require_identical(eval(ag + bg), eval(a + b));
    require_identical(eval(ag * bg), eval(a * b));
    require_identical(eval(where(ag > bf16(0.0f), ag, bg)), eval(where(a > bf16(0.0f), a, b)));
    // ...transcendental ones within one bf16 ulp (2^-8 relative) of the CPU.
    require_close(eval(exp(ag) * bg), eval(exp(a) * b), 8e-3, 1e-6);
    require_close(eval(gelu(ag + bg)), eval(gelu(a + b)), 8e-3, 1e-6);
    require_close(eval(cast<float>(ag) * 2.0f), eval(cast<float>(a) * 2.0f), 0, 0);
}

TEST_CASE("cuda: broadcasting with non-contiguous operands and destinations", "[cuda]") {
    // x: [5, 7, 9] viewed as [9, 5, 7] (permuted); bias: [7]; scale: [9, 1, 1] from a strided slice;
    // col: [5, 1] expanded; all combined into one strided kernel.
    const auto x = randn_host(Shape<3>{5, 7, 9}, 10);
    const auto bias = randn_host(Shape<1>{7}, 11);
    const auto scale_src = randn_host(Shape<3>{18, 1, 1}, 12);
    const auto col = randn_host(Shape<2>{5, 1}, 13);
    const auto xg = to_gpu(x);
    const auto biasg = to_gpu(bias);
    const auto scaleg = to_gpu(scale_src);
    const auto colg = to_gpu(col);

    auto expr = [](const auto& x_, const auto& b_, const auto& s_, const auto& c_) {
        return x_.permute(2, 0, 1) * s_.slice(0, 0, 18, 2) + b_ - c_.expand(5, 7) * 0.5f;
    };
    const auto want = eval(expr(x, bias, scale_src, col));
    const auto got = eval(expr(xg, biasg, scaleg, colg));
    REQUIRE(got.shape() == Shape<3>{9, 5, 7});
    require_close(got, want, kRtol, kAtol);

    // Writing into a non-contiguous destination: a transposed view and a strided slice.
    auto dst = Tensor<float, 2, Cuda>::zeros({6, 4});
    auto dst_cpu = Tensor<float, 2, Cpu>::zeros({6, 4});
    const auto m = randn_host(Shape<2>{4, 6}, 14);
    const auto mg = to_gpu(m);
    dst.t() = mg * 2.0f + 1.0f;
    dst_cpu.t() = m * 2.0f + 1.0f;
    require_close(dst, dst_cpu, kRtol, kAtol);
    dst.slice(0, 1, 6, 2) = mg.t().slice(0, 0, 3) - 3.0f;
    dst_cpu.slice(0, 1, 6, 2) = m.t().slice(0, 0, 3) - 3.0f;
    require_identical(dst.slice(0, 1, 6, 2), dst_cpu.slice(0, 1, 6, 2));
    require_close(dst, dst_cpu, kRtol, kAtol);

    // Rank 4 with broadcasting on both sides of every axis.
    const auto p = randn_host(Shape<4>{3, 1, 5, 1}, 15);
    const auto q = randn_host(Shape<4>{1, 4, 1, 6}, 16);
    require_identical(eval(to_gpu(p) * to_gpu(q)), eval(p * q));
    require_identical(eval(to_gpu(q).transpose(1, 3) - to_gpu(p).transpose(0, 2)), eval(q.transpose(1, 3) - p.transpose(0, 2)));
}

TEST_CASE("cuda: the linear kernel handles every tail length", "[cuda]") {
    for (index_t n : {index_t(1), index_t(3), index_t(255), index_t(256), index_t(1023), index_t(1024), index_t(1025),
                      index_t(4097), index_t((1 << 20) + 7), index_t(5'000'003)}) {
        INFO("n = " << n);
        const auto a = randn_host(Shape<1>{n}, 17), b = randn_host(Shape<1>{n}, 18);
        const auto ag = to_gpu(a), bg = to_gpu(b);
        require_identical(eval(ag * bg), eval(a * b));
        require_identical(eval(ag / (bg + 2.0f)), eval(a / (b + 2.0f)));
    }
}

TEST_CASE("cuda: casts between element types are identical to the CPU", "[cuda]") {
    const Shape<2> s{17, 45};
    const auto x = randn_host(s, 19);
    const Tensor<float, 2, Cpu> big = x * 100.0f;
    const auto xg = to_gpu(x), bigg = to_gpu(big);
    require_identical(eval(cast<double>(xg)), eval(cast<double>(x)));
    require_identical(eval(cast<bf16>(xg)), eval(cast<bf16>(x)));
    require_identical(eval(cast<half>(bigg)), eval(cast<half>(big)));
    require_identical(eval(cast<std::int32_t>(bigg)), eval(cast<std::int32_t>(big)));
    require_identical(eval(cast<std::int64_t>(bigg)), eval(cast<std::int64_t>(big)));
    // (In range: an out-of-range float to integer conversion is undefined, and host and device differ.)
    require_identical(eval(cast<std::uint8_t>(minimum(abs(bigg), 255.0f))), eval(cast<std::uint8_t>(minimum(abs(big), 255.0f))));
    require_identical(eval(cast<bool>(xg > 0.0f)), eval(cast<bool>(x > 0.0f)));
    require_identical(eval(cast<bool>(relu(xg))), eval(cast<bool>(relu(x))));
    // Round trips through 16-bit floats round once, then compute in float.
    require_identical(eval(cast<float>(cast<bf16>(xg)) * 3.0f), eval(cast<float>(cast<bf16>(x)) * 3.0f));
    const Tensor<std::int32_t, 2, Cpu> ints = cast<std::int32_t>(big);
    require_identical(eval(cast<float>(to_gpu(ints)) * 0.5f), eval(cast<float>(ints) * 0.5f));
}

TEST_CASE("cuda: where with broadcast conditions and scalar branches", "[cuda]") {
    const auto x = randn_host(Shape<2>{23, 57}, 20);
    const auto row = randn_host(Shape<2>{23, 1}, 21);
    const auto xg = to_gpu(x), rowg = to_gpu(row);
    require_identical(eval(where(xg > 0.0f, xg, 0.1f * xg)), eval(where(x > 0.0f, x, 0.1f * x)));
    require_identical(eval(where(rowg > 0.0f, xg, 0.0f)), eval(where(row > 0.0f, x, 0.0f)));
    require_identical(eval(where(xg < rowg, 1.0f, rowg)), eval(where(x < row, 1.0f, row)));
}

TEST_CASE("cuda: in-place and aliasing assignments", "[cuda]") {
    const auto x = randn_host(Shape<2>{64, 64}, 22);
    auto y = x.clone();
    auto yg = to_gpu(x);
    yg = yg * 2.0f + 1.0f;  // reads exactly the elements it writes: no temporary
    y = y * 2.0f + 1.0f;
    require_close(yg, y, kRtol, kAtol);
    yg = yg.t() + 0.0f;  // a transposed read of the destination: evaluated through a temporary
    y = y.t() + 0.0f;
    require_identical(yg, y);
    REQUIRE(yg.is_contiguous());  // written in place, not rebound to a transposed view
    yg.slice(0, 0, 2) = 0.0f;
    y.slice(0, 0, 2) = 0.0f;
    require_identical(yg, y);
    // Element i reads element i - 1 of the same storage: must use a temporary too.
    auto v = to_gpu(randn_host(Shape<1>{1000}, 23));
    auto vc = v.to<Cpu>();
    v.slice(0, 1, 1000) = v.slice(0, 0, 999) + 1.0f;
    vc.slice(0, 1, 1000) = vc.slice(0, 0, 999) + 1.0f;
    require_identical(v, vc);
}

TEST_CASE("cuda: rank-0 and empty tensors", "[cuda]") {
    auto s = Tensor<float, 0, Cuda>::full({}, 2.5f);
    s = s * 4.0f;
    REQUIRE(s.item() == 10.0f);
    REQUIRE(sum(s).item() == 10.0f);  // a reduction over no axes of a rank-0 tensor
    REQUIRE(max(s * -1.0f).item() == -10.0f);
    auto e = Tensor<float, 2, Cuda>::empty({0, 5});
    e = e + 1.0f;  // nothing to do, but must not launch an empty grid
    REQUIRE(e.numel() == 0);
    REQUIRE(sum(e).item() == 0.0f);
    REQUIRE(std::isnan(mean(e).item()));
    const auto sums = sum(e, 0);  // five sums over nothing
    require_identical(sums, Tensor<float, 1, Cpu>::zeros({5}));
    weft::cuda::synchronize();
}

TEST_CASE("cuda: more than 2^31 elements use 64-bit indexing", "[cuda][large]") {
    // 2^31 + 1024 one-byte elements (2 GiB per tensor, 6 GiB in all).
    const index_t cols = (index_t(1) << 30) + 512;
    const auto x = Tensor<std::uint8_t, 2, Cuda>::full({2, cols}, 3);
    REQUIRE(x.numel() > std::numeric_limits<std::int32_t>::max());
    const Tensor<std::uint8_t, 2, Cuda> y = x + std::uint8_t(2);  // linear kernel, 64-bit
    auto z = Tensor<std::uint8_t, 2, Cuda>::empty({cols, 2});
    z.t() = y + std::uint8_t(1);  // strided kernel, 64-bit
    auto check_all = [](const Tensor<std::uint8_t, 2, Cpu>& t, std::uint8_t v) {
        for (index_t i = 0; i < t.numel(); ++i)
            if (t.data()[i] != v) return false;
        return true;
    };
    CHECK(check_all(y.slice(1, cols - 5, cols).to<Cpu>(), 5));
    CHECK(check_all(y.slice(1, 0, 5).to<Cpu>(), 5));
    CHECK(check_all(z.slice(0, cols - 5, cols).to<Cpu>(), 6));
    CHECK(check_all(z.slice(0, 0, 5).to<Cpu>(), 6));
    CHECK(check_all(z.slice(0, cols / 2, cols / 2 + 5).to<Cpu>(), 6));
    // Reductions: all 2^31 + 1024 positions (64-bit), and one row each (32-bit, split).
    CHECK(sum(z).item() == 6 * z.numel());
    const auto rows = sum(y, 1).to<Cpu>();
    CHECK(rows(0) == 5 * cols);
    CHECK(rows(1) == 5 * cols);
}
