// weft/core/backend.hpp: what each device must provide to hold tensors.
//
// `Backend<D>` allocates and frees bytes, copies them, and fills a dense buffer from a functor of
// the linear index (`dst[i] = f(i)`: factories and random numbers are written that way, so the
// same functor produces the same values on every device). `Backend<Cpu>` is defined here;
// `Backend<Cuda>` lives in `core/cuda/backend.cuh`, compiled only by nvcc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "config.hpp"
#include "device.hpp"
#include "error.hpp"
#include "host_cache.hpp"

namespace weft {

template <Device D>
struct Backend {
    static_assert(always_false<D>,
                  "weft: tensors on the Cuda device need CUDA. Configure weft with -DWEFT_CUDA=ON, "
                  "compile this translation unit with nvcc (a .cu file) and include <weft/weft.hpp>.");
};

template <>
struct Backend<Cpu> {
    // Every block starts on a cache line (64 bytes), so vector loops never split one; large
    // blocks come from the caching allocator (host_cache.hpp).
    static constexpr std::size_t alignment = HostCache::small_alignment;

    static void* allocate(std::size_t bytes) { return HostCache::instance().allocate(bytes); }

    static void deallocate(void* p, std::size_t bytes) noexcept { HostCache::instance().deallocate(p, bytes); }

    static void copy(void* dst, const void* src, std::size_t bytes) {
        if (bytes) std::memcpy(dst, src, bytes);
    }

    template <class T, class F>
    static void generate(T* dst, index_t n, F f) {
        for (index_t i = 0; i < n; ++i) dst[i] = f(i);
    }

    // dst[idx] = src[idx] for every multi-index of `shape`, strides in elements of `elem` bytes.
    static void copy_strided(void* dst, const index_t* dst_strides, const void* src,
                             const index_t* src_strides, const index_t* shape, int rank, std::size_t elem) {
        switch (elem) {
            case 1: return copy_typed<std::uint8_t>(dst, dst_strides, src, src_strides, shape, rank);
            case 2: return copy_typed<std::uint16_t>(dst, dst_strides, src, src_strides, shape, rank);
            case 4: return copy_typed<std::uint32_t>(dst, dst_strides, src, src_strides, shape, rank);
            case 8: return copy_typed<std::uint64_t>(dst, dst_strides, src, src_strides, shape, rank);
            default: WEFT_FAIL("copy_strided: unsupported element size ", elem);
        }
    }

private:
    template <class W>
    static void copy_typed(void* dst, const index_t* ds, const void* src, const index_t* ss,
                           const index_t* shape, int rank) {
        index_t numel = 1;
        for (int i = 0; i < rank; ++i) numel *= shape[i];
        if (numel == 0) return;
        W* d = static_cast<W*>(dst);
        const W* s = static_cast<const W*>(src);
        if (rank == 0) {
            *d = *s;
            return;
        }
        const index_t n = shape[rank - 1], dstep = ds[rank - 1], sstep = ss[rank - 1];
        index_t idx[8] = {};
        for (index_t row = 0, rows = numel / n; row < rows; ++row) {
            index_t doff = 0, soff = 0;
            for (int i = 0; i < rank - 1; ++i) {
                doff += idx[i] * ds[i];
                soff += idx[i] * ss[i];
            }
            if (dstep == 1 && sstep == 1) {
                std::memcpy(d + doff, s + soff, std::size_t(n) * sizeof(W));
            } else {
                for (index_t j = 0; j < n; ++j) d[doff + j * dstep] = s[soff + j * sstep];
            }
            for (int i = rank - 2; i >= 0; --i) {  // odometer over the outer axes
                if (++idx[i] < shape[i]) break;
                idx[i] = 0;
            }
        }
    }
};

}  // namespace weft
