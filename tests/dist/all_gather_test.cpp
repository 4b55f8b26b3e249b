// dist::all_gather in one process: the world of one (identity, gradient passes through), and a
// scripted two-rank world that plays the other rank, so that the row placement, the backward's
// all-reduce and the shape check are seen from rank 1. tests/mpi/all_gather_test.cpp runs it
// under mpirun against one process on the global batch.
#include <catch2/catch.hpp>

#include <cstring>

#include <weft/dist/all_gather.hpp>
#include <weft/dist/local_communicator.hpp>
#include <weft/expr.hpp>

using namespace weft;

namespace {

// Rank 1 of 2. The other rank's tensor is the local one plus 100 (or, with other_rows set, a
// tensor of that many rows: a mismatch); its gradient for the gathered tensor is 10 everywhere.
class ScriptedPair final : public dist::Communicator {
public:
    std::int64_t other_rows = -1;
    int all_reduces = 0;

    int rank() const override { return 1; }
    int size() const override { return 2; }
    std::string_view backend() const override { return "scripted"; }
    std::string_view device() const override { return Cpu::name; }

protected:
    dist::Work do_all_reduce(void* data, std::size_t count, DType type, dist::ReduceOp op) override {
        REQUIRE(type == DType::f64);
        REQUIRE(op == dist::ReduceOp::sum);
        ++all_reduces;
        auto* d = static_cast<double*>(data);
        for (std::size_t i = 0; i < count; ++i) d[i] += 10.0;
        return {};
    }
    dist::Work do_broadcast(void*, std::size_t, DType, int) override { return {}; }
    dist::Work do_all_gather(const void* send, void* recv, std::size_t count, DType type) override {
        std::memcpy(static_cast<char*>(recv) + count * dtype_size(type), send, count * dtype_size(type));
        if (type == DType::i64) {  // the shape check: rank 0's extents
            auto* shape0 = static_cast<std::int64_t*>(recv);
            std::memcpy(shape0, send, count * sizeof(std::int64_t));
            if (other_rows >= 0) shape0[0] = other_rows;
        } else {
            REQUIRE(type == DType::f64);
            const auto* s = static_cast<const double*>(send);
            auto* r = static_cast<double*>(recv);
            for (std::size_t i = 0; i < count; ++i) r[i] = s[i] + 100.0;
        }
        return {};
    }
    void do_barrier() override {}
};

}  // namespace

TEST_CASE("all_gather on a world of one is the identity and passes the gradient through", "[dist]") {
    dist::LocalCommunicator comm;
    Generator gen(4);
    auto x = Tensor<double, 2>::randn({3, 5}, gen).requires_grad_(true);
    auto w = Tensor<double, 2>::randn({3, 5}, gen);
    auto g = dist::all_gather(x, comm);
    REQUIRE(g.shape() == x.shape());
    for (index_t i = 0; i < 3; ++i)
        for (index_t j = 0; j < 5; ++j) CHECK(g(i, j) == x(i, j));
    CHECK(g.data() != x.data());  // a copy: writing it later cannot change x
    Tensor<double, 0> l = sum(g * w);
    l.backward();
    REQUIRE(x.grad().defined());
    for (index_t i = 0; i < 3; ++i)
        for (index_t j = 0; j < 5; ++j) CHECK(x.grad()(i, j) == w(i, j));
    // A strided view is gathered as its elements, and without grad nothing is recorded.
    const auto y = Tensor<double, 2>::randn({5, 3}, gen);
    const auto gy = dist::all_gather(y.t(), comm);
    CHECK(!gy.requires_grad());
    CHECK(gy(2, 4) == y(4, 2));
}

TEST_CASE("all_gather from rank 1 of 2: rank order, summed gradient, own rows only", "[dist]") {
    ScriptedPair comm;
    auto x = Tensor<double, 2>::from({{1.0, 2.0}, {3.0, 4.0}}).requires_grad_(true);
    auto g = dist::all_gather(x, comm);  // [4, 2]: rank 0's rows, then ours
    REQUIRE(g.shape() == Shape<2>{4, 2});
    CHECK(g(0, 0) == 101.0);
    CHECK(g(1, 1) == 104.0);
    CHECK(g(2, 0) == 1.0);
    CHECK(g(3, 1) == 4.0);
    const auto w = Tensor<double, 2>::from({{1, 2}, {3, 4}, {5, 6}, {7, 8}});
    Tensor<double, 0> l = sum(g * w);
    l.backward();
    CHECK(comm.all_reduces == 1);
    // Our rows 2 and 3 of (w + the other rank's 10).
    const auto gx = x.grad();
    CHECK(gx(0, 0) == 15.0);
    CHECK(gx(0, 1) == 16.0);
    CHECK(gx(1, 0) == 17.0);
    CHECK(gx(1, 1) == 18.0);
}

TEST_CASE("all_gather names every rank's shape when they differ", "[dist]") {
    ScriptedPair comm;
    comm.other_rows = 3;
    const auto x = Tensor<double, 2>::ones({2, 5});
    CHECK_THROWS_WITH(dist::all_gather(x, comm),
                      Catch::Contains("same shape") && Catch::Contains("rank 0 [3, 5]") &&
                          Catch::Contains("rank 1 [2, 5]"));
}
