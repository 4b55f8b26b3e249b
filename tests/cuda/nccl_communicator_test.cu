// dist::NcclCommunicator (dist/nccl_communicator.cuh) in a world of one GPU: every collective
// leaves (all_reduce, broadcast) or copies (all_gather) the rank's own values, bit for bit, for each
// element type; the collective waits for the compute stream's pending writes; Work completes in
// order; bad input is refused with the op's name. Compiled only in builds with NCCL (WEFT_NCCL):
// the multi-rank sums are checked by the distributed tests with more than one GPU.
#include "common.cuh"

#if defined(WEFT_NCCL) && WEFT_NCCL

#include <cstdint>
#include <cstdlib>
#include <vector>

#include <weft/dist/nccl_communicator.cuh>

using namespace weft;
using namespace weft_test;
using Catch::Matchers::Contains;

namespace {

dist::NcclCommunicator make_world_of_one() {
    ncclUniqueId id{};
    REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
    return dist::NcclCommunicator(0, 1, id, weft::cuda::current_device());
}

// Random device tensors of each element type, from a fixed seed.
template <class T>
Tensor<T, 2, Cuda> random_device(const Shape<2>& s, std::uint64_t seed) {
    Generator g(seed);
    if constexpr (std::is_floating_point_v<T>) return Tensor<T, 2, Cuda>::randn(s, g);
    else if constexpr (std::same_as<T, bf16> || std::same_as<T, weft::half>)
        return Tensor<T, 2, Cuda>(cast<T>(Tensor<float, 2, Cuda>::randn(s, g)));
    else if constexpr (std::same_as<T, bool>)
        return Tensor<T, 2, Cuda>(cast<bool>(Tensor<std::int32_t, 2, Cuda>::randint(0, 2, s, g)));
    else if constexpr (std::same_as<T, std::uint8_t>) return Tensor<T, 2, Cuda>::randint(0, 256, s, g);
    else return Tensor<T, 2, Cuda>::randint(-1000000, 1000000, s, g);
}

template <class T>
void check_collectives_keep_values(dist::NcclCommunicator& comm) {
    INFO("dtype " << dtype_name(dtype_of<T>));
    const Shape<2> s{37, 1001};  // odd sizes: no multiple of NCCL's chunking
    auto t = random_device<T>(s, 11);
    const auto before = host_dense(t);

    const std::vector<dist::ReduceOp> ops = std::same_as<T, bool>
                                                ? std::vector<dist::ReduceOp>{dist::ReduceOp::max, dist::ReduceOp::min}
                                                : std::vector<dist::ReduceOp>{dist::ReduceOp::sum, dist::ReduceOp::max,
                                                                              dist::ReduceOp::min};
    for (const auto op : ops) {
        comm.all_reduce(t, op);
        require_identical(t, before);
    }
    comm.broadcast(t, 0);
    require_identical(t, before);

    Tensor<T, 2, Cuda> global = Tensor<T, 2, Cuda>::zeros({s[0] * comm.size(), s[1]});
    comm.all_gather(t, global);
    require_identical(global, before);
}

}  // namespace

TEST_CASE("nccl: a world of one reports itself", "[cuda][nccl]") {
    auto comm = make_world_of_one();
    REQUIRE(comm.rank() == 0);
    REQUIRE(comm.size() == 1);
    REQUIRE(comm.backend() == "nccl");
    REQUIRE(comm.device() == Cuda::name);
    REQUIRE(comm.cuda_device() == weft::cuda::current_device());
    REQUIRE(comm.stream() != nullptr);
    comm.barrier();

    // from_env needs no rendezvous for a world of one.
    auto alone = dist::NcclCommunicator::from_env(0, 1, 0);
    REQUIRE(alone->size() == 1);
    alone->barrier();
    // A world of two without any rendezvous variable (or, with several GPUs, a local rank past them).
    ::unsetenv("WEFT_RENDEZVOUS");
    ::unsetenv("WEFT_MASTER_ADDR");
    ::unsetenv("WEFT_MASTER_PORT");
    REQUIRE_THROWS_WITH(dist::NcclCommunicator::from_env(1, 2, weft::cuda::device_count()),
                        Contains("local rank") || Contains("WEFT_RENDEZVOUS"));
}

TEST_CASE("nccl: all_reduce, broadcast and all_gather keep a single rank's values, every dtype", "[cuda][nccl]") {
    auto comm = make_world_of_one();
    check_collectives_keep_values<float>(comm);
    check_collectives_keep_values<double>(comm);
    check_collectives_keep_values<bf16>(comm);
    check_collectives_keep_values<weft::half>(comm);
    check_collectives_keep_values<std::int32_t>(comm);
    check_collectives_keep_values<std::int64_t>(comm);
    check_collectives_keep_values<std::uint8_t>(comm);
    check_collectives_keep_values<bool>(comm);
}

TEST_CASE("nccl: a collective sees what the compute stream wrote before the call", "[cuda][nccl]") {
    auto comm = make_world_of_one();
    // A large generate kernel on the compute stream, then at once (no host wait) an out-of-place
    // all_gather on the communicator's own stream: without the event ordering it would copy the
    // buffer's stale contents (zeros) while the kernel is still writing.
    const index_t n = index_t(1) << 25;  // 128 MiB of floats: the kernel takes a while
    for (std::uint64_t seed : {1ull, 2ull, 3ull}) {
        INFO("seed " << seed);
        auto src = Tensor<float, 1, Cuda>::zeros({n});
        auto dst = Tensor<float, 1, Cuda>::zeros({n});
        weft::cuda::synchronize();
        Generator g(seed);
        src = Tensor<float, 1, Cuda>::rand({n}, g) * 3.0f + 1.0f;  // every value in [1, 4): none is 0
        auto w = comm.all_gather_async(src.data(), dst.data(), std::size_t(n), DType::f32);
        w.wait();
        REQUIRE(w.ready());
        require_identical(dst, src);
    }
}

TEST_CASE("nccl: many collectives in flight complete, waited for in any order", "[cuda][nccl]") {
    auto comm = make_world_of_one();
    std::vector<Tensor<float, 1, Cuda>> bufs;
    std::vector<Tensor<float, 1, Cpu>> want;
    std::vector<dist::Work> works;
    for (int i = 0; i < 24; ++i) {  // DenseCLIP's gradients in 25 MB buckets are about this many
        Generator g(100 + i);
        bufs.push_back(Tensor<float, 1, Cuda>::randn({1000 + 4099 * i}, g));
        want.push_back(host_dense(bufs.back()));
    }
    for (auto& b : bufs) works.push_back(comm.all_reduce_async(b));
    for (int i = int(works.size()) - 1; i >= 0; --i) works[std::size_t(i)].wait();
    for (std::size_t i = 0; i < bufs.size(); ++i) {
        REQUIRE(works[i].ready());
        require_identical(bufs[i], want[i]);
    }
    // The communicator is destroyed with nothing pending; a fresh one works on the same device.
}

TEST_CASE("nccl: bad input is refused, naming the collective", "[cuda][nccl]") {
    auto comm = make_world_of_one();
    auto host = Tensor<float, 1, Cpu>::zeros({8});
    REQUIRE_THROWS_WITH(comm.all_reduce(host), Contains("all_reduce") && Contains("cuda"));
    REQUIRE_THROWS_WITH(comm.broadcast(host), Contains("broadcast") && Contains("cuda"));

    auto flags = Tensor<bool, 1, Cuda>::full({8}, true);
    REQUIRE_THROWS_WITH(comm.all_reduce(flags), Contains("all_reduce") && Contains("bool"));

    auto t = Tensor<float, 2, Cuda>::zeros({4, 3});
    REQUIRE_THROWS_WITH(comm.broadcast(t, 1), Contains("root 1"));
    auto wrong = Tensor<float, 2, Cuda>::zeros({5, 3});
    REQUIRE_THROWS_WITH(comm.all_gather(t, wrong), Contains("all_gather") && Contains("world size"));
    auto strided = t.transpose(0, 1);
    REQUIRE_THROWS_WITH(comm.all_reduce(strided), Contains("contiguous"));
    REQUIRE_THROWS_WITH(comm.all_reduce_value(1.0), Contains("device memory"));

    // None of these reached NCCL: the communicator still works.
    comm.all_reduce(t);
    comm.barrier();

    ncclUniqueId id{};
    REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
    REQUIRE_THROWS_WITH(dist::NcclCommunicator(1, 1, id, 0), Contains("rank 1") && Contains("world of 1"));
    REQUIRE_THROWS_WITH(dist::NcclCommunicator(0, 1, id, weft::cuda::device_count()), Contains("CUDA device"));
}

#endif  // WEFT_NCCL
