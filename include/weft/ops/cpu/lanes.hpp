// weft/ops/cpu/lanes.hpp: the loops of the CPU norm and softmax kernels: sums and maxima over a
// row kept in independent lanes, and parallel walks over the rows or lanes of one axis.
//
//   Acc s = lane_sum<Acc>(n, [&](index_t i) { return Acc(x[i]) * Acc(x[i]); });
//   auto [outer, n, inner] = split_at_axis(x.shape(), axis);   // a dense tensor as [outer, n, inner]
//   for_each_row(rows, n, [&](index_t r) { ... });              // rows of n dense elements
//   for_each_lane_tile(split, [&](index_t offset, index_t width) { ... });
//
// A float reduction written as one accumulator does not vectorise: the compiler may not reorder
// the additions without -ffast-math. Sixteen accumulators, combined pairwise at the end, make
// the reordering explicit, so the loop vectorises with plain -O2/-O3 and the sum is also a bit
// more accurate than a sequential one.
//
// A reduction over an axis that is not the last reads, for each of its `n` positions, `inner`
// neighbouring elements: a tile of up to kLaneTile such lanes is handled together, so every
// inner loop runs over contiguous memory.
#pragma once

#include <algorithm>
#include <limits>

#include "../../core/shape.hpp"
#include "../../exec/cpu/thread_pool.hpp"

namespace weft::detail {

inline constexpr int kLanes = 16;
inline constexpr index_t kLaneTile = 64;
// Elements per parallel chunk below which splitting costs more than it saves (as the executor).
inline constexpr index_t kParallelGrain = 32768;

// Combines kLanes partial results pairwise.
template <class Acc, class Op>
WEFT_FORCE_INLINE Acc combine_lanes(Acc (&a)[kLanes], Op op) {
    for (int w = kLanes / 2; w > 0; w /= 2)
        for (int l = 0; l < w; ++l) a[l] = op(a[l], a[l + w]);
    return a[0];
}

// sum of f(i) for i in [0, n).
template <class Acc, class F>
WEFT_FORCE_INLINE Acc lane_sum(index_t n, F&& f) {
    Acc a[kLanes] = {};
    index_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) a[l] += f(i + l);
    for (int l = 0; i < n; ++i, ++l) a[l] += f(i);
    return combine_lanes(a, [](Acc u, Acc v) { return u + v; });
}

// The sums of f(i) and h(i) for i in [0, n), in one pass.
template <class Acc, class F, class H>
WEFT_FORCE_INLINE void lane_sum2(index_t n, F&& f, H&& h, Acc& sum_f, Acc& sum_h) {
    Acc a[kLanes] = {}, b[kLanes] = {};
    index_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) {
            a[l] += f(i + l);
            b[l] += h(i + l);
        }
    for (int l = 0; i < n; ++i, ++l) {
        a[l] += f(i);
        b[l] += h(i);
    }
    sum_f = combine_lanes(a, [](Acc u, Acc v) { return u + v; });
    sum_h = combine_lanes(b, [](Acc u, Acc v) { return u + v; });
}

// max of f(i) for i in [0, n); -inf for n == 0. A NaN propagates (as torch's max does).
template <class Acc, class F>
WEFT_FORCE_INLINE Acc lane_max(index_t n, F&& f) {
    constexpr Acc lowest = -std::numeric_limits<Acc>::infinity();
    Acc a[kLanes];
    for (int l = 0; l < kLanes; ++l) a[l] = lowest;
    auto op = [](Acc u, Acc v) { return (u > v || u != u) ? u : v; };
    index_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) a[l] = op(a[l], f(i + l));
    for (int l = 0; i < n; ++i, ++l) a[l] = op(a[l], f(i));
    return combine_lanes(a, op);
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

// Splits [0, count) into `chunks` nearly equal ranges; range c is [chunk_begin(c), chunk_begin(c + 1)).
struct ChunkRanges {
    index_t count, chunks;
    index_t begin(index_t c) const { return count * c / chunks; }
};

// How many chunks a reduction over `rows` rows of `row_elements` elements is worth splitting
// into (one per thread at most, none smaller than kParallelGrain elements).
inline index_t reduction_chunks(index_t rows, index_t row_elements) {
    const index_t total = rows * std::max<index_t>(row_elements, 1);
    const index_t by_size = std::max<index_t>(1, total / kParallelGrain);
    return std::max<index_t>(1, std::min({rows, by_size, index_t(num_threads())}));
}

}  // namespace weft::detail
