// weft/core/cuda/caching_allocator.cuh: device memory that is reused instead of freed.
//
// cudaMalloc and cudaFree are slow (cudaFree also synchronizes the device), and a training step
// allocates and frees the same sizes over and over. So Backend<Cuda> takes memory from this
// allocator: a freed block goes to a free list, and the next request of the same size class on
// the same device and stream takes it back without calling CUDA at all.
//
//   auto s = weft::cuda::memory_stats();     // allocated, peak, reserved bytes; cudaMalloc calls
//   weft::cuda::empty_cache();               // give the cached (unused) blocks back to CUDA
//   weft::cuda::reset_peak_memory_stats();
//
// Size classes: requests up to 1 MiB are rounded up to a multiple of 512 bytes, larger ones to a
// multiple of 2 MiB. A block is reused only for a request of exactly its class (no splitting, no
// best fit), so reuse is predictable and a block never serves a much smaller tensor.
//
// Stream safety. Freeing a tensor's memory happens on the host, possibly while kernels that read
// it are still queued. Each block remembers the stream that was current when it was allocated
// (weft::cuda::current_stream()) and, once freed, is only handed out again to requests on that
// same device and stream. Any work issued to that stream by the new owner runs after the old
// owner's work, so no synchronization is needed. A tensor used on another stream than the one it
// was allocated on must be synchronized by the user before it is freed (the same contract as
// PyTorch's caching allocator without record_stream). `empty_cache()` synchronizes each device
// before freeing its cached blocks. Running out of memory releases the device's cache (after a
// device synchronization) and retries once before throwing weft::Error.
//
// All state sits behind one mutex. The allocator is never destroyed (it outlives static tensors,
// and CUDA may already be torn down at exit); the driver reclaims the memory with the process.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/core/cuda/caching_allocator.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../../exec/cuda/stream.cuh"
#include "../error.hpp"
#include "check.cuh"

namespace weft::cuda {

struct MemoryStats {
    std::size_t allocated_bytes = 0;       // in blocks handed out now (rounded sizes)
    std::size_t requested_bytes = 0;       // what their owners asked for
    std::size_t peak_allocated_bytes = 0;  // highest allocated_bytes since start or reset
    std::size_t reserved_bytes = 0;        // held from cudaMalloc: in use plus cached
    std::size_t peak_reserved_bytes = 0;
    std::size_t cached_bytes = 0;          // reserved but free, waiting for reuse
    std::uint64_t num_allocations = 0;     // successful allocate() calls of at least one byte
    std::uint64_t num_cache_hits = 0;      // of those, served from the cache
    std::uint64_t num_cuda_malloc = 0;     // successful cudaMalloc calls
    std::uint64_t num_cuda_free = 0;       // cudaFree calls (empty_cache, out-of-memory retries)
    std::uint64_t num_oom_retries = 0;     // cudaMalloc failures answered by releasing the cache
};

class CachingAllocator {
public:
    static constexpr std::size_t small_limit = std::size_t(1) << 20;  // 1 MiB
    static constexpr std::size_t small_round = 512;
    static constexpr std::size_t large_round = std::size_t(2) << 20;  // 2 MiB

    static constexpr std::size_t round_size(std::size_t bytes) {
        const std::size_t q = bytes <= small_limit ? small_round : large_round;
        return (bytes + q - 1) / q * q;
    }

    // The process-wide allocator.
    static CachingAllocator& instance() {
        static CachingAllocator* a = new CachingAllocator();  // never destroyed, see above
        return *a;
    }

    // At least `bytes` bytes on the current device, for use on the current stream; 256-byte aligned.
    void* allocate(std::size_t bytes) {
        if (bytes == 0) return nullptr;
        const int device = current_device();
        const cudaStream_t stream = current_stream();
        const std::size_t size = round_size(bytes);

        std::lock_guard<std::mutex> lock(mutex_);
        DeviceState& dev = state(device);
        void* p = nullptr;
        auto it = dev.free.find(Key{stream, size});
        if (it != dev.free.end() && !it->second.empty()) {
            p = it->second.back();
            it->second.pop_back();
            dev.stats.cached_bytes -= size;
            ++dev.stats.num_cache_hits;
        } else {
            p = cuda_malloc(device, dev, size, bytes);
        }
        live_.emplace(p, Block{size, bytes, device, stream});
        MemoryStats& s = dev.stats;
        ++s.num_allocations;
        s.allocated_bytes += size;
        s.requested_bytes += bytes;
        s.peak_allocated_bytes = std::max(s.peak_allocated_bytes, s.allocated_bytes);
        return p;
    }

    // Returns a block to its free list. No CUDA call: safe in destructors and at exit.
    void deallocate(void* p) noexcept {
        if (!p) return;
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = live_.find(p);
        if (it == live_.end()) {
            std::fprintf(stderr, "weft: CachingAllocator::deallocate: %p was not allocated here; ignored\n", p);
            return;
        }
        const Block b = it->second;
        live_.erase(it);
        DeviceState& dev = devices_[std::size_t(b.device)];
        dev.free[Key{b.stream, b.size}].push_back(p);
        dev.stats.allocated_bytes -= b.size;
        dev.stats.requested_bytes -= b.requested;
        dev.stats.cached_bytes += b.size;
    }

    // Frees every cached block on every device (blocks in use stay). Synchronizes those devices.
    void empty_cache() {
        std::lock_guard<std::mutex> lock(mutex_);
        for (std::size_t d = 0; d < devices_.size(); ++d) release_cache(int(d), devices_[d]);
    }

    MemoryStats stats(int device) {
        std::lock_guard<std::mutex> lock(mutex_);
        return state(device).stats;
    }

    void reset_peak(int device) {
        std::lock_guard<std::mutex> lock(mutex_);
        MemoryStats& s = state(device).stats;
        s.peak_allocated_bytes = s.allocated_bytes;
        s.peak_reserved_bytes = s.reserved_bytes;
    }

private:
    CachingAllocator() = default;

    struct Block {
        std::size_t size;       // rounded: what the block really holds
        std::size_t requested;  // what the caller asked for
        int device;
        cudaStream_t stream;
    };
    struct Key {
        cudaStream_t stream;
        std::size_t size;
        friend bool operator<(const Key& a, const Key& b) {
            if (a.stream != b.stream) return std::less<cudaStream_t>{}(a.stream, b.stream);
            return a.size < b.size;
        }
    };
    struct DeviceState {
        std::map<Key, std::vector<void*>> free;
        MemoryStats stats;
    };

    DeviceState& state(int device) {
        WEFT_CHECK(device >= 0, "CachingAllocator: invalid device ", device);
        if (std::size_t(device) >= devices_.size()) devices_.resize(std::size_t(device) + 1);
        return devices_[std::size_t(device)];
    }

    // Called with the lock held, on `device` (the current device).
    void* cuda_malloc(int device, DeviceState& dev, std::size_t size, std::size_t requested) {
        void* p = nullptr;
        cudaError_t err = cudaMalloc(&p, size);
        if (err == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();  // not sticky: clear it, free the cache and try again
            ++dev.stats.num_oom_retries;
            release_cache(device, dev);
            err = cudaMalloc(&p, size);
        }
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            WEFT_FAIL(err == cudaErrorMemoryAllocation ? "CUDA out of memory: " : "", "cudaMalloc of ", size,
                      " bytes (", requested, " requested) on device ", device, " failed: ", cudaGetErrorName(err),
                      " (", cudaGetErrorString(err), "); weft holds ", dev.stats.allocated_bytes,
                      " bytes in tensors, ", dev.stats.reserved_bytes, " reserved");
        }
        ++dev.stats.num_cuda_malloc;
        dev.stats.reserved_bytes += size;
        dev.stats.peak_reserved_bytes = std::max(dev.stats.peak_reserved_bytes, dev.stats.reserved_bytes);
        return p;
    }

    // Called with the lock held. Frees `device`'s cached blocks; the current device is restored.
    void release_cache(int device, DeviceState& dev) {
        if (dev.stats.cached_bytes == 0) {
            dev.free.clear();
            return;
        }
        int previous = -1;
        WEFT_CUDA_CHECK(cudaGetDevice(&previous));
        if (previous != device) WEFT_CUDA_CHECK(cudaSetDevice(device));
        // Blocks in the cache may still be read by queued kernels of their last owner.
        cudaError_t err = cudaDeviceSynchronize();
        for (auto& [key, blocks] : dev.free) {
            for (void* p : blocks) {
                if (err == cudaSuccess) err = cudaFree(p);
                ++dev.stats.num_cuda_free;
                dev.stats.reserved_bytes -= key.size;
                dev.stats.cached_bytes -= key.size;
            }
        }
        dev.free.clear();
        if (previous != device) (void)cudaSetDevice(previous);
        WEFT_CUDA_CHECK(err);
    }

    std::mutex mutex_;
    std::unordered_map<void*, Block> live_;
    std::vector<DeviceState> devices_;
};

// Statistics of the caching allocator for `device` (-1: the current device).
inline MemoryStats memory_stats(int device = -1) {
    return CachingAllocator::instance().stats(device < 0 ? current_device() : device);
}

inline void reset_peak_memory_stats(int device = -1) {
    CachingAllocator::instance().reset_peak(device < 0 ? current_device() : device);
}

// Returns all cached, unused device memory to CUDA (other processes can then use it).
inline void empty_cache() { CachingAllocator::instance().empty_cache(); }

}  // namespace weft::cuda
