// weft/ops/cpu/lanes.hpp: the loops of the CPU norm and softmax kernels: sums and maxima of a
// row in vector registers, and parallel walks over the rows or lanes of one axis.
//
//   Acc s = simd_sum<Acc>(n, [&](auto g, auto y) { return g * y; }, g_ptr, y_ptr);
//   auto [outer, n, inner] = split_at_axis(x.shape(), axis);   // a dense tensor as [outer, n, inner]
//   for_each_row(rows, n, [&](index_t r) { ... });              // rows of n dense elements
//   for_each_lane_tile(split, [&](index_t offset, index_t width) { ... });
//
// A float reduction written with one accumulator does not vectorise: the compiler may not
// reorder the additions without -ffast-math. Written with an array of partial sums, GCC
// vectorises across loop iterations instead, with a shuffle per element. So the sums here keep
// their partials in explicit vectors (GCC/Clang vector extension, 32 bytes: AVX registers),
// two of them to hide the addition latency; the pairwise combination at the end also makes
// them a little more accurate than a sequential sum.
//
// A reduction over an axis that is not the last reads, for each of its `n` positions, `inner`
// neighbouring elements: a tile of up to kLaneTile such lanes is handled together, so every
// inner loop runs over contiguous memory and vectorises as a plain element-wise loop.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>

#include "../../core/dtype.hpp"
#include "../../core/shape.hpp"
#include "../../exec/cpu/thread_pool.hpp"

namespace weft::detail {

inline constexpr index_t kLaneTile = 64;
// Elements per parallel chunk below which splitting costs more than it saves (as the executor).
inline constexpr index_t kParallelGrain = 32768;

// A vector of 32 bytes of Acc (float or double) in GCC/Clang's vector extension: one AVX
// register, or two SSE ones. Arithmetic on it is element-wise, a scalar operand broadcasts.
template <class Acc>
struct SimdOf {
    typedef Acc type __attribute__((vector_size(32)));
};
template <class Acc>
using simd_t = typename SimdOf<Acc>::type;
template <class Acc>
inline constexpr int simd_width = int(32 / sizeof(Acc));

// p[0], ..., p[W - 1] converted to Acc. Written as one braced list, which GCC turns into a
// vector load (and a vector conversion from float to double).
template <class Acc, class T, std::size_t... L>
WEFT_FORCE_INLINE simd_t<Acc> simd_load(const T* p, std::index_sequence<L...>) {
    return simd_t<Acc>{convert<Acc>(p[L])...};
}
template <class Acc, class T>
WEFT_FORCE_INLINE simd_t<Acc> simd_load(const T* p) {
    return simd_load<Acc>(p, std::make_index_sequence<std::size_t(simd_width<Acc>)>{});
}

template <class Acc>
WEFT_FORCE_INLINE Acc horizontal_sum(simd_t<Acc> v) {
    Acc s = 0;
    for (int l = 0; l < simd_width<Acc>; ++l) s += v[l];
    return s;
}

// The sum over i in [0, n) of f(p[i]...), the elements converted to Acc. f is called with
// vectors in the main loop and with scalars for the last elements, so it must be generic and
// use only arithmetic: `[&](auto g, auto x) { return g * (x - mean); }`.
template <class Acc, class F, class... T>
WEFT_FORCE_INLINE Acc simd_sum(index_t n, F&& f, const T*... p) {
    constexpr int W = simd_width<Acc>;
    simd_t<Acc> a0{}, a1{};
    index_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        a0 += f(simd_load<Acc>(p + i)...);
        a1 += f(simd_load<Acc>(p + i + W)...);
    }
    Acc tail = 0;
    for (; i < n; ++i) tail += f(convert<Acc>(p[i])...);
    return horizontal_sum<Acc>(a0 + a1) + tail;
}

// The sums of f(p[i]...) and h(p[i]...) over i in [0, n), in one pass (f, h as for simd_sum).
template <class Acc, class F, class H, class... T>
WEFT_FORCE_INLINE void simd_sum2(index_t n, F&& f, H&& h, Acc& sum_f, Acc& sum_h, const T*... p) {
    constexpr int W = simd_width<Acc>;
    simd_t<Acc> a0{}, a1{}, b0{}, b1{};
    index_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        a0 += f(simd_load<Acc>(p + i)...);
        b0 += h(simd_load<Acc>(p + i)...);
        a1 += f(simd_load<Acc>(p + i + W)...);
        b1 += h(simd_load<Acc>(p + i + W)...);
    }
    Acc tail_f = 0, tail_h = 0;
    for (; i < n; ++i) {
        tail_f += f(convert<Acc>(p[i])...);
        tail_h += h(convert<Acc>(p[i])...);
    }
    sum_f = horizontal_sum<Acc>(a0 + a1) + tail_f;
    sum_h = horizontal_sum<Acc>(b0 + b1) + tail_h;
}

// The largest of p[0], ..., p[n - 1] converted to Acc; -inf for n == 0. NaNs are not looked
// for: softmax, the user, lets them through its sum of exponentials instead.
template <class Acc, class T>
WEFT_FORCE_INLINE Acc simd_max(index_t n, const T* p) {
    constexpr int W = simd_width<Acc>;
    constexpr Acc lowest = -std::numeric_limits<Acc>::infinity();
    simd_t<Acc> m0 = lowest - simd_t<Acc>{}, m1 = m0;
    index_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        const simd_t<Acc> v0 = simd_load<Acc>(p + i), v1 = simd_load<Acc>(p + i + W);
        m0 = v0 > m0 ? v0 : m0;
        m1 = v1 > m1 ? v1 : m1;
    }
    Acc m = lowest;
    for (; i < n; ++i) {
        const Acc v = convert<Acc>(p[i]);
        m = v > m ? v : m;
    }
    for (int l = 0; l < W; ++l) {
        m = m0[l] > m ? m0[l] : m;
        m = m1[l] > m ? m1[l] : m;
    }
    return m;
}

// A dense tensor seen as [outer, n, inner] around one axis: element (o, k, j) sits at
// (o * n + k) * inner + j.
struct AxisSplit {
    index_t outer = 1, n = 1, inner = 1;
};

template <int R>
AxisSplit split_at_axis(const Shape<R>& shape, int axis) {
    const int a = Shape<R>::normalize_axis(axis);
    AxisSplit s;
    for (int d = 0; d < a; ++d) s.outer *= shape[d];
    s.n = shape[a];
    for (int d = a + 1; d < R; ++d) s.inner *= shape[d];
    return s;
}

// f(r) for every row r in [0, rows) of n elements each, rows spread over the thread pool.
template <class F>
void for_each_row(index_t rows, index_t n, F&& f) {
    const index_t grain = std::max<index_t>(1, kParallelGrain / std::max<index_t>(n, 1));
    parallel_for(0, rows, grain, [&](index_t begin, index_t end) {
        for (index_t r = begin; r < end; ++r) f(r);
    });
}

// f(offset, width) for tiles of `width` <= kLaneTile neighbouring lanes along the split's axis:
// lane j < width of a tile holds the elements offset + k * inner + j, k in [0, n).
template <class F>
void for_each_lane_tile(const AxisSplit& s, F&& f) {
    const index_t per_outer = (s.inner + kLaneTile - 1) / kLaneTile;
    const index_t tiles = s.outer * per_outer;
    const index_t tile_elements = s.n * std::min(s.inner, kLaneTile);
    const index_t grain = std::max<index_t>(1, kParallelGrain / std::max<index_t>(tile_elements, 1));
    parallel_for(0, tiles, grain, [&](index_t begin, index_t end) {
        for (index_t t = begin; t < end; ++t) {
            const index_t o = t / per_outer, j0 = (t % per_outer) * kLaneTile;
            f(o * s.n * s.inner + j0, std::min(kLaneTile, s.inner - j0));
        }
    });
}

// How many chunks a reduction over `rows` rows of `row_elements` elements is worth splitting
// into (one per thread at most, none smaller than kParallelGrain elements).
inline index_t reduction_chunks(index_t rows, index_t row_elements) {
    const index_t total = rows * std::max<index_t>(row_elements, 1);
    const index_t by_size = std::max<index_t>(1, total / kParallelGrain);
    return std::max<index_t>(1, std::min({rows, by_size, index_t(num_threads())}));
}

}  // namespace weft::detail
