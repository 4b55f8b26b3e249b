// weft/ops/cuda/dropout.cuh: dropout and drop-path masks drawn and applied on the GPU (the CUDA
// half of ops/dropout.hpp).
//
//   cuda::draw_keep_runs(keep, runs, run, first, stride, p, key, base, x, y, scale);   // draw (and apply)
//   cuda::apply_mask(x, keep, y, n, scale);                                           // y = x·keep·scale
//   cuda::apply_sample_mask(x, keep, y, outer, n, inner, scale);                      // per sample
//
// The mask is the CPU's bit for bit: element i of a run takes uniform float number
// first + o·stride + t of the Philox stream at `base` (core/philox.hpp, the same WEFT_HD code on
// both devices), compared in double with 1 - p, exactly as detail::draw_keep_runs does. Each
// thread draws four neighbouring elements and calls Philox once per block of four numbers they
// touch (once when the run is block-aligned, at most twice otherwise). The element-wise product
// is the CPU's too (compute_t<T>, one rounding to T), so y is bitwise the CPU's as well. Drawing
// and applying are one kernel: x is read once and the mask written once.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/dropout.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../core/philox.hpp"
#include "../../exec/cuda/stream.cuh"

namespace weft {

namespace cuda {

namespace kernels {

// keep[i] for i = o·run + t < total: uniform float (first + o·stride + t) of the stream < 1 - p.
// With Apply, also y[i] = keep[i] ? x[i]·scale : 0. Thread q handles elements 4q .. 4q + 3.
template <bool Apply, class T>
__global__ void __launch_bounds__(256) draw_keep_runs(bool* keep, index_t total, index_t run, std::uint64_t first,
                                                      std::uint64_t stride, double keep_probability,
                                                      std::uint64_t key, std::uint64_t base, const T* x, T* y,
                                                      compute_t<T> scale) {
    using Acc = compute_t<T>;
    const index_t quads = (total + 3) / 4;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t q = index_t(blockIdx.x) * blockDim.x + threadIdx.x; q < quads; q += step) {
        const index_t i0 = q * 4;
        index_t o = i0 / run, t = i0 - o * run;
        std::uint64_t held = ~std::uint64_t(0);  // the Philox block in r
        PhiloxBlock r{};
        const index_t i1 = i0 + 4 < total ? i0 + 4 : total;
        for (index_t i = i0; i < i1; ++i) {
            const std::uint64_t g = first + std::uint64_t(o) * stride + std::uint64_t(t);
            if (g / 4 != held) {
                held = g / 4;
                r = philox4x32_10(base + held, 0, key);
            }
            const bool k = double(random::uniform_float(r.w[g % 4])) < keep_probability;
            keep[i] = k;
            if constexpr (Apply) y[i] = convert<T>(k ? convert<Acc>(x[i]) * scale : Acc(0));
            if (++t == run) {
                t = 0;
                ++o;
            }
        }
    }
}

// y[i] = keep[i] ? x[i]·scale : 0.
template <class T>
__global__ void __launch_bounds__(256) apply_mask(const T* x, const bool* keep, T* y, index_t n,
                                                  compute_t<T> scale) {
    using Acc = compute_t<T>;
    const index_t step = index_t(gridDim.x) * blockDim.x;
    for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
        y[i] = convert<T>(keep[i] ? convert<Acc>(x[i]) * scale : Acc(0));
}

// y[e] = keep[k] ? x[e]·scale : 0 for element e = ((o·n) + k)·inner + j of [outer, n, inner].
template <class T, class I>
__global__ void __launch_bounds__(256) apply_sample_mask(const T* x, const bool* keep, T* y, I n, I inner, I total,
                                                         compute_t<T> scale) {
    using Acc = compute_t<T>;
    const I step = I(gridDim.x) * blockDim.x;
    for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
        const I seg = e / inner;
        const I k = seg - (seg / n) * n;
        y[e] = convert<T>(keep[k] ? convert<Acc>(x[e]) * scale : Acc(0));
    }
}

}  // namespace kernels

// keep[o·run + t] = (uniform float first + o·stride + t of the stream at `base`) < 1 - p, for
// o < runs and t < run (ops/dropout.hpp's detail::draw_keep_runs, on the device). With x and y
// (dense, runs·run elements), also y = x·scale where kept and 0 elsewhere, in the same pass.
template <class T = float>
void draw_keep_runs(bool* keep, index_t runs, index_t run, std::uint64_t first, std::uint64_t stride, double p,
                    std::uint64_t key, std::uint64_t base, const T* x = nullptr, T* y = nullptr, double scale = 1.0) {
    if (runs <= 0 || run <= 0) return;
    const index_t total = runs * run;
    const unsigned grid = grid_blocks((total + 3) / 4, block_threads);
    const cudaStream_t stream = current_stream();
    const double keep_probability = 1.0 - p;
    const compute_t<T> s = compute_t<T>(scale);
    if (x)
        kernels::draw_keep_runs<true, T><<<grid, block_threads, 0, stream>>>(keep, total, run, first, stride,
                                                                             keep_probability, key, base, x, y, s);
    else
        kernels::draw_keep_runs<false, T><<<grid, block_threads, 0, stream>>>(keep, total, run, first, stride,
                                                                              keep_probability, key, base, x, y, s);
    WEFT_CUDA_CHECK_LAUNCH();
}

// The keep mask of a dense [outer, n, inner] tensor under the generator's replica slice, as
// ops/dropout.hpp's detail::draw_replica_keep_mask: local element (o, k, j) takes the decision of
// global element (o, replica·n + k, j) of the [outer, n·replicas, inner] batch, and the generator
// advances past the whole global draw. With x and y, applies the mask too (see draw_keep_runs).
template <class T = float>
void draw_replica_keep_mask(bool* keep, index_t outer, index_t n, index_t inner, double p, Generator& gen,
                            const T* x = nullptr, T* y = nullptr, double scale = 1.0) {
    WEFT_CHECK(gen.replicas >= 1 && gen.replica < gen.replicas, "random mask: generator replica ", gen.replica, " of ",
               gen.replicas, " replicas is out of range");
    const std::uint64_t run = std::uint64_t(n) * std::uint64_t(inner);  // one sample slab per outer index
    const std::uint64_t stride = run * gen.replicas;                      // the global slab
    const std::uint64_t base = gen.advance(random::Uniform<float>::blocks(std::uint64_t(outer) * stride));
    draw_keep_runs<T>(keep, outer, index_t(run), gen.replica * run, stride, p, gen.seed, base, x, y, scale);
}

// y = keep ? x·scale : 0, element-wise over dense device arrays.
template <class T>
void apply_mask(const T* x, const bool* keep, T* y, index_t n, double scale) {
    if (n <= 0) return;
    kernels::apply_mask<T><<<grid_blocks(n, block_threads), block_threads, 0, current_stream()>>>(
        x, keep, y, n, compute_t<T>(scale));
    WEFT_CUDA_CHECK_LAUNCH();
}

// y = x·(keep[k] ? scale : 0) for element (o, k, j) of a dense [outer, n, inner] array.
template <class T>
void apply_sample_mask(const T* x, const bool* keep, T* y, index_t outer, index_t n, index_t inner, double scale) {
    const index_t total = outer * n * inner;
    if (total <= 0) return;
    const unsigned grid = grid_blocks(total, block_threads);
    const cudaStream_t stream = current_stream();
    const compute_t<T> s = compute_t<T>(scale);
    if (total <= index_t(std::numeric_limits<std::int32_t>::max()))
        kernels::apply_sample_mask<T, std::uint32_t><<<grid, block_threads, 0, stream>>>(
            x, keep, y, std::uint32_t(n), std::uint32_t(inner), std::uint32_t(total), s);
    else
        kernels::apply_sample_mask<T, index_t><<<grid, block_threads, 0, stream>>>(x, keep, y, n, inner, total, s);
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda

}  // namespace weft
