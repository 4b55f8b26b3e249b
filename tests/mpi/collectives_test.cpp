// MpiCommunicator's collectives, run by ctest under mpirun with 2 and 3 processes (tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <numeric>

#include "world.hpp"

using namespace weft;

TEST_CASE("MPI: rank and size come from the launcher", "[mpi]") {
    auto& comm = test::world();
    const auto env = dist::launch_env();
    CHECK(comm.rank() == env.rank);
    CHECK(comm.size() == env.size);
    CHECK(comm.size() >= 2);
    CHECK(comm.backend() == "mpi");
}

TEST_CASE("MPI: all_reduce sums, maxes and mins, in float, double and int64", "[mpi]") {
    auto& comm = test::world();
    const int r = comm.rank(), n = comm.size();
    auto f = Tensor<float, 2>::full({2, 3}, float(r + 1));
    comm.all_reduce(f);
    CHECK(f(1, 2) == float(n * (n + 1) / 2));
    auto d = Tensor<double, 1>::from_vector({double(r), -double(r)}, {2});
    comm.all_reduce(d, dist::ReduceOp::max);
    CHECK(d(0) == double(n - 1));
    CHECK(d(1) == 0.0);
    auto i = Tensor<std::int64_t, 1>::full({3}, std::int64_t(10 + r));
    comm.all_reduce(i, dist::ReduceOp::min);
    CHECK(i(2) == 10);
    CHECK(comm.all_reduce_value(0.5 * (r + 1)) == Approx(0.25 * n * (n + 1)));
    auto h = Tensor<bf16, 1>::zeros({2});
    CHECK_THROWS_WITH(comm.all_reduce(h), Catch::Contains("MPI cannot reduce bfloat16"));
}

TEST_CASE("MPI: collectives in flight complete in issue order", "[mpi]") {
    auto& comm = test::world();
    const int r = comm.rank(), n = comm.size();
    std::vector<Tensor<double, 1>> bufs;
    std::vector<dist::Work> work;
    for (int k = 0; k < 8; ++k) bufs.push_back(Tensor<double, 1>::full({1000 * (k + 1)}, double(k * (r + 1))));
    for (auto& b : bufs) work.push_back(comm.all_reduce_async(b));
    for (auto& w : work) w.wait();
    for (int k = 0; k < 8; ++k) {
        CHECK(bufs[std::size_t(k)](0) == double(k * n * (n + 1) / 2));
        CHECK(bufs[std::size_t(k)](1000 * (k + 1) - 1) == double(k * n * (n + 1) / 2));
    }
}

TEST_CASE("MPI: broadcast from any root, all_gather in rank order", "[mpi]") {
    auto& comm = test::world();
    const int r = comm.rank(), n = comm.size();
    const int root = n - 1;
    auto b = Tensor<float, 1>::full({5}, float(r));
    comm.broadcast(b, root);
    CHECK(b(4) == float(root));
    auto mine = Tensor<std::int64_t, 2>::full({2, 2}, std::int64_t(r));
    auto all = Tensor<std::int64_t, 2>::zeros({2 * n, 2});
    comm.all_gather(mine, all);
    for (int k = 0; k < n; ++k) {
        CHECK(all(2 * k, 0) == k);
        CHECK(all(2 * k + 1, 1) == k);
    }
    comm.barrier();
}
