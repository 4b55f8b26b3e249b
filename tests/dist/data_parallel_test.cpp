// The pieces of data-parallel training that one process can check: autograd's gradient-ready
// callbacks, the world-of-one communicator, and DataParallel over it (which must leave every
// gradient as it was). tests/mpi runs the same under mpirun against the single-process result.
#include <catch2/catch.hpp>

#include <weft/dist/data_parallel.hpp>
#include <weft/dist/local_communicator.hpp>
#include <weft/nn/linear.hpp>
#include <weft/nn/sequential.hpp>
#include <weft/nn/activation.hpp>

#include "support/tensor_values.hpp"

using namespace weft;
using test::max_abs_diff;


TEST_CASE("on_grad_ready fires once per backward, after the leaf's last contribution", "[dist][autograd]") {
    auto w = Tensor<double, 1>::from_vector({1.0, 2.0}, {2}).requires_grad_(true);
    auto unused = Tensor<double, 1>::zeros({2}).requires_grad_(true);
    std::vector<double> seen;  // w's gradient as each call saw it
    int unused_calls = 0;
    autograd::on_grad_ready(w, [&] { seen.push_back(w.grad()(0)); });
    autograd::on_grad_ready(unused, [&] { ++unused_calls; });
    // w is used three times; the callback must see the complete sum 1 + 2 + 3 = 6 for element 0.
    Tensor<double, 0> loss = sum(w * 1.0) + sum(w * 2.0) + sum(w * 3.0);
    loss.backward();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == 6.0);
    CHECK(unused_calls == 0);  // not reached by this backward
    Tensor<double, 0> again = sum(w * w);
    again.backward();
    REQUIRE(seen.size() == 2);
    CHECK(seen[1] == 6.0 + 2.0);  // accumulates onto the first backward's 6
    autograd::on_grad_ready(w, nullptr);
    Tensor<double, 0> third = sum(w);
    third.backward();
    CHECK(seen.size() == 2);
    CHECK_THROWS_WITH(autograd::on_grad_ready(Tensor<double, 1>::zeros({2}), [] {}),
                      Catch::Contains("must be a leaf that requires grad"));
}

TEST_CASE("LocalCommunicator: the world of one", "[dist]") {
    dist::LocalCommunicator comm;
    CHECK(comm.rank() == 0);
    CHECK(comm.size() == 1);
    auto t = Tensor<float, 2>::from_vector({1, 2, 3, 4}, {2, 2});
    comm.all_reduce(t);
    comm.broadcast(t, 0);
    CHECK(t(1, 1) == 4.0f);
    Tensor<float, 2> g = Tensor<float, 2>::zeros({2, 2});
    comm.all_gather(t, g);
    CHECK(g(1, 0) == 3.0f);
    CHECK(comm.all_reduce_value(2.5) == 2.5);
    Tensor<float, 2> wrong = Tensor<float, 2>::zeros({4, 2});
    CHECK_THROWS_WITH(comm.all_gather(t, wrong), Catch::Contains("axis 0 times the world size 1"));
    CHECK_THROWS_WITH(comm.broadcast(t, 1), Catch::Contains("root 1 is not a rank of a world of 1"));
    auto strided = Tensor<float, 2>::zeros({2, 2}).t();
    CHECK_THROWS_WITH(comm.all_reduce(strided), Catch::Contains("contiguous"));
}

TEST_CASE("DataParallel over one process leaves the gradients as they are", "[dist]") {
    manual_seed(3);
    nn::Sequential<double, 2> net;
    net.emplace_back<nn::Linear<double>>(5, 7);
    net.emplace_back<nn::GELU<double>>();
    net.emplace_back<nn::Linear<double>>(7, 3);
    const auto x = Tensor<double, 2>::randn({4, 5});
    auto loss_of = [&] { return mean(net(x) * net(x)); };

    loss_of().backward();
    std::vector<Tensor<double, 1>> plain;
    for (auto& p : net.parameters()) plain.push_back(p.grad_flat().clone());
    for (auto& p : net.parameters()) p.clear_grad();

    dist::LocalCommunicator comm;
    // Tiny buckets: every parameter its own bucket, so the ordering logic is exercised.
    dist::DataParallel<double> dp(comm, net, {.bucket_mb = 1e-6});
    CHECK(dp.bucket_count() == 4);
    for (int step = 0; step < 2; ++step) {
        for (auto& p : net.parameters()) p.clear_grad();
        loss_of().backward();
        dp.synchronize();
        auto params = net.parameters();
        for (std::size_t i = 0; i < params.size(); ++i) CHECK(max_abs_diff(params[i].grad_flat(), plain[i]) == 0.0);
    }
    // A backward that completes a gradient twice without synchronize() in between is refused.
    loss_of().backward();
    CHECK_THROWS_WITH(loss_of().backward(), Catch::Contains("call synchronize() after every backward()"));
}
