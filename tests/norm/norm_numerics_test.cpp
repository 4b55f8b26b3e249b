// Numerics and statistics of the norm, softmax and dropout ops: float accuracy where naive
// formulas fail, agreement with reference formulas built from reductions (values and gradients
// through the generic autograd) on inputs large enough to be split over threads, the
// statistics of dropout and drop_path masks, the 16-bit types, and readable errors.
#include <cmath>
#include <vector>

#include <weft/ops/batch_norm.hpp>
#include <weft/ops/dropout.hpp>
#include <weft/ops/group_norm.hpp>
#include <weft/ops/layer_norm.hpp>
#include <weft/ops/normalize.hpp>
#include <weft/ops/softmax.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

using T1 = Tensor<double, 1>;
using T2 = Tensor<double, 2>;
using T3 = Tensor<double, 3>;
using T4 = Tensor<double, 4>;

// Values rounded to float, returned as float and as the same values in double.
template <int R>
std::pair<Tensor<float, R>, Tensor<double, R>> float_and_double(const Tensor<double, R>& x) {
    Tensor<float, R> f = cast<float>(x);
    Tensor<double, R> d = cast<double>(f);
    return {f, d};
}

// Runs `ours` and `reference` (a formula of expressions and reductions, differentiated by the
// generic autograd) on copies of the inputs, and compares outputs and input gradients.
template <class Ours, class Ref, class... In>
void compare_with_formula(const char* what, Ours ours, Ref reference, const In&... inputs) {
    INFO(what);
    auto run = [&](auto f) {
        std::tuple<In...> xs{inputs.detach().clone()...};
        std::apply([](auto&... x) { (x.requires_grad_(), ...); }, xs);
        auto y = std::apply(f, xs);
        Generator gen(99);
        const auto r = decltype(y)::randn(y.shape(), gen);
        sum(y * r).backward();
        return std::make_pair(y.detach(), xs);
    };
    auto [y1, x1] = run(ours);
    auto [y2, x2] = run(reference);
    check_close(y1, y2, 1e-10, 1e-10, std::string(what) + ": output");
    auto grads = [&]<std::size_t... I>(std::index_sequence<I...>) {
        (check_close(std::get<I>(x1).grad(), std::get<I>(x2).grad(), 1e-10, 1e-10,
                     std::string(what) + ": gradient of input " + std::to_string(I)),
         ...);
    };
    grads(std::index_sequence_for<In...>{});
}

// Restores the default thread count at the end of a test that changes it.
struct ThreadCount {
    explicit ThreadCount(int n) { set_num_threads(n); }
    ~ThreadCount() { set_num_threads(ThreadPool::default_threads()); }
};

template <class T, int R>
std::vector<double> values(const Tensor<T, R>& t) {
    const auto c = t.contiguous();
    std::vector<double> v(std::size_t(c.numel()));
    for (index_t i = 0; i < c.numel(); ++i) v[std::size_t(i)] = double(c.data()[i]);
    return v;
}

}  // namespace

// ---- float accuracy -------------------------------------------------------------------------

TEST_CASE("layer_norm in float is accurate on rows with a large mean") {
    // Rows of 1000 + noise (std 0.01): the variance is 1e-4 while E[x^2] is 1e6, below float's
    // resolution there. The shifted one-pass sums must still get it right.
    const index_t rows = 64, c = 256;
    Generator gen(3);
    const auto [xf, xd] = float_and_double<2>(eval(T2::randn({rows, c}, gen) * 0.01 + 1000.0));
    const auto w = T1::randn({c}, gen), b = T1::randn({c}, gen);
    const Tensor<float, 1> wf = cast<float>(w), bf = cast<float>(b);
    const auto yd = layer_norm(xd, w, b);
    check_close(layer_norm(xf, wf, bf), yd, 1e-4, 0, "float layer_norm against double");
    check_close(layer_norm(xf), layer_norm(xd), 1e-4, 0, "float layer_norm without affine against double");

    // The test data defeats the naive formula var = E[x^2] - E[x]^2 in float.
    double naive_worst = 0;
    for (index_t r = 0; r < rows; ++r) {
        float s1 = 0, s2 = 0;
        for (index_t i = 0; i < c; ++i) {
            s1 += xf(r, i);
            s2 += xf(r, i) * xf(r, i);
        }
        const float m = s1 / float(c), v = std::max(0.0f, s2 / float(c) - m * m);
        const float rs = 1.0f / std::sqrt(v + 1e-5f);
        for (index_t i = 0; i < c; ++i) {
            const double y = double((xf(r, i) - m) * rs * float(w(i)) + float(b(i)));
            naive_worst = std::max(naive_worst, std::abs(y - yd(r, i)));
        }
    }
    CHECK(naive_worst > 0.1);
}

TEST_CASE("group_norm and batch_norm in float are accurate on channels with a large mean") {
    Generator gen(4);
    const auto [xf, xd] = float_and_double<4>(eval(T4::randn({3, 4, 8, 8}, gen) * 0.01 + 1000.0));
    const auto w = T1::randn({4}, gen), b = T1::randn({4}, gen);
    const Tensor<float, 1> wf = cast<float>(w), bf = cast<float>(b);
    check_close(group_norm(xf, 2, wf, bf), group_norm(xd, 2, w, b), 1e-4, 0, "float group_norm against double");
    auto rmf = Tensor<float, 1>::zeros({4}), rvf = Tensor<float, 1>::ones({4});
    auto rmd = T1::zeros({4}), rvd = T1::ones({4});
    check_close(batch_norm(xf, rmf, rvf, wf, bf, true), batch_norm(xd, rmd, rvd, w, b, true), 1e-4, 0,
                "float batch_norm against double");
    check_close(rmf, rmd, 1e-3, 1e-6, "float running_mean");
    check_close(rvf, rvd, 1e-9, 1e-3, "float running_var");
}

TEST_CASE("softmax and normalize in float agree with double on every axis and on views") {
    Generator gen(5);
    const auto [xf, xd] = float_and_double<3>(eval(T3::randn({6, 33, 5}, gen) * 30.0));
    for (int axis : {0, 1, 2, -1}) {
        INFO("axis " << axis);
        check_close(softmax(xf, axis), softmax(xd, axis), 1e-6, 1e-5, "softmax");
        check_close(log_softmax(xf, axis), log_softmax(xd, axis), 1e-4, 1e-6, "log_softmax");
        check_close(normalize(xf, axis), normalize(xd, axis), 1e-6, 1e-5, "normalize");
    }
    // Each softmax row sums to one; a permuted view gives the permuted result.
    const auto p = softmax(xd, 1);
    check_close(sum(p, {1}), T2::ones({6, 5}), 1e-12, 0, "rows sum to one");
    const auto view = xd.permute(2, 0, 1);  // [5, 6, 33], not contiguous
    check_close(softmax(view, -1), p.permute(2, 0, 1), 1e-15, 0, "softmax of a permuted view");
    check_close(layer_norm(xd.transpose(1, 2)), layer_norm(xd.transpose(1, 2).contiguous()), 0, 0,
                "layer_norm of a transposed view");
}

// ---- against formulas, on inputs split over threads ------------------------------------------

TEST_CASE("the ops match formulas of reductions on large inputs with any thread count") {
    for (int threads : {1, 3}) {
        ThreadCount scope(threads);
        INFO(threads << " threads");
        compare_with_formula(
            "softmax, last axis", [](const T2& x) { return softmax(x, -1); },
            [](const T2& x) -> T2 {
                T2 e = exp(x - max(x, {1}, keepdim));
                return e / sum(e, {1}, keepdim);
            },
            T2::randn({300, 250}));
        compare_with_formula(
            "log_softmax, middle axis", [](const T3& x) { return log_softmax(x, 1); },
            [](const T3& x) -> T3 {
                T3 z = x - max(x, {1}, keepdim);
                return z - log(sum(exp(z), {1}, keepdim));
            },
            T3::randn({20, 300, 17}));
        compare_with_formula(
            "normalize, first axis", [](const T3& x) { return normalize(x, 0); },
            [](const T3& x) -> T3 { return x / maximum(sqrt(sum(x * x, {0}, keepdim)), 1e-12); },
            T3::randn({30, 70, 40}));
        compare_with_formula(
            "layer_norm", [](const T2& x, const T1& w, const T1& b) { return layer_norm(x, w, b); },
            [](const T2& x, const T1& w, const T1& b) -> T2 {
                return (x - mean(x, {1}, keepdim)) * rsqrt(var(x, {1}, keepdim, 0) + 1e-5) * w + b;
            },
            eval(T2::randn({700, 130}) * 2.0 + 3.0), T1::randn({130}), T1::randn({130}));
        compare_with_formula(
            "group_norm", [](const T4& x, const T1& w, const T1& b) { return group_norm(x, 3, w, b); },
            [](const T4& x, const T1& w, const T1& b) -> T4 {
                const auto xg = x.reshape(6, 3, -1);
                T3 yg = (xg - mean(xg, {2}, keepdim)) * rsqrt(var(xg, {2}, keepdim, 0) + 1e-5);
                return yg.reshape(6, 6, 48, 48) * w.reshape(1, 6, 1, 1) + b.reshape(1, 6, 1, 1);
            },
            T4::randn({6, 6, 48, 48}), T1::randn({6}), T1::randn({6}));
        compare_with_formula(
            "batch_norm in evaluation",
            [](const T4& x, const T1& w, const T1& b, const T1& rm, const T1& rv) {
                return batch_norm(x, rm.detach(), rv.detach(), w, b, false, 0.1, 1e-3);
            },
            [](const T4& x, const T1& w, const T1& b, const T1& rm, const T1& rv) -> T4 {
                const auto shape = [](const T1& t) { return t.detach().reshape(1, -1, 1, 1); };
                return (x - shape(rm)) * rsqrt(shape(rv) + 1e-3) * w.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1);
            },
            T4::randn({4, 5, 20, 20}), T1::randn({5}), T1::randn({5}), T1::randn({5}), eval(T1::rand({5}) + 0.5));

        // Training: more samples than chunks, more channels than blocks, and [N, C] rows.
        auto bn_train = [](const char* what, auto x) {
            using X = decltype(x);
            constexpr int R = X::rank;
            const index_t c = x.size(1);
            const auto w = T1::randn({c}), b = T1::randn({c});
            auto rm = T1::randn({c}), rv = eval(T1::rand({c}) + 1.0);
            const T1 rm0 = rm.clone(), rv0 = rv.clone();
            auto bshape = [](const auto& t) {
                if constexpr (R == 2) return t.reshape(1, -1);
                else return t.reshape(1, -1, 1, 1);
            };
            compare_with_formula(
                what, [&](const X& v, const T1& wv, const T1& bv) { return batch_norm(v, rm, rv, wv, bv, true); },
                [&](const X& v, const T1& wv, const T1& bv) -> X {
                    if constexpr (R == 2) {
                        return (v - mean(v, {0}, keepdim)) * rsqrt(var(v, {0}, keepdim, 0) + 1e-5) * bshape(wv) +
                               bshape(bv);
                    } else {
                        return (v - mean(v, {0, 2, 3}, keepdim)) * rsqrt(var(v, {0, 2, 3}, keepdim, 0) + 1e-5) *
                                   bshape(wv) +
                               bshape(bv);
                    }
                },
                x, w, b);
            // compare_with_formula ran batch_norm once: one momentum step from rm0, rv0.
            T1 batch_mean, batch_var;
            if constexpr (R == 2) {
                batch_mean = mean(x, {0});
                batch_var = var(x, {0});
            } else {
                batch_mean = mean(x, {0, 2, 3});
                batch_var = var(x, {0, 2, 3});
            }
            check_close(rm, T1(rm0 * 0.9 + batch_mean * 0.1), 1e-12, 1e-12, std::string(what) + ": running_mean");
            check_close(rv, T1(rv0 * 0.9 + batch_var * 0.1), 1e-12, 1e-12, std::string(what) + ": running_var");
        };
        bn_train("batch_norm in training, 4-D", T4::randn({2, 16, 64, 64}));
        bn_train("batch_norm in training, [N, C]", T2::randn({40000, 3}));
    }
}

// ---- dropout and drop_path ------------------------------------------------------------------

TEST_CASE("dropout keeps 1 - p of the elements and scales them by exactly 1 / (1 - p)") {
    const index_t n = 200000;
    const double p = 0.3;
    Generator gen(123);
    const auto x = Tensor<float, 1>::randn({n}, gen);
    Generator g1(77);
    const auto y = dropout(x, p, true, g1);
    const float scale = float(1.0 / (1.0 - p));
    index_t kept = 0;
    bool exact = true;
    for (index_t i = 0; i < n; ++i) {
        if (y(i) != 0.0f) {
            ++kept;
            exact = exact && y(i) == x(i) * scale;
        }
    }
    CHECK(exact);
    // The kept fraction: binomial, standard deviation sqrt(p (1 - p) / n) ~ 0.001.
    CHECK(std::abs(double(kept) / double(n) - (1.0 - p)) < 0.005);
    // The mask is the generator's uniform stream below 1 - p (as rand() draws it), and the
    // generator has moved past the numbers used.
    Generator g2(77);
    const auto u = Tensor<float, 1>::rand({n}, g2);
    index_t agree = 0;
    for (index_t i = 0; i < n; ++i) agree += ((y(i) != 0.0f) == (double(u(i)) < 1.0 - p)) ? 1 : 0;
    CHECK(agree == n);
    CHECK(g1.offset == g2.offset);
}

TEST_CASE("dropout is reproducible from the seed, and its backward reuses the mask") {
    const auto x = T2::rand({50, 40});
    Generator a(5), b(5), c(6);
    const auto ya = dropout(x, 0.5, true, a), yb = dropout(x, 0.5, true, b), yc = dropout(x, 0.5, true, c);
    CHECK(values(ya) == values(yb));
    CHECK(values(ya) != values(yc));
    CHECK(values(dropout(x, 0.5, true, a)) != values(ya));  // the generator advanced

    auto xg = eval(x + 0.5).requires_grad_();  // no zeros: a dropped element is a zero of y
    Generator d(9);
    const auto y = dropout(xg, 0.25, true, d);
    y.backward(T2::ones(y.shape()));
    const auto gx = xg.grad();
    bool same_mask = true;
    for (index_t i = 0; i < 50; ++i)
        for (index_t j = 0; j < 40; ++j)
            same_mask = same_mask && gx(i, j) == (y(i, j) != 0.0 ? 1.0 / 0.75 : 0.0);
    CHECK(same_mask);
}

TEST_CASE("dropout is the identity when not training or p is 0, and zero when p is 1") {
    const auto x = Tensor<float, 3>::randn({2, 3, 4});
    CHECK(dropout(x, 0.5, false).data() == x.data());
    CHECK(dropout(x, 0.0, true).data() == x.data());
    CHECK(drop_path(x, 0.5, false).data() == x.data());
    CHECK(drop_path(x, 0.0, true).data() == x.data());
    for (double v : values(dropout(x, 1.0, true))) CHECK(v == 0.0);
    for (double v : values(drop_path(x, 1.0, true))) CHECK(v == 0.0);
    auto xg = T2::randn({3, 4}).requires_grad_();
    dropout(xg, 1.0, true).backward(T2::ones({3, 4}));
    for (double v : values(xg.grad())) CHECK(v == 0.0);
}

TEST_CASE("drop_path drops whole samples along the sample axis") {
    const double p = 0.25;
    const double scale = 1.0 / (1.0 - p);
    auto check_samples = [&](const T3& y, int axis) {
        const index_t samples = y.size(axis);
        index_t kept = 0;
        bool constant = true, exact = true;
        for (index_t s = 0; s < samples; ++s) {
            const auto slice = values(y.select(axis, s));
            for (double v : slice) constant = constant && v == slice[0];
            exact = exact && (slice[0] == 0.0 || slice[0] == scale);
            kept += slice[0] != 0.0 ? 1 : 0;
        }
        CHECK(constant);
        CHECK(exact);
        // Binomial over 4000 samples: standard deviation ~ 0.0068.
        CHECK(std::abs(double(kept) / double(samples) - (1.0 - p)) < 0.035);
    };
    Generator g0(21);
    const auto y0 = drop_path(T3::ones({4000, 3, 5}), p, true, g0);  // batch-first
    check_samples(y0, 0);
    Generator g1(22);
    const auto y1 = drop_path(T3::ones({3, 4000, 2}), p, true, g1, 1);  // sequence-first [L, N, C]
    check_samples(y1, 1);

    // One uniform number per sample, from the generator's stream.
    Generator g2(21);
    const auto u = Tensor<float, 1>::rand({4000}, g2);
    index_t agree = 0;
    for (index_t s = 0; s < 4000; ++s) agree += ((y0(s, 0, 0) != 0.0) == (double(u(s)) < 1.0 - p)) ? 1 : 0;
    CHECK(agree == 4000);

    // The backward applies the same decisions.
    auto x = T3::ones({3, 4000, 2}).requires_grad_();
    Generator g3(22);
    const auto y = drop_path(x, p, true, g3, 1);
    y.backward(T3::ones(y.shape()));
    CHECK(values(x.grad()) == values(y1));
}

// ---- 16-bit types -----------------------------------------------------------------------------

TEST_CASE("the ops run in bf16 and half, computing in float") {
    Generator gen(8);
    const auto x = Tensor<float, 4>::randn({2, 4, 3, 5}, gen);
    const auto w = Tensor<float, 1>::randn({4}, gen), b = Tensor<float, 1>::randn({4}, gen);
    const Tensor<bf16, 4> xb = cast<bf16>(x);
    const Tensor<bf16, 1> wb = cast<bf16>(w), bb = cast<bf16>(b);
    const Tensor<float, 4> xr = cast<float>(xb);  // the values bf16 holds
    const Tensor<float, 1> wr = cast<float>(wb), br = cast<float>(bb);
    check_close(softmax(xb, 1), softmax(xr, 1), 1e-2, 1e-2, "bf16 softmax");
    check_close(log_softmax(xb, -1), log_softmax(xr, -1), 2e-2, 1e-2, "bf16 log_softmax");
    check_close(layer_norm(xb), layer_norm(xr), 2e-2, 1e-2, "bf16 layer_norm");
    check_close(group_norm(xb, 2, wb, bb), group_norm(xr, 2, wr, br), 3e-2, 1e-2, "bf16 group_norm");
    check_close(batch_norm(xb, {}, {}, wb, bb, true), batch_norm(xr, {}, {}, wr, br, true), 3e-2, 1e-2,
                "bf16 batch_norm");
    check_close(normalize(xb, 1), normalize(xr, 1), 1e-2, 1e-2, "bf16 normalize");
    const Tensor<half, 4> xh = cast<half>(x);
    const Tensor<float, 4> xhr = cast<float>(xh);
    check_close(softmax(xh, -1), softmax(xhr, -1), 1e-3, 1e-3, "half softmax");
    check_close(layer_norm(xh), layer_norm(xhr), 5e-3, 1e-3, "half layer_norm");
    Generator g1(3), g2(3);
    check_close(dropout(xh, 0.5, true, g1), dropout(xhr, 0.5, true, g2), 0, 1e-3, "half dropout");
}

// ---- errors -------------------------------------------------------------------------------------

TEST_CASE("the ops name themselves and the shapes in their errors") {
    using Catch::Contains;
    const auto x = T4::randn({2, 6, 3, 3});
    REQUIRE_THROWS_WITH(softmax(x, 4), Contains("softmax") && Contains("axis 4"));
    REQUIRE_THROWS_WITH(layer_norm(x, T1::ones({4})), Contains("layer_norm: weight of shape [4]"));
    REQUIRE_THROWS_WITH(group_norm(x, 4), Contains("group_norm") && Contains("4 groups"));
    REQUIRE_THROWS_WITH(group_norm(x, 3, T1::ones({3})), Contains("group_norm: weight of shape [3]"));
    REQUIRE_THROWS_WITH(batch_norm(x, {}, {}, {}, {}, false), Contains("running_mean and running_var"));
    REQUIRE_THROWS_WITH(batch_norm(T2::randn({1, 3}), {}, {}, {}, {}, true), Contains("more than one value"));
    REQUIRE_THROWS_WITH(batch_norm(x, T1::zeros({5}), T1::ones({6}), {}, {}, true),
                        Contains("batch_norm: running_mean of shape [5]"));
    REQUIRE_THROWS_WITH(normalize(x, 1, 0.0), Contains("normalize: eps must be positive"));
    REQUIRE_THROWS_WITH(dropout(x, 1.5, true), Contains("dropout: drop probability must be in [0, 1]"));
    REQUIRE_THROWS_WITH(drop_path(x, 0.1, true, default_generator(), 5), Contains("drop_path: sample_axis 5"));
}

// ---- docs -------------------------------------------------------------------------------------

TEST_CASE("the example of docs/ops-norm.md") {
    auto x = Tensor<float, 3>::randn({2, 16, 64});                        // [N, L, C]
    auto w = Tensor<float, 1>::ones({64}), b = Tensor<float, 1>::zeros({64});
    auto h = layer_norm(x, w, b);                                         // over C
    auto p = softmax(h, -1);                                              // rows sum to 1
    auto e = normalize(h.select(1, 0));                                   // [N, C], unit rows
    auto f = Tensor<float, 4>::randn({2, 32, 8, 8});                      // [N, C, H, W]
    auto g = group_norm(f, 8);                                            // 8 groups of 4 channels
    auto rm = Tensor<float, 1>::zeros({32}), rv = Tensor<float, 1>::ones({32});
    auto n = batch_norm(f, rm, rv, {}, {}, /*training=*/true);           // updates rm, rv in place
    Generator gen(0);
    auto d = dropout(h, 0.1, /*training=*/true, gen);
    auto s = drop_path(h.transpose(0, 1), 0.1, true, gen, /*sample_axis=*/1);  // [L, N, C]

    check_close(sum(p, {-1}), Tensor<float, 2>::ones({2, 16}), 1e-5, 0, "softmax rows");
    check_close(sum(e * e, {1}), Tensor<float, 1>::ones({2}), 1e-5, 0, "unit rows");
    check_close(mean(g.reshape(2, 8, -1), {2}), Tensor<float, 2>::zeros({2, 8}), 1e-5, 0, "group means");
    check_close(mean(n, {0, 2, 3}), Tensor<float, 1>::zeros({32}), 1e-5, 0, "channel means");
    check_close(rm, Tensor<float, 1>(mean(f, {0, 2, 3}) * 0.1f), 1e-6, 1e-5, "running_mean after one step");
    CHECK(d.shape() == h.shape());
    CHECK(s.shape() == Shape<3>{16, 2, 64});
}
