// Backend<Cuda> (core/cuda/backend.cuh): factories and random numbers against the CPU, views and
// copies on the device, transfers between host and device, the caching allocator, streams, and
// CUDA errors turned into weft::Error.
#include "common.cuh"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace weft;
using namespace weft_test;
using Catch::Matchers::Contains;

namespace {

__global__ void noop_kernel() {}

}  // namespace

TEST_CASE("cuda: zeros, ones, full and arange match the CPU", "[cuda]") {
    require_identical(Tensor<float, 2, Cuda>::zeros({3, 1000}), Tensor<float, 2, Cpu>::zeros({3, 1000}));
    require_identical(Tensor<double, 3, Cuda>::ones({2, 3, 4}), Tensor<double, 3, Cpu>::ones({2, 3, 4}));
    require_identical(Tensor<bf16, 1, Cuda>::full({77}, bf16(1.5f)), Tensor<bf16, 1, Cpu>::full({77}, bf16(1.5f)));
    require_identical(Tensor<std::int64_t, 2, Cuda>::full({5, 5}, -7), Tensor<std::int64_t, 2, Cpu>::full({5, 5}, -7));
    require_identical(Tensor<bool, 1, Cuda>::full({9}, true), Tensor<bool, 1, Cpu>::full({9}, true));
    require_identical(Tensor<float, 1, Cuda>::arange(100000), Tensor<float, 1, Cpu>::arange(100000));
    require_identical(Tensor<std::int32_t, 1, Cuda>::arange(-5.0, 50.0, 3.0), Tensor<std::int32_t, 1, Cpu>::arange(-5.0, 50.0, 3.0));
    require_identical(Tensor<float, 1, Cuda>::arange(0.5, 100.0, 0.25), Tensor<float, 1, Cpu>::arange(0.5, 100.0, 0.25));
    // start + i * step in double may contract to one FMA on the device: equal after rounding to float
    // nearly always, so compare within one float ulp.
    require_close(Tensor<float, 1, Cuda>::arange(0.1, 7.0, 0.1), Tensor<float, 1, Cpu>::arange(0.1, 7.0, 0.1), 1.2e-7, 0);
}

TEST_CASE("cuda: rand and randint are bitwise identical to the CPU, randn within 1e-6", "[cuda]") {
    for (std::uint64_t seed : {0ull, 1ull, 123456789ull}) {
        INFO("seed " << seed);
        Generator gc(seed), gg(seed);
        // Odd sizes: the last Philox block is shared by fewer than four elements.
        require_identical(Tensor<float, 2, Cuda>::rand({333, 1001}, gg), Tensor<float, 2, Cpu>::rand({333, 1001}, gc));
        require_identical(Tensor<double, 1, Cuda>::rand({4097}, gg), Tensor<double, 1, Cpu>::rand({4097}, gc));
        require_identical(Tensor<bf16, 1, Cuda>::rand({999}, gg), Tensor<bf16, 1, Cpu>::rand({999}, gc));
        require_identical(Tensor<std::int32_t, 1, Cuda>::randint(-3, 11, {10001}, gg),
                          Tensor<std::int32_t, 1, Cpu>::randint(-3, 11, {10001}, gc));
        // A range above 2^32 takes the 64-bit modulo path.
        const std::int64_t lo = -(std::int64_t(1) << 40), hi = std::int64_t(1) << 41;
        require_identical(Tensor<std::int64_t, 1, Cuda>::randint(lo, hi, {5003}, gg),
                          Tensor<std::int64_t, 1, Cpu>::randint(lo, hi, {5003}, gc));
        require_identical(Tensor<std::uint8_t, 1, Cuda>::randint(0, 256, {777}, gg),
                          Tensor<std::uint8_t, 1, Cpu>::randint(0, 256, {777}, gc));
        // Box-Muller uses logf, sqrtf, sinf, cosf: CUDA's and glibc's differ by an ulp or two.
        require_close(Tensor<float, 2, Cuda>::randn({257, 513}, gg), Tensor<float, 2, Cpu>::randn({257, 513}, gc), 1e-6,
                      1e-7);
        require_close(Tensor<double, 1, Cuda>::randn({3001}, gg), Tensor<double, 1, Cpu>::randn({3001}, gc), 1e-13, 1e-15);
        // Both generators advanced alike.
        REQUIRE(gg.offset == gc.offset);
    }
    // The default generator works on the device too.
    manual_seed(42);
    const auto a = Tensor<float, 1, Cuda>::rand({100});
    manual_seed(42);
    require_identical(a, Tensor<float, 1, Cpu>::rand({100}));
}

TEST_CASE("cuda: views of device tensors, contiguous and clone", "[cuda]") {
    const auto x = randn_host(Shape<3>{4, 6, 10}, 200);
    const auto xg = to_gpu(x);
    require_identical(xg.permute(2, 0, 1).contiguous(), x.permute(2, 0, 1).contiguous());
    require_identical(xg.transpose(0, 2), x.transpose(0, 2));
    require_identical(xg.slice(2, 1, 9, 3), x.slice(2, 1, 9, 3));
    require_identical(xg.slice(1, -4, 100), x.slice(1, -4, 100));
    require_identical(xg.select(1, 2), x.select(1, 2));
    require_identical(xg[3], x[3]);
    require_identical(xg.narrow(2, 2, 5).contiguous(), x.narrow(2, 2, 5).contiguous());
    require_identical(xg.unsqueeze(1).expand(4, 3, 6, 10).contiguous(), x.unsqueeze(1).expand(4, 3, 6, 10).contiguous());
    require_identical(xg.reshape(24, 10), x.reshape(24, 10));
    require_identical(xg.view(4, 60), x.view(4, 60));
    require_identical(xg.flatten(), x.flatten());
    // reshape of a permuted view cannot be a view: it copies on the device.
    require_identical(xg.permute(1, 0, 2).reshape(6, 40), x.permute(1, 0, 2).reshape(6, 40));
    require_identical(xg.select(2, 7).t().contiguous(), x.select(2, 7).t().contiguous());
    // A view of a view of a view, with an offset, cloned.
    require_identical(xg.slice(0, 1, 4).transpose(1, 2).slice(2, 1, 6, 2).clone(),
                      x.slice(0, 1, 4).transpose(1, 2).slice(2, 1, 6, 2).clone());
    // Every element size goes through copy_strided.
    const Tensor<std::uint8_t, 3, Cpu> x8 = cast<std::uint8_t>(minimum(abs(x) * 40.0f, 255.0f));
    const Tensor<bf16, 3, Cpu> x16 = cast<bf16>(x);
    const Tensor<double, 3, Cpu> x64 = cast<double>(x);
    require_identical(to_gpu(x8).permute(2, 1, 0).contiguous(), x8.permute(2, 1, 0).contiguous());
    require_identical(to_gpu(x16).permute(2, 1, 0).contiguous(), x16.permute(2, 1, 0).contiguous());
    require_identical(to_gpu(x64).permute(2, 1, 0).contiguous(), x64.permute(2, 1, 0).contiguous());
    // A clone shares nothing; a view shares everything.
    auto c = xg.clone();
    auto v = xg.slice(0, 0, 1);
    c.slice(0, 0, 1) = 0.0f;
    require_identical(xg, x);
    REQUIRE(same_storage(v.storage(), xg.storage()));
    REQUIRE(!same_storage(c.storage(), xg.storage()));
    // contiguous() of a dense tensor is the tensor itself.
    REQUIRE(same_storage(xg.contiguous().storage(), xg.storage()));
}

TEST_CASE("cuda: copy_from between strided device views", "[cuda]") {
    const auto src = randn_host(Shape<2>{50, 70}, 201);
    auto dst = Tensor<float, 2, Cuda>::zeros({70, 50});
    auto dst_cpu = Tensor<float, 2, Cpu>::zeros({70, 50});
    dst.t().copy_from(to_gpu(src));
    dst_cpu.t().copy_from(src);
    require_identical(dst, dst_cpu);
    dst.slice(0, 0, 70, 7).copy_from(to_gpu(src).t().slice(0, 3, 13));
    dst_cpu.slice(0, 0, 70, 7).copy_from(src.t().slice(0, 3, 13));
    require_identical(dst, dst_cpu);
    auto one = Tensor<float, 0, Cuda>::zeros({});
    one.copy_from(to_gpu(src)[5][6]);  // a single element: one 4-byte copy
    REQUIRE(one.item() == src(5, 6));
}

TEST_CASE("cuda: to<Cuda> and to<Cpu> round trips, from_vector, from and item", "[cuda]") {
    const auto x = randn_host(Shape<2>{123, 457}, 202);
    require_identical(x.to<Cuda>().to<Cpu>(), x);
    require_identical(x.t().to<Cuda>(), x.t());  // a strided source is made dense first
    const auto xg = x.to<Cuda>();
    REQUIRE(same_storage(xg.to<Cuda>().storage(), xg.storage()));  // same device: no copy
    require_identical(xg.t().to<Cpu>(), x.t().contiguous());
    const Tensor<bf16, 2, Cpu> xb = cast<bf16>(x);
    require_identical(xb.to<Cuda>().to<Cpu>(), xb);
    const Tensor<bool, 2, Cpu> xm = x > 0.0f;
    require_identical(xm.to<Cuda>().to<Cpu>(), xm);
    const auto xi = Tensor<std::int64_t, 1, Cpu>::arange(1000);
    require_identical(xi.to<Cuda>().to<Cpu>(), xi);

    const auto v = Tensor<float, 2, Cuda>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
    REQUIRE(v.to<Cpu>()(1, 2) == 6.0f);
    const auto w = Tensor<std::int32_t, 2, Cuda>::from({{1, 2}, {3, 4}, {5, 6}});
    REQUIRE(w.shape() == Shape<2>{3, 2});
    REQUIRE(w[2][0].item() == 5);
    REQUIRE(sum(w).item() == 21);
    const auto b = Tensor<bool, 1, Cuda>::from_vector({true, false, true}, {3});
    REQUIRE(b[2].item());
    REQUIRE(!b[1].item());
    // An empty tensor moves too.
    REQUIRE(Tensor<float, 2, Cpu>::zeros({0, 3}).to<Cuda>().to<Cpu>().numel() == 0);
}

TEST_CASE("cuda: the caching allocator reuses freed blocks and counts", "[cuda]") {
    using weft::cuda::CachingAllocator;
    STATIC_REQUIRE(CachingAllocator::round_size(1) == 512);
    STATIC_REQUIRE(CachingAllocator::round_size(512) == 512);
    STATIC_REQUIRE(CachingAllocator::round_size(513) == 1024);
    STATIC_REQUIRE(CachingAllocator::round_size(std::size_t(1) << 20) == std::size_t(1) << 20);
    STATIC_REQUIRE(CachingAllocator::round_size((std::size_t(1) << 20) + 1) == std::size_t(2) << 20);
    STATIC_REQUIRE(CachingAllocator::round_size((std::size_t(2) << 20) + 1) == std::size_t(4) << 20);

    weft::cuda::synchronize();
    weft::cuda::empty_cache();
    const auto s0 = weft::cuda::memory_stats();
    REQUIRE(s0.cached_bytes == 0);
    REQUIRE(s0.reserved_bytes == s0.allocated_bytes);  // after empty_cache only live blocks remain

    void* p = Backend<Cuda>::allocate(1000);
    REQUIRE(p != nullptr);
    const auto s1 = weft::cuda::memory_stats();
    CHECK(s1.allocated_bytes == s0.allocated_bytes + 1024);
    CHECK(s1.requested_bytes == s0.requested_bytes + 1000);
    CHECK(s1.num_cuda_malloc == s0.num_cuda_malloc + 1);
    CHECK(s1.reserved_bytes == s0.reserved_bytes + 1024);
    CHECK(s1.peak_allocated_bytes >= s1.allocated_bytes);

    Backend<Cuda>::deallocate(p, 1000);
    const auto s2 = weft::cuda::memory_stats();
    CHECK(s2.allocated_bytes == s0.allocated_bytes);
    CHECK(s2.reserved_bytes == s1.reserved_bytes);  // cached, not freed
    CHECK(s2.cached_bytes == 1024);

    // The same size class again: the same block, no cudaMalloc.
    void* q = Backend<Cuda>::allocate(900);
    const auto s3 = weft::cuda::memory_stats();
    CHECK(q == p);
    CHECK(s3.num_cuda_malloc == s1.num_cuda_malloc);
    CHECK(s3.num_cache_hits == s2.num_cache_hits + 1);
    Backend<Cuda>::deallocate(q, 900);

    // Tensors: a loop allocating and freeing the same shapes calls cudaMalloc once per shape.
    const auto before = weft::cuda::memory_stats().num_cuda_malloc;
    for (int i = 0; i < 20; ++i) {
        auto t = Tensor<float, 2, Cuda>::empty({512, 1024});  // 2 MiB: a large block
        auto u = Tensor<float, 1, Cuda>::zeros({100});        // 400 B: a small block
        t = 1.0f;
    }
    CHECK(weft::cuda::memory_stats().num_cuda_malloc <= before + 2);

    // Peak statistics.
    weft::cuda::reset_peak_memory_stats();
    const auto s4 = weft::cuda::memory_stats();
    CHECK(s4.peak_allocated_bytes == s4.allocated_bytes);
    {
        auto big = Tensor<float, 1, Cuda>::empty({3 << 20});  // 12 MiB
        CHECK(weft::cuda::memory_stats().peak_allocated_bytes >= s4.allocated_bytes + (std::size_t(12) << 20));
    }
    const auto s5 = weft::cuda::memory_stats();
    CHECK(s5.allocated_bytes == s4.allocated_bytes);
    CHECK(s5.peak_allocated_bytes >= s4.allocated_bytes + (std::size_t(12) << 20));

    // empty_cache gives everything unused back.
    weft::cuda::empty_cache();
    const auto s6 = weft::cuda::memory_stats();
    CHECK(s6.cached_bytes == 0);
    CHECK(s6.reserved_bytes == s6.allocated_bytes);
    CHECK(s6.num_cuda_free > s5.num_cuda_free);
    REQUIRE(Backend<Cuda>::allocate(0) == nullptr);
    Backend<Cuda>::deallocate(nullptr, 0);
}

TEST_CASE("cuda: work on a user stream, and blocks cached per stream", "[cuda]") {
    cudaStream_t stream = nullptr;
    WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const auto x = randn_host(Shape<2>{300, 400}, 203);
    const auto want = eval(x * 2.0f - 1.0f);
    weft::cuda::empty_cache();
    {
        weft::cuda::StreamGuard guard(stream);
        REQUIRE(weft::cuda::current_stream() == stream);
        const auto xg = to_gpu(x);
        const auto got = eval(xg * 2.0f - 1.0f);
        const auto s = sum(got, {0, 1});
        require_close(got, want, 1e-6, 1e-6);  // to<Cpu> synchronizes the current stream
        const double w = double(sum(want).item());  // about -1.2e5: float sums round at ~1e-2
        REQUIRE(std::fabs(double(s.item()) - w) <= 1e-5 * std::fabs(w) + 1e-3);
        void* p = Backend<Cuda>::allocate(4096);
        Backend<Cuda>::deallocate(p, 4096);  // cached for `stream`
        weft::cuda::synchronize();
    }
    REQUIRE(weft::cuda::current_stream() == cudaStreamLegacy);
    // A block freed on `stream` is not handed to work on the default stream.
    const auto before = weft::cuda::memory_stats();
    void* q = Backend<Cuda>::allocate(4096);
    CHECK(weft::cuda::memory_stats().num_cuda_malloc == before.num_cuda_malloc + 1);
    Backend<Cuda>::deallocate(q, 4096);
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));
    weft::cuda::empty_cache();  // before destroying the stream its blocks are keyed by
    WEFT_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST_CASE("cuda: failing CUDA calls throw weft::Error naming the call", "[cuda]") {
    REQUIRE(weft::cuda::device_count() >= 1);
    // A runtime call with a bad argument.
    auto bad_device = [] { WEFT_CUDA_CHECK(cudaSetDevice(weft::cuda::device_count() + 7)); };
    REQUIRE_THROWS_AS(bad_device(), weft::Error);
    REQUIRE_THROWS_WITH(bad_device(), Contains("cudaErrorInvalidDevice") && Contains("cudaSetDevice"));
    // A bad launch configuration, caught by the launch check.
    auto bad_launch = [] {
        noop_kernel<<<1, 4096>>>();  // more threads per block than any GPU allows
        WEFT_CUDA_CHECK_LAUNCH();
    };
    REQUIRE_THROWS_WITH(bad_launch(), Contains("cudaErrorInvalidConfiguration"));
    // Out of memory: the allocator frees its cache, retries, then throws with the sizes.
    REQUIRE_THROWS_WITH((Tensor<float, 1, Cuda>::empty({index_t(1) << 46})), Contains("out of memory"));
    // None of these errors is sticky: the device still works, and no stale error is reported later.
    weft::cuda::set_device(0);
    const auto x = randn_host(Shape<1>{1000}, 204);
    require_identical(eval(to_gpu(x) + 1.0f), eval(x + 1.0f));
    REQUIRE(cudaGetLastError() == cudaSuccess);
    // Shape errors on device tensors are ordinary weft errors, raised before any launch.
    auto a = Tensor<float, 2, Cuda>::zeros({2, 3});
    const auto b = Tensor<float, 2, Cuda>::zeros({3, 2});
    REQUIRE_THROWS_AS(a = a + b, weft::Error);
}
