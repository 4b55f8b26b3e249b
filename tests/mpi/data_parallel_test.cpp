// DataParallel under mpirun: N ranks with batch b train exactly as one process with batch N·b.
// Every rank also trains the single-process reference itself (the whole global batch, no
// communication) and compares: losses, every gradient, the batch norm's running statistics and
// the parameters after several steps. The model has what couples samples or draws randomness:
// synchronized batch norm, element-wise dropout and dropout2d, a cross-entropy with ignored
// pixels, and a parameter no rank uses (it must stay without gradient, as in one process).
#include <catch2/catch.hpp>

#include <weft/dist/data_parallel.hpp>
#include <weft/dist/sync_batch_norm.hpp>
#include <weft/models/segmentation/dropout2d.hpp>
#include <weft/nn/batch_norm2d.hpp>
#include <weft/nn/conv2d.hpp>
#include <weft/nn/dropout.hpp>
#include <weft/ops/cross_entropy.hpp>

#include "world.hpp"

#include "support/tensor_values.hpp"

using namespace weft;
using test::max_abs_diff;

namespace {

struct Net : nn::Module<double> {
    nn::Conv2d<double> conv1;
    nn::BatchNorm2d<double> bn;
    nn::Dropout<double> drop;
    nn::Conv2d<double> conv2;
    Tensor<double, 1> unused;
    Generator* gen;

    explicit Net(Generator& g)
        : conv1(3, 4, 3, {.padding = {1, 1}}, true, g), bn(4), drop(0.3, g), conv2(4, 5, 1, {}, true, g), gen(&g) {
        unused = Tensor<double, 1>::zeros({3});
        register_module("conv1", conv1);
        register_module("bn", bn);
        register_module("drop", drop);
        register_module("conv2", conv2);
        register_parameter("unused", unused);
    }
    // x [B, 3, H, W], labels [B, H, W] -> mean cross-entropy over all pixels (mmseg 0.19's)
    Tensor<double, 0> loss(const Tensor<double, 4>& x, const Tensor<std::int64_t, 3>& labels) const {
        auto h = drop(bn(conv1(x)));                                         // [B, 4, H, W]
        h = seg::dropout2d(h, 0.25, is_training(), *gen);                       // whole channels
        CrossEntropyOptions<double, Cpu> ce;
        ce.ignore_index = 255;
        ce.reduction = Reduction::mean_all;
        return cross_entropy(conv2(h), labels, ce);                          // [B, 5, H, W] -> []
    }
};

void sgd_step(Net& net, double lr) {
    for (auto& p : net.parameters()) {
        auto g = p.grad_flat();
        if (!g.defined()) continue;
        auto w = p.flat();
        w = w - g * lr;  // in place
    }
}

}  // namespace

TEST_CASE("MPI: DataParallel with SyncBN and dropout equals one process on the global batch", "[mpi]") {
    auto& comm = test::world();
    const index_t world = comm.size(), rank = comm.rank(), b = 2;
    Generator data_gen(5);
    const auto x = Tensor<double, 4>::randn({world * b, 3, 6, 5}, data_gen);
    auto labels = Tensor<std::int64_t, 3>::randint(0, 6, {world * b, 6, 5}, data_gen);
    for (index_t i = 0; i < labels.numel(); ++i)
        if (labels.data()[i] == 5) labels.data()[i] = 255;  // a sixth of the pixels ignored
    const auto x_mine = x.slice(0, rank * b, rank * b + b).contiguous();
    const auto labels_mine = labels.slice(0, rank * b, rank * b + b).contiguous();

    Generator gen_ref(11), gen_dp(11);
    Net ref(gen_ref), net(gen_dp);
    ref.train();
    net.train();
    CHECK(dist::synchronize_batch_norm(net, comm) == 1);
    dist::DataParallel<double> dp(comm, net, {.bucket_mb = 1e-4});  // several buckets
    CHECK(dp.bucket_count() > 1);

    for (int step = 0; step < 3; ++step) {
        INFO("step " << step);
        for (auto& p : ref.parameters()) p.clear_grad();
        for (auto& p : net.parameters()) p.clear_grad();
        Tensor<double, 0> ref_loss = ref.loss(x, labels);
        ref_loss.backward();
        Tensor<double, 0> mine;
        {
            ReplicaScope slice(gen_dp, std::uint64_t(rank), std::uint64_t(world));
            mine = net.loss(x_mine, labels_mine);
            mine.backward();
        }
        dp.synchronize();
        CHECK(comm.all_reduce_value(mine.item()) / double(world) == Approx(ref_loss.item()).epsilon(1e-12));
        CHECK(gen_dp.offset == gen_ref.offset);
        const auto a = ref.named_parameters(), d = net.named_parameters();
        for (std::size_t i = 0; i < a.size(); ++i) {
            INFO(a[i].name);
            const auto ga = a[i].tensor.grad_flat(), gd = d[i].tensor.grad_flat();
            REQUIRE(ga.defined() == gd.defined());
            if (ga.defined()) CHECK(max_abs_diff(ga, gd) < 1e-12);
        }
        CHECK(!net.unused.grad().defined());
        sgd_step(ref, 0.1);
        sgd_step(net, 0.1);
    }
    const auto a = ref.named_parameters(), d = net.named_parameters();
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(max_abs_diff(a[i].tensor.flat(), d[i].tensor.flat()) < 1e-12);
    CHECK(max_abs_diff(ref.bn.running_mean, net.bn.running_mean) < 1e-12);
    CHECK(max_abs_diff(ref.bn.running_var, net.bn.running_var) < 1e-12);
}

TEST_CASE("MPI: DataParallel starts every rank from rank 0's parameters", "[mpi]") {
    auto& comm = test::world();
    Generator gen(100 + std::uint64_t(comm.rank()));  // a different initialisation on every rank
    Net net(gen);
    dist::DataParallel<double> dp(comm, net);
    auto w = net.conv1.weight.contiguous().reshape(net.conv1.weight.numel()).clone();
    auto first = w.clone();
    comm.broadcast(first, 0);
    CHECK(max_abs_diff(w, first) == 0.0);
}
