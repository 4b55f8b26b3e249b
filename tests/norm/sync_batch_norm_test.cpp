// Synchronized batch norm (CrossReplicaSum): W replicas run as W threads whose collective is a
// shared buffer and a barrier. Each replica must see exactly what plain batch_norm computes on
// the batch of all replicas together (outputs, running statistics, input gradients; parameter
// gradients summed over replicas), through the op functions, the recorded op with autograd in
// every thread at once, and nn::BatchNorm2d; and the synced gradient passes a finite-difference
// check of the whole W-replica computation.
#include <barrier>
#include <cmath>
#include <exception>
#include <memory>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <weft/autograd/gradcheck.hpp>
#include <weft/nn/batch_norm2d.hpp>
#include <weft/ops/batch_norm.hpp>
#include <weft/ops/join.hpp>

#include "support/fixture.hpp"

using namespace weft;

namespace {

// The collective of W threads: each thread's call leaves in its span the sum over the threads'
// spans, added in rank order so that every thread gets the same bits. It records each call's
// length per rank, so a test can check that all replicas called it alike.
class ThreadReplicas {
public:
    explicit ThreadReplicas(int world)
        : world_(world), parts_(static_cast<std::size_t>(world)), lengths_(static_cast<std::size_t>(world)), sync_(world) {}

    int world() const { return world_; }

    CrossReplicaSum hook(int rank) {
        return [this, rank](std::span<double> v) {
            const auto r = std::size_t(rank);
            parts_[r].assign(v.begin(), v.end());
            lengths_[r].push_back(v.size());
            sync_.arrive_and_wait();  // every part is in
            for (std::size_t i = 0; i < v.size(); ++i) {
                double s = 0;
                for (const auto& p : parts_) s += i < p.size() ? p[i] : std::nan("");
                v[i] = s;
            }
            sync_.arrive_and_wait();  // every thread has read before any writes its next part
        };
    }

    // Runs f(rank, hook) in one thread per rank. A rank that throws drops out of the barrier so
    // that the others finish instead of waiting for it; the first error is rethrown here.
    template <class F>
    void run(F&& f) {
        std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world_));
        std::vector<std::thread> threads;
        for (int r = 0; r < world_; ++r)
            threads.emplace_back([&, r] {
                try {
                    f(r, hook(r));
                } catch (...) {
                    errors[std::size_t(r)] = std::current_exception();
                    sync_.arrive_and_drop();
                }
            });
        for (auto& t : threads) t.join();
        for (auto& e : errors)
            if (e) std::rethrow_exception(e);
    }

    // The lengths of rank r's calls, in order.
    const std::vector<std::size_t>& lengths(int r) const { return lengths_[std::size_t(r)]; }

private:
    int world_;
    std::vector<std::vector<double>> parts_;
    std::vector<std::vector<std::size_t>> lengths_;
    std::barrier<> sync_;
};

// Every replica called the collective the same number of times with the same lengths.
inline void check_calls_alike(const ThreadReplicas& reps, std::size_t expected_calls) {
    for (int r = 0; r < reps.world(); ++r) {
        INFO("rank " << r);
        CHECK(reps.lengths(r).size() == expected_calls);
        CHECK(reps.lengths(r) == reps.lengths(0));
    }
}

// |actual - expected| <= tol * (1 + |expected|) everywhere (support/fixture.hpp's check with
// atol = rtol = tol); names the worst element.
template <class T, int R, class U>
void check_close(const Tensor<T, R>& actual, const Tensor<U, R>& expected, double tol, const std::string& what) {
    REQUIRE(actual.defined());
    test::check_close(actual, expected, tol, tol, what);
}

// Where each replica's rows start in the batch of all replicas.
std::vector<index_t> offsets_of(const std::vector<index_t>& sizes) {
    std::vector<index_t> off(sizes.size() + 1, 0);
    std::partial_sum(sizes.begin(), sizes.end(), off.begin() + 1);
    return off;
}

// Random values of shape `shape`, in T, with channel (axis 1) c shifted by 3c - 2 so that the
// means differ from zero and from each other.
template <class T, int R>
Tensor<T, R> random_input(Shape<R> shape, Generator& gen) {
    auto d = Tensor<double, R>::randn(shape, gen);
    auto v = d.contiguous();
    const index_t c = shape[1], inner = shape.numel() / std::max<index_t>(1, shape[0] * c);
    for (index_t i = 0; i < v.numel(); ++i) v.data()[i] = 1.5 * v.data()[i] + 3.0 * double((i / inner) % c) - 2.0;
    Tensor<T, R> out = cast<T>(v);
    return out;
}

template <class T>
Tensor<T, 1> random_vector(index_t c, Generator& gen, double lo) {
    Tensor<T, 1> out = cast<T>(Tensor<double, 1>::rand({c}, gen) + lo);
    return out;
}

template <int R>
Shape<R> with_batch(Shape<R> s, index_t n) {
    s[0] = n;
    return s;
}

// The op functions: for the replicas' batch sizes `sizes` of samples of shape `sample` (axis 0
// ignored), batch_norm_forward and batch_norm_backward with the collective on each replica's
// rows, against the same functions without it on all rows.
template <class T, int R>
void check_ops(const std::vector<index_t>& sizes, Shape<R> sample, double tol) {
    const int world = int(sizes.size());
    const auto off = offsets_of(sizes);
    const auto shape = with_batch(sample, off.back());
    const index_t c = shape[1];
    INFO("world " << world << ", input " << shape << ", " << (sizeof(T) == 4 ? "float" : "double"));
    Generator gen(7 + std::uint64_t(world));
    const auto x = random_input<T>(shape, gen), g = random_input<T>(shape, gen);
    const auto w = random_vector<T>(c, gen, 0.5), b = random_vector<T>(c, gen, -0.5);
    const auto rm0 = random_vector<T>(c, gen, -0.5), rv0 = random_vector<T>(c, gen, 0.5);
    const double momentum = 0.3, eps = 1e-5;

    auto rm = rm0.clone(), rv = rv0.clone();
    const auto plain = batch_norm_forward(x, rm, rv, w, b, true, momentum, eps);
    const auto plain_grads = batch_norm_backward(g, x, w, plain.mean, plain.rstd, true);

    std::vector<BatchNormForward<T, R>> fwd(static_cast<std::size_t>(world));
    std::vector<BatchNormGrads<T, R>> grads(static_cast<std::size_t>(world));
    std::vector<Tensor<T, 1>> rms(static_cast<std::size_t>(world)), rvs(static_cast<std::size_t>(world));
    ThreadReplicas reps(world);
    reps.run([&](int r, const CrossReplicaSum& hook) {
        const auto u = std::size_t(r);
        const auto xr = x.narrow(0, off[u], sizes[u]), gr = g.narrow(0, off[u], sizes[u]);
        rms[u] = rm0.clone();
        rvs[u] = rv0.clone();
        fwd[u] = batch_norm_forward(xr, rms[u], rvs[u], w, b, true, momentum, eps, hook);
        grads[u] = batch_norm_backward(gr, xr, w, fwd[u].mean, fwd[u].rstd, true, true, true, true, hook);
    });
    check_calls_alike(reps, 2);  // one call in forward, one in backward

    auto sum_w = Tensor<T, 1>::zeros({c}), sum_b = Tensor<T, 1>::zeros({c});
    for (int r = 0; r < world; ++r) {
        const auto u = std::size_t(r);
        INFO("rank " << r);
        check_close(fwd[u].y, plain.y.narrow(0, off[u], sizes[u]), tol, "y");
        check_close(fwd[u].mean, plain.mean, tol, "saved mean");
        check_close(fwd[u].rstd, plain.rstd, tol, "saved rstd");
        check_close(rms[u], rm, tol, "running_mean");
        check_close(rvs[u], rv, tol, "running_var");
        check_close(grads[u].grad_x, plain_grads.grad_x.narrow(0, off[u], sizes[u]), tol, "grad_x");
        sum_w = eval(sum_w + grads[u].grad_w);
        sum_b = eval(sum_b + grads[u].grad_b);
    }
    // The parameter gradients are each replica's share: they add up to the whole batch's.
    check_close(sum_w, plain_grads.grad_w, tol, "sum of grad_w over replicas");
    check_close(sum_b, plain_grads.grad_b, tol, "sum of grad_b over replicas");
}

// The recorded op: every thread runs forward and backward() at once, with its own leaves (as a
// data-parallel replica has its own copy of the parameters).
template <class T, int R>
void check_autograd(const std::vector<index_t>& sizes, Shape<R> sample, double tol) {
    const int world = int(sizes.size());
    const auto off = offsets_of(sizes);
    const auto shape = with_batch(sample, off.back());
    const index_t c = shape[1];
    INFO("world " << world << ", input " << shape << ", " << (sizeof(T) == 4 ? "float" : "double"));
    Generator gen(11 + std::uint64_t(world));
    const auto x = random_input<T>(shape, gen), g = random_input<T>(shape, gen);
    const auto w = random_vector<T>(c, gen, 0.5), b = random_vector<T>(c, gen, -0.5);

    struct Out {
        Tensor<T, R> y, gx;
        Tensor<T, 1> gw, gb;
    };
    auto run_full = [&](const Tensor<T, R>& xs, const Tensor<T, R>& gs, const CrossReplicaSum& hook) {
        auto xl = xs.clone(), wl = w.clone(), bl = b.clone();
        xl.requires_grad_(true);
        wl.requires_grad_(true);
        bl.requires_grad_(true);
        auto rm = Tensor<T, 1>::zeros({c}), rv = Tensor<T, 1>::ones({c});
        auto y = batch_norm(xl, rm, rv, wl, bl, true, 0.1, 1e-5, hook);
        sum(y * gs).backward();
        return Out{y.detach(), xl.grad(), wl.grad(), bl.grad()};
    };
    const Out plain = run_full(x, g, {});
    std::vector<Out> outs(static_cast<std::size_t>(world));
    ThreadReplicas reps(world);
    reps.run([&](int r, const CrossReplicaSum& hook) {
        const auto u = std::size_t(r);
        outs[u] = run_full(x.narrow(0, off[u], sizes[u]), g.narrow(0, off[u], sizes[u]), hook);
    });
    check_calls_alike(reps, 2);
    auto sum_w = Tensor<T, 1>::zeros({c}), sum_b = Tensor<T, 1>::zeros({c});
    for (int r = 0; r < world; ++r) {
        const auto u = std::size_t(r);
        INFO("rank " << r);
        check_close(outs[u].y, plain.y.narrow(0, off[u], sizes[u]), tol, "y");
        check_close(outs[u].gx, plain.gx.narrow(0, off[u], sizes[u]), tol, "x.grad()");
        sum_w = eval(sum_w + outs[u].gw);
        sum_b = eval(sum_b + outs[u].gb);
    }
    check_close(sum_w, plain.gw, tol, "sum of weight.grad() over replicas");
    check_close(sum_b, plain.gb, tol, "sum of bias.grad() over replicas");
}

using S2 = Shape<2>;
using S4 = Shape<4>;

}  // namespace

TEST_CASE("synced batch_norm_forward / backward equal plain batch norm on the batch of all replicas") {
    SECTION("double, [N, C, H, W]") {
        check_ops<double, 4>({2, 2}, S4{0, 3, 4, 5}, 1e-12);
        check_ops<double, 4>({1, 3}, S4{0, 3, 4, 5}, 1e-12);
        check_ops<double, 4>({2, 2, 2}, S4{0, 3, 4, 5}, 1e-12);
        check_ops<double, 4>({3, 1, 4}, S4{0, 3, 4, 5}, 1e-12);
    }
    SECTION("double, [N, C] (a replica may hold one sample)") {
        check_ops<double, 2>({4, 4}, S2{0, 5}, 1e-12);
        check_ops<double, 2>({1, 6}, S2{0, 5}, 1e-12);
        check_ops<double, 2>({3, 3, 3}, S2{0, 5}, 1e-12);
        check_ops<double, 2>({2, 1, 5}, S2{0, 5}, 1e-12);
    }
    SECTION("float, [N, C, H, W] and [N, C]") {
        check_ops<float, 4>({2, 2}, S4{0, 3, 4, 5}, 1e-5);
        check_ops<float, 4>({1, 3}, S4{0, 3, 4, 5}, 1e-5);
        check_ops<float, 4>({2, 2, 2}, S4{0, 3, 4, 5}, 1e-5);
        check_ops<float, 4>({3, 1, 4}, S4{0, 3, 4, 5}, 1e-5);
        check_ops<float, 2>({4, 4}, S2{0, 5}, 1e-5);
        check_ops<float, 2>({2, 1, 5}, S2{0, 5}, 1e-5);
    }
    SECTION("a replica with an empty batch still takes part") {
        check_ops<double, 4>({3, 0, 2}, S4{0, 3, 2, 3}, 1e-12);
        check_ops<double, 2>({0, 4}, S2{0, 3}, 1e-12);
    }
    SECTION("inputs large enough to split over the thread pool while the replicas share it") {
        // The sums over 10^4 values cancel (grad_w is ~20 from terms of ~20 each), and the
        // replicas add them in another order than one process: 1e-10, not 1e-12.
        check_ops<double, 4>({5, 8}, S4{0, 16, 24, 24}, 1e-10);
        check_ops<float, 4>({6, 2, 5}, S4{0, 8, 32, 32}, 1e-5);
        check_ops<double, 2>({3000, 5000, 2000}, S2{0, 7}, 1e-10);
    }
    SECTION("one replica with a collective is plain batch norm") {
        check_ops<double, 4>({4}, S4{0, 3, 4, 5}, 1e-12);
    }
}

TEST_CASE("synced batch_norm through autograd, with backward() in every replica's thread at once") {
    check_autograd<double, 4>({2, 2}, S4{0, 3, 4, 5}, 1e-12);
    check_autograd<double, 4>({3, 1, 2}, S4{0, 3, 4, 5}, 1e-12);
    check_autograd<double, 2>({1, 5}, S2{0, 4}, 1e-12);
    check_autograd<double, 2>({2, 3, 4}, S2{0, 4}, 1e-12);
    check_autograd<float, 4>({1, 3}, S4{0, 3, 4, 5}, 1e-5);
    check_autograd<float, 2>({2, 3, 4}, S2{0, 4}, 1e-5);
}

TEST_CASE("synced batch_norm in evaluation ignores the collective") {
    Generator gen(3);
    const auto x = random_input<double>(S4{4, 3, 2, 2}, gen);
    const auto rm = random_vector<double>(3, gen, -0.5), rv = random_vector<double>(3, gen, 0.5);
    bool called = false;
    const CrossReplicaSum hook = [&](std::span<double>) { called = true; };
    auto xl = x.clone();
    xl.requires_grad_(true);
    auto y = batch_norm(xl, rm, rv, {}, {}, false, 0.1, 1e-5, hook);
    sum(y).backward();
    CHECK_FALSE(called);
    check_close(y, batch_norm(x, rm, rv, {}, {}, false), 0, "y in evaluation");
}

TEST_CASE("synced batch_norm names the global count when all replicas together hold one value") {
    ThreadReplicas reps(2);
    const std::vector<index_t> sizes{1, 0};
    REQUIRE_THROWS_WITH(reps.run([&](int r, const CrossReplicaSum& hook) {
                            auto x = Tensor<double, 2>::randn({sizes[std::size_t(r)], 3});
                            batch_norm(x, {}, {}, {}, {}, true, 0.1, 1e-5, hook);
                        }),
                        Catch::Contains("over all replicas, got 1"));
    // Plain training still refuses a single value per channel.
    REQUIRE_THROWS_WITH(batch_norm(Tensor<double, 2>::randn({1, 3}), {}, {}, {}, {}, true),
                        Catch::Contains("more than one value per channel"));
}

TEST_CASE("nn::BatchNorm2d with set_cross_replica_sum is SyncBatchNorm") {
    const std::vector<index_t> sizes{2, 1, 3};
    const int world = 3;
    const auto off = offsets_of(sizes);
    const index_t c = 4;
    Generator gen(5);
    const auto x = random_input<double>(S4{off.back(), c, 3, 3}, gen);
    const auto g = random_input<double>(S4{off.back(), c, 3, 3}, gen);

    // Two training steps so that the running statistics and num_batches_tracked move twice.
    auto step = [&](nn::BatchNorm2d<double>& bn, const Tensor<double, 4>& xs, const Tensor<double, 4>& gs) {
        auto xl = xs.clone();
        xl.requires_grad_(true);
        auto y = bn(xl);
        sum(y * gs).backward();
        return std::make_pair(y.detach(), xl.grad());
    };
    nn::BatchNorm2d<double> plain(c);
    CHECK_FALSE(plain.synchronized());
    step(plain, x, g);
    const auto [y_plain, gx_plain] = step(plain, x, g);

    std::vector<std::unique_ptr<nn::BatchNorm2d<double>>> bns;
    for (int r = 0; r < world; ++r) bns.push_back(std::make_unique<nn::BatchNorm2d<double>>(c));
    std::vector<Tensor<double, 4>> ys(static_cast<std::size_t>(world)), gxs(static_cast<std::size_t>(world));
    ThreadReplicas reps(world);
    reps.run([&](int r, const CrossReplicaSum& hook) {
        const auto u = std::size_t(r);
        auto& bn = *bns[u];
        bn.set_cross_replica_sum(hook);
        const auto xr = x.narrow(0, off[u], sizes[u]), gr = g.narrow(0, off[u], sizes[u]);
        step(bn, xr, gr);
        std::tie(ys[u], gxs[u]) = step(bn, xr, gr);
    });
    check_calls_alike(reps, 4);
    auto sum_w = Tensor<double, 1>::zeros({c}), sum_b = Tensor<double, 1>::zeros({c});
    for (int r = 0; r < world; ++r) {
        const auto u = std::size_t(r);
        INFO("rank " << r);
        const auto& bn = *bns[u];
        CHECK(bn.synchronized());
        check_close(ys[u], y_plain.narrow(0, off[u], sizes[u]), 1e-12, "y");
        check_close(gxs[u], gx_plain.narrow(0, off[u], sizes[u]), 1e-12, "x.grad()");
        check_close(bn.running_mean, plain.running_mean, 1e-12, "running_mean");
        check_close(bn.running_var, plain.running_var, 1e-12, "running_var");
        CHECK(bn.num_batches_tracked.item() == 2.0);
        sum_w = eval(sum_w + bn.weight.grad());
        sum_b = eval(sum_b + bn.bias.grad());
    }
    check_close(sum_w, plain.weight.grad(), 1e-12, "sum of weight.grad() over replicas");
    check_close(sum_b, plain.bias.grad(), 1e-12, "sum of bias.grad() over replicas");

    // Evaluation never calls the collective, with or without running statistics.
    for (bool track : {true, false}) {
        INFO("track_running_stats " << track);
        nn::BatchNorm2d<double> bn(c, 1e-5, 0.1, true, track), reference(c, 1e-5, 0.1, true, track);
        bool called = false;
        bn.set_cross_replica_sum([&](std::span<double>) { called = true; });
        bn.eval();
        reference.eval();
        check_close(bn(x), reference(x), 0, "evaluation");
        CHECK_FALSE(called);
    }
    nn::BatchNorm2d<double> bn(c);
    bn.set_cross_replica_sum([](std::span<double>) {});
    CHECK(bn.synchronized());
    bn.set_cross_replica_sum({});
    CHECK_FALSE(bn.synchronized());
}

// The whole W-replica computation as one function of the batch of all replicas (and of the
// shared weight and bias): F = sum over replicas of <y_r, r_r> with fixed random weights r. Each
// evaluation runs the replicas in threads; the analytic gradient comes from every replica's
// backward() (x's rows from each, weight and bias summed over replicas).
template <int R>
void check_synced_gradient(const std::vector<index_t>& sizes, Shape<R> sample) {
    using TR = Tensor<double, R>;
    using T1 = Tensor<double, 1>;
    const int world = int(sizes.size());
    const auto off = offsets_of(sizes);
    const auto shape = with_batch(sample, off.back());
    const index_t c = shape[1];
    INFO("world " << world << ", input " << shape);
    Generator gen(21);
    auto x = TR::randn(shape, gen).contiguous().clone();
    auto w = T1::randn({c}, gen).clone(), b = T1::randn({c}, gen).clone();
    const auto weights = TR::randn(shape, gen);
    const GradcheckOptions opt;

    std::vector<TR> gx(static_cast<std::size_t>(world));
    std::vector<T1> gw(static_cast<std::size_t>(world)), gb(static_cast<std::size_t>(world));
    {
        ThreadReplicas reps(world);
        reps.run([&](int r, const CrossReplicaSum& hook) {
            const auto u = std::size_t(r);
            auto xl = x.narrow(0, off[u], sizes[u]).clone(), wl = w.clone(), bl = b.clone();
            xl.requires_grad_(true);
            wl.requires_grad_(true);
            bl.requires_grad_(true);
            auto y = batch_norm(xl, {}, {}, wl, bl, true, 0.1, 1e-5, hook);
            sum(y * weights.narrow(0, off[u], sizes[u])).backward();
            gx[u] = xl.grad();
            gw[u] = wl.grad();
            gb[u] = bl.grad();
        });
    }
    auto F = [&] {
        std::vector<double> part(static_cast<std::size_t>(world));
        ThreadReplicas reps(world);
        reps.run([&](int r, const CrossReplicaSum& hook) {
            const auto u = std::size_t(r);
            NoGrad no_grad;
            const auto y = batch_norm(x.narrow(0, off[u], sizes[u]), {}, {}, w, b, true, 0.1, 1e-5, hook).contiguous();
            const auto wr = weights.narrow(0, off[u], sizes[u]).contiguous();
            double s = 0;
            for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * wr.data()[i];
            part[u] = s;
        });
        return std::accumulate(part.begin(), part.end(), 0.0);
    };
    auto analytic_w = T1::zeros({c}), analytic_b = T1::zeros({c});
    for (int r = 0; r < world; ++r) {
        analytic_w = eval(analytic_w + gw[std::size_t(r)]);
        analytic_b = eval(analytic_b + gb[std::size_t(r)]);
    }
    std::vector<TR> gx_parts;
    for (const auto& t : gx) gx_parts.push_back(t);
    const auto analytic_x = cat(gx_parts, 0).contiguous();

    // Moves each element by ±eps, as weft::gradcheck does, and compares with the same rule.
    std::ostringstream msg;
    index_t bad = 0, checked = 0;
    auto compare = [&](double* p, double analytic, const char* what, index_t j) {
        const double saved = *p;
        *p = saved + opt.eps;
        const double lp = F();
        *p = saved - opt.eps;
        const double lm = F();
        *p = saved;
        const double numeric = (lp - lm) / (2 * opt.eps);
        ++checked;
        if (!(std::abs(analytic - numeric) <= opt.atol + opt.rtol * std::abs(numeric)) && bad++ < opt.max_reported)
            msg << what << " element " << j << ": analytic " << analytic << ", numeric " << numeric << "\n";
    };
    for (index_t j = 0; j < x.numel(); ++j) compare(x.data() + j, analytic_x.data()[j], "x", j);
    for (index_t j = 0; j < c; ++j) compare(w.data() + j, analytic_w.data()[j], "weight", j);
    for (index_t j = 0; j < c; ++j) compare(b.data() + j, analytic_b.data()[j], "bias", j);
    INFO(msg.str());
    CHECK(checked == x.numel() + 2 * c);
    CHECK(bad == 0);
}

TEST_CASE("gradcheck synced batch_norm over 2 replicas", "[gradcheck]") {
    check_synced_gradient<4>({2, 3}, S4{0, 3, 2, 2});
}

TEST_CASE("gradcheck synced batch_norm over 3 replicas on a 2-D input", "[gradcheck]") {
    check_synced_gradient<2>({1, 2, 3}, S2{0, 3});
}
