// Element-wise expressions on the GPU (exec/cuda/executor.cuh, Executor<Cuda>::assign) against
// the CPU executor on the same random inputs: every functor, in fp32, bool and bf16. The layouts
// (broadcasting, strides, casts, where, aliasing, 64-bit indices) are in
// elementwise_layout_test.cu: two files, so that nvcc compiles them side by side.
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
