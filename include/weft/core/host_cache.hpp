// weft/core/host_cache.hpp: the CPU's caching allocator.
//
// glibc returns blocks above 32 MiB to the kernel on free, so a training step that allocates
// the same large activations every iteration pays page faults on every first touch: writing a
// fresh 64 MiB tensor measured 3x slower than writing into an existing one. Blocks of at least
// 1 MiB are therefore rounded up to 2 MiB multiples (2 MiB-aligned and advised MADV_HUGEPAGE, so
// transparent huge pages back them) and kept on free lists for reuse, up to a cap on cached bytes (default 4 GiB,
// `WEFT_CPU_CACHE_MB` overrides; 0 disables). Smaller blocks go straight to malloc, which
// already recycles them well.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <map>
#include <mutex>

#include "error.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace weft {

struct HostMemoryStats {
    std::size_t allocated = 0;       // bytes in live tensors (rounded sizes)
    std::size_t peak_allocated = 0;  // the most `allocated` has been since the last reset
    std::size_t cached = 0;          // bytes held for reuse, not in use
    std::size_t system_allocations = 0;  // large blocks obtained from the system
};

class HostCache {
public:
    static constexpr std::size_t min_cached = std::size_t(1) << 20;
    static constexpr std::size_t granule = std::size_t(2) << 20;
    static constexpr std::size_t small_alignment = 64;

    static HostCache& instance() {
        // Never destroyed: tensors held in statics may be freed after main returns.
        static HostCache* cache = new HostCache();
        return *cache;
    }

    void* allocate(std::size_t bytes) {
        if (bytes == 0) return nullptr;
        const std::size_t size = rounded(bytes);
        if (size < min_cached) {
            void* p = std::aligned_alloc(small_alignment, size);
            if (!p) WEFT_FAIL("out of host memory allocating ", bytes, " bytes");
            count(size, +1);
            return p;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (auto it = free_.find(size); it != free_.end()) {
                void* p = it->second;
                free_.erase(it);
                stats_.cached -= size;
                add_allocated(size);
                return p;
            }
        }
        void* p = std::aligned_alloc(granule, size);
        if (!p) {
            release_cached();  // cached blocks of other sizes may be what stands in the way
            p = std::aligned_alloc(granule, size);
            if (!p) WEFT_FAIL("out of host memory allocating ", bytes, " bytes");
        }
#if defined(MADV_HUGEPAGE)
        // Ask for transparent huge pages where the system leaves it to the program (THP in
        // "madvise" mode, Debian's default): GEMMs on 2 MiB pages measured 2-5% faster (fewer TLB
        // misses; docs/performance.md). Advice only: failure changes nothing.
        (void)::madvise(p, size, MADV_HUGEPAGE);
#endif
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.system_allocations;
        add_allocated(size);
        return p;
    }

    void deallocate(void* p, std::size_t bytes) noexcept {
        if (!p) return;
        const std::size_t size = rounded(bytes);
        if (size < min_cached) {
            count(size, -1);
            std::free(p);
            return;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.allocated -= size;
        if (stats_.cached + size > limit_) {
            std::free(p);
            return;
        }
        free_.emplace(size, p);
        stats_.cached += size;
    }

    // Returns every cached block to the system.
    void release_cached() {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [size, p] : free_) std::free(p);
        free_.clear();
        stats_.cached = 0;
    }

    HostMemoryStats stats() {
        std::lock_guard<std::mutex> lock(mutex_);
        return stats_;
    }

    void reset_peak() {
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.peak_allocated = stats_.allocated;
    }

private:
    HostCache() {
        if (const char* env = std::getenv("WEFT_CPU_CACHE_MB")) limit_ = std::size_t(std::atoll(env)) << 20;
    }

    static std::size_t rounded(std::size_t bytes) {
        if (bytes < min_cached) return (bytes + small_alignment - 1) / small_alignment * small_alignment;
        return (bytes + granule - 1) / granule * granule;
    }

    void add_allocated(std::size_t size) {
        stats_.allocated += size;
        if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    }

    void count(std::size_t size, int sign) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (sign > 0) add_allocated(size);
        else stats_.allocated -= size;
    }

    std::mutex mutex_;
    std::multimap<std::size_t, void*> free_;
    HostMemoryStats stats_;
    std::size_t limit_ = std::size_t(4) << 30;
};

inline HostMemoryStats host_memory_stats() { return HostCache::instance().stats(); }
inline void reset_host_peak_memory() { HostCache::instance().reset_peak(); }
inline void empty_host_cache() { HostCache::instance().release_cached(); }

}  // namespace weft
