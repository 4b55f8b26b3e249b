// weft/core/cuda/backend.cuh: `Backend<Cuda>`, how tensors hold and move GPU memory.
//
// The same interface as Backend<Cpu> (core/backend.hpp): allocate/deallocate (through the caching
// allocator), copy, generate (`dst[i] = f(i)` as a kernel: the Philox functors are WEFT_HD, so a
// seed gives the same uniform numbers on both devices) and copy_strided (a kernel for any strides),
// plus copy_between for Tensor::to<>() across devices.
//
// Everything is issued to weft::cuda::current_stream(). Copies between device buffers and kernels
// are asynchronous; a copy that touches host memory waits for the stream, so the host buffer may be
// read or freed as soon as copy_between returns.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/core/cuda/backend.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../backend.hpp"
#include "../config.hpp"
#include "../device.hpp"
#include "../error.hpp"
#include "../../exec/cuda/stream.cuh"
#include "caching_allocator.cuh"
#include "check.cuh"

namespace weft {

namespace cuda {

// Launch sizing shared by weft's element-wise kernels: 256 threads, and a grid of at most 32 blocks
// per SM (four waves at full occupancy); kernels loop over the rest (grid-stride), so any size works.
inline constexpr int block_threads = 256;

inline unsigned grid_blocks(index_t work, index_t per_block) {
    const index_t want = (work + per_block - 1) / per_block;
    const index_t cap = index_t(multiprocessor_count()) * 32;
    return unsigned(std::max<index_t>(1, std::min(want, cap)));
}

namespace kernels {

template <class T, class F>
__global__ void __launch_bounds__(256) generate(T* dst, index_t n, F f) {
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) dst[i] = f(i);
}

// Strides in elements; `rank` axes after merging (see Backend<Cuda>::copy_strided).
struct StridedCopy {
    index_t shape[8];
    index_t dst_strides[8];
    index_t src_strides[8];
    int rank;
};

template <class W, class I>
__global__ void __launch_bounds__(256) copy_strided(W* dst, const W* src, const StridedCopy a, I n) {
    const I step = I(gridDim.x) * blockDim.x;
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        I rem = i;
        index_t doff = 0, soff = 0;
#pragma unroll
        for (int d = 7; d > 0; --d) {  // innermost first; fixed indices keep `a` in the parameter space
            if (d >= a.rank) continue;
            const I ext = I(a.shape[d]);
            const I q = rem / ext;
            const index_t r = index_t(rem - q * ext);
            doff += r * a.dst_strides[d];
            soff += r * a.src_strides[d];
            rem = q;
        }
        doff += index_t(rem) * a.dst_strides[0];
        soff += index_t(rem) * a.src_strides[0];
        dst[doff] = src[soff];
    }
}

}  // namespace kernels
}  // namespace cuda

template <>
struct Backend<Cuda> {
    // What the caching allocator guarantees (cudaMalloc's alignment).
    static constexpr std::size_t alignment = 256;

    static void* allocate(std::size_t bytes) { return cuda::CachingAllocator::instance().allocate(bytes); }

    static void deallocate(void* p, std::size_t) noexcept { cuda::CachingAllocator::instance().deallocate(p); }

    // Device to device, ordered on the current stream.
    static void copy(void* dst, const void* src, std::size_t bytes) {
        if (bytes == 0) return;
        WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda::current_stream()));
    }

    // dst[i] = f(i) for i in [0, n); f must be callable on the device (WEFT_HD or a __device__ lambda).
    template <class T, class F>
    static void generate(T* dst, index_t n, F f) {
        if (n <= 0) return;
        cuda::kernels::generate<<<cuda::grid_blocks(n, cuda::block_threads), cuda::block_threads, 0,
                                  cuda::current_stream()>>>(dst, n, f);
        WEFT_CUDA_CHECK_LAUNCH();
    }

    // dst[idx] = src[idx] for every multi-index of `shape` (device memory, strides in elements).
    static void copy_strided(void* dst, const index_t* dst_strides, const void* src, const index_t* src_strides,
                             const index_t* shape, int rank, std::size_t elem) {
        WEFT_CHECK(rank >= 0 && rank <= 8, "copy_strided: rank ", rank, " is outside 0..8");
        WEFT_CHECK(elem == 1 || elem == 2 || elem == 4 || elem == 8, "copy_strided: unsupported element size ", elem);
        index_t numel = 1;
        for (int i = 0; i < rank; ++i) numel *= shape[i];
        if (numel == 0) return;

        // Merge axes: drop extent-1 axes, and fold an axis into its inner neighbour when both
        // tensors step over it as over one longer axis. A dense copy becomes one axis of stride 1.
        cuda::kernels::StridedCopy a{};
        int r = 0;
        for (int d = 0; d < rank; ++d) {
            if (shape[d] == 1) continue;
            if (r > 0 && a.dst_strides[r - 1] == dst_strides[d] * shape[d] &&
                a.src_strides[r - 1] == src_strides[d] * shape[d]) {
                a.shape[r - 1] *= shape[d];
                a.dst_strides[r - 1] = dst_strides[d];
                a.src_strides[r - 1] = src_strides[d];
                continue;
            }
            a.shape[r] = shape[d];
            a.dst_strides[r] = dst_strides[d];
            a.src_strides[r] = src_strides[d];
            ++r;
        }
        if (r == 0) {  // a single element
            copy(dst, src, elem);
            return;
        }
        a.rank = r;
        if (r == 1 && a.dst_strides[0] == 1 && a.src_strides[0] == 1) {
            copy(dst, src, std::size_t(numel) * elem);
            return;
        }
        switch (elem) {
            case 1: return launch_copy<std::uint8_t>(dst, src, a, numel);
            case 2: return launch_copy<std::uint16_t>(dst, src, a, numel);
            case 4: return launch_copy<std::uint32_t>(dst, src, a, numel);
            default: return launch_copy<std::uint64_t>(dst, src, a, numel);
        }
    }

    // Tensor::to<>(): host to device, device to host, device to device (peers through UVA).
    static void copy_between(void* dst, Cuda, const void* src, Cpu, std::size_t bytes) {
        copy_with_host(dst, src, bytes, cudaMemcpyHostToDevice);
    }
    static void copy_between(void* dst, Cpu, const void* src, Cuda, std::size_t bytes) {
        copy_with_host(dst, src, bytes, cudaMemcpyDeviceToHost);
    }
    static void copy_between(void* dst, Cuda, const void* src, Cuda, std::size_t bytes) {
        if (bytes == 0) return;
        WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cuda::current_stream()));
    }

private:
    static void copy_with_host(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
        if (bytes == 0) return;
        const cudaStream_t s = cuda::current_stream();
        WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, s));
        WEFT_CUDA_CHECK(cudaStreamSynchronize(s));  // the host side may be freed or read right after
    }

    template <class W>
    static void launch_copy(void* dst, const void* src, const cuda::kernels::StridedCopy& a, index_t n) {
        W* d = static_cast<W*>(dst);
        const W* s = static_cast<const W*>(src);
        const unsigned grid = cuda::grid_blocks(n, cuda::block_threads);
        const cudaStream_t stream = cuda::current_stream();
        if (n <= std::numeric_limits<std::int32_t>::max()) {  // 32-bit division is several times faster
            cuda::kernels::copy_strided<W, std::uint32_t>
                <<<grid, cuda::block_threads, 0, stream>>>(d, s, a, std::uint32_t(n));
        } else {
            cuda::kernels::copy_strided<W, index_t><<<grid, cuda::block_threads, 0, stream>>>(d, s, a, n);
        }
        WEFT_CUDA_CHECK_LAUNCH();
    }
};

}  // namespace weft
