// dist::all_gather under mpirun, and CLIP's contrastive loss over the gathered global batch:
// N ranks with batch b train exactly as one process with batch N·b. Every rank also computes the
// single-process reference itself (the whole global batch, no communication) and compares the
// loss, every gradient after DataParallel's mean, and the parameters after a few SGD steps with
// the logit-scale clamp.
#include <catch2/catch.hpp>

#include <cmath>

#include <weft/dist/all_gather.hpp>
#include <weft/dist/data_parallel.hpp>
#include <weft/expr.hpp>
#include <weft/loss/clip_contrastive.hpp>
#include <weft/nn/linear.hpp>

#include "world.hpp"

#include "support/tensor_values.hpp"

using namespace weft;
using test::max_abs_diff;

namespace {

// Two encoders onto a shared embedding and CLIP's temperature.
struct TwoTower : nn::Module<double> {
    nn::Linear<double> image;
    nn::Linear<double> text;
    Tensor<double, 0> logit_scale;

    explicit TwoTower(Generator& g) : image(6, 4, true, g), text(5, 4, false, g) {
        // ln 90: the first step (lr 2, random features, so the loss falls with the scale) takes it
        // below 0, where the clamp must act identically on every rank and in the reference.
        logit_scale = Tensor<double, 0>::full({}, std::log(90.0));
        register_module("image", image);
        register_module("text", text);
        register_parameter("logit_scale", logit_scale);
    }
};

// Returns whether the clamp changed logit_scale.
bool sgd_step(TwoTower& net, double lr) {
    for (auto& p : net.parameters()) {
        auto g = p.grad_flat();
        if (!g.defined()) continue;
        auto w = p.flat();
        w = w - g * lr;  // in place
    }
    const double before = net.logit_scale.item();
    loss::clamp_logit_scale_(net.logit_scale);
    return net.logit_scale.item() != before;
}

}  // namespace

TEST_CASE("MPI: all_gather joins the ranks' tensors in rank order", "[mpi]") {
    auto& comm = test::world();
    const int r = comm.rank(), n = comm.size();
    auto x = Tensor<double, 3>::full({2, 3, 1}, double(r));
    x(1, 2, 0) = 10.0 + r;
    const auto g = dist::all_gather(x, comm);
    REQUIRE(g.shape() == Shape<3>{2 * n, 3, 1});
    for (int k = 0; k < n; ++k) {
        CHECK(g(2 * k, 0, 0) == double(k));
        CHECK(g(2 * k + 1, 1, 0) == double(k));
        CHECK(g(2 * k + 1, 2, 0) == 10.0 + k);
    }
}

TEST_CASE("MPI: all_gather's backward sums over the ranks and keeps the own rows", "[mpi]") {
    auto& comm = test::world();
    const int r = comm.rank(), n = comm.size();
    auto x = Tensor<double, 1>::full({2}, 1.0).requires_grad_(true);
    const auto g = dist::all_gather(x, comm);  // [2n]
    // Rank r weighs row i by (r + 1) · (i + 1): the sum over ranks is (i + 1) · n(n + 1)/2.
    auto w = Tensor<double, 1>::arange(1.0, double(2 * n + 1));
    Tensor<double, 0> l = sum(g * w * double(r + 1));
    l.backward();
    const double ranks = n * (n + 1) / 2.0;
    CHECK(x.grad()(0) == (2 * r + 1) * ranks);
    CHECK(x.grad()(1) == (2 * r + 2) * ranks);
}

TEST_CASE("MPI: all_gather of unequal batches is the same clear error on every rank", "[mpi]") {
    auto& comm = test::world();
    const auto x = Tensor<double, 2>::ones({comm.rank() == 1 ? 3 : 2, 4});
    CHECK_THROWS_WITH(dist::all_gather(x, comm), Catch::Contains("same shape") && Catch::Contains("rank 1 [3, 4]"));
    // Nothing was left in flight: the next collective matches on every rank.
    CHECK(comm.all_reduce_value(1.0) == double(comm.size()));
}

TEST_CASE("MPI: CLIP loss over gathered features equals one process on the global batch", "[mpi]") {
    auto& comm = test::world();
    const index_t world = comm.size(), rank = comm.rank(), b = 3;
    Generator data_gen(7);
    const auto images = Tensor<double, 2>::randn({world * b, 6}, data_gen);  // [N·b, 6]
    const auto texts = Tensor<double, 2>::randn({world * b, 5}, data_gen);   // [N·b, 5]
    const auto images_mine = images.slice(0, rank * b, rank * b + b).contiguous();
    const auto texts_mine = texts.slice(0, rank * b, rank * b + b).contiguous();

    Generator gen_ref(11), gen_dp(11 + std::uint64_t(rank));  // DataParallel starts all from rank 0's
    TwoTower ref(gen_ref), net(gen_dp);
    dist::DataParallel<double> dp(comm, net, {.bucket_mb = 3e-5});  // a few buckets
    CHECK(dp.bucket_count() > 1);

    bool clamped = false;
    for (int step = 0; step < 4; ++step) {
        INFO("step " << step);
        for (auto& p : ref.parameters()) p.clear_grad();
        for (auto& p : net.parameters()) p.clear_grad();
        Tensor<double, 0> ref_loss = loss::clip_contrastive(ref.image(images), ref.text(texts), ref.logit_scale);
        ref_loss.backward();

        const auto img = dist::all_gather(net.image(images_mine), comm);  // [N·b, 4]
        const auto txt = dist::all_gather(net.text(texts_mine), comm);    // [N·b, 4]
        Tensor<double, 0> mine = loss::clip_contrastive(img, txt, net.logit_scale);
        mine.backward();
        dp.synchronize();

        CHECK(mine.item() == Approx(ref_loss.item()).epsilon(1e-12));
        const auto a = ref.named_parameters(), d = net.named_parameters();
        REQUIRE(a.size() == d.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            INFO(a[i].name);
            const auto ga = a[i].tensor.grad_flat(), gd = d[i].tensor.grad_flat();
            REQUIRE(ga.defined());
            REQUIRE(gd.defined());
            CHECK(max_abs_diff(ga, gd) < 1e-12);
        }
        UNSCOPED_INFO("logit_scale " << ref.logit_scale.item() << " gradient " << ref.logit_scale.grad().item());
        const bool c = sgd_step(ref, 2.0);
        CHECK(sgd_step(net, 2.0) == c);
        clamped = clamped || c;
    }
    CHECK(clamped);  // the clamp took part
    const auto a = ref.named_parameters(), d = net.named_parameters();
    for (std::size_t i = 0; i < a.size(); ++i) {
        INFO(a[i].name);
        CHECK(max_abs_diff(a[i].tensor.flat(), d[i].tensor.flat()) < 1e-12);
    }
}

TEST_CASE("MPI: without the gather each rank's loss misses the other ranks' negatives", "[mpi]") {
    // Guards the test above against passing vacuously: local losses averaged are not the global loss.
    auto& comm = test::world();
    const index_t world = comm.size(), rank = comm.rank(), b = 3;
    Generator data_gen(7);
    const auto img = Tensor<double, 2>::randn({world * b, 4}, data_gen);
    const auto txt = Tensor<double, 2>::randn({world * b, 4}, data_gen);
    const auto scale = Tensor<double, 0>::full({}, std::log(20.0));
    const double global = loss::clip_contrastive(img, txt, scale).item();
    const double local = loss::clip_contrastive(img.slice(0, rank * b, rank * b + b).contiguous(),
                                                txt.slice(0, rank * b, rank * b + b).contiguous(), scale)
                             .item();
    CHECK(std::abs(comm.all_reduce_value(local) / double(world) - global) > 1e-3);
    const auto gathered = loss::clip_contrastive(
        dist::all_gather(img.slice(0, rank * b, rank * b + b).contiguous(), comm),
        dist::all_gather(txt.slice(0, rank * b, rank * b + b).contiguous(), comm), scale);
    CHECK(gathered.item() == Approx(global).epsilon(1e-14));
}
