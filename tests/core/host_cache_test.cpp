// The CPU caching allocator: large blocks are reused, statistics add up, the cap holds.
#include <catch2/catch.hpp>
#include <weft/weft.hpp>

using namespace weft;

TEST_CASE("host cache reuses a freed large block without asking the system again", "[core][memory]") {
    empty_host_cache();
    const auto before = host_memory_stats();
    void* first = nullptr;
    {
        auto t = Tensor<float, 1>::empty({3 << 20});  // 12 MiB
        first = t.data();
        CHECK(host_memory_stats().allocated >= before.allocated + (12u << 20));
    }
    CHECK(host_memory_stats().cached >= (12u << 20));
    const auto mid = host_memory_stats();
    auto again = Tensor<float, 1>::empty({3 << 20});
    CHECK(again.data() == first);
    CHECK(host_memory_stats().system_allocations == mid.system_allocations);
    CHECK(reinterpret_cast<std::uintptr_t>(again.data()) % HostCache::huge_page == 0);
}

TEST_CASE("host cache rounds large blocks to 64 KiB and tracks the peak", "[core][memory]") {
    empty_host_cache();
    reset_host_peak_memory();
    const auto base = host_memory_stats().allocated;
    {
        auto a = Tensor<std::uint8_t, 1>::empty({(1 << 20) + 1});  // rounds up to 1 MiB + 64 KiB
        auto b = Tensor<std::uint8_t, 1>::empty({5 << 20});        // 5 MiB exactly
        CHECK(host_memory_stats().allocated - base == (1u << 20) + (64u << 10) + (5u << 20));
        CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % HostCache::huge_page == 0);
    }
    CHECK(host_memory_stats().allocated == base);
    CHECK(host_memory_stats().peak_allocated - base == (1u << 20) + (64u << 10) + (5u << 20));
    empty_host_cache();
    CHECK(host_memory_stats().cached == 0);
}

TEST_CASE("host cache lends a block at most 1/8 larger than asked, and takes all of it back", "[core][memory]") {
    empty_host_cache();
    const auto base = host_memory_stats();
    void* block = nullptr;
    { block = Tensor<float, 1>::empty({2 << 20}).data(); }  // 8 MiB, now cached
    CHECK(host_memory_stats().cached - base.cached == (8u << 20));
    {
        auto smaller = Tensor<float, 1>::empty({(2 << 20) - (200 << 10)});  // 7.2 MiB: fits
        CHECK(smaller.data() == block);
        CHECK(host_memory_stats().allocated - base.allocated == (8u << 20));  // the whole block counts
        auto much_smaller = Tensor<float, 1>::empty({1 << 20});  // 4 MiB: the cache has none
        CHECK(much_smaller.data() != block);
    }
    CHECK(host_memory_stats().allocated == base.allocated);
    CHECK(host_memory_stats().cached - base.cached == (8u << 20) + (4u << 20));
    CHECK(host_memory_stats().system_allocations - base.system_allocations == 2);
    empty_host_cache();
}

TEST_CASE("host cache leaves small blocks to malloc and keeps them aligned", "[core][memory]") {
    for (int n : {1, 3, 17, 1000, 100000}) {
        auto t = Tensor<double, 1>::zeros({n});
        CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
        CHECK(t(n - 1) == 0.0);
    }
}
