// weft/ops/cpu/index_rows.hpp: the CPU loops behind embedding and index_select.
//
// Both ops pick rows of a table viewed as [outer, rows, inner] (dense): out[a, j, :] =
// src[a, idx[j], :]. The backward adds rows back, and an index may repeat, so two threads
// adding into the same row would race. The positions are therefore grouped by the row they
// name (a counting sort, O(n + rows)) and each gradient row is summed by one thread, in the
// order the positions appear: no atomics, and the same bits for any number of threads.
//
// Indices are validated by the callers, whose error messages name the op.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../../core/config.hpp"
#include "../../core/dtype.hpp"
#include "../../exec/cpu/executor.hpp"
#include "../../exec/cpu/thread_pool.hpp"

namespace weft::detail {

// out[a, j, :] = src[a, idx[j], :] for a < outer, j < n; both dense.
template <class T>
void index_rows_forward(T* out, const T* src, index_t outer, index_t rows, index_t inner, const std::int64_t* idx,
                        index_t n) {
    const index_t tasks = outer * n;
    parallel_for(0, tasks, std::max<index_t>(1, cpu::grain / std::max<index_t>(inner, 1)), [&](index_t b, index_t e) {
        for (index_t t = b; t < e; ++t) {
            const index_t a = t / n, j = t % n;
            const T* s = src + (a * rows + idx[j]) * inner;
            T* d = out + t * inner;
            std::copy(s, s + inner, d);
        }
    });
}

// Positions 0..n-1 grouped by the row they name: the positions of row r are
// order[start[r]] .. order[start[r + 1] - 1], ascending.
struct RowGroups {
    std::vector<index_t> start;
    std::vector<index_t> order;
};

inline RowGroups group_by_row(const std::int64_t* idx, index_t n, index_t rows) {
    RowGroups g;
    g.start.assign(std::size_t(rows + 1), 0);
    g.order.resize(std::size_t(n));
    for (index_t j = 0; j < n; ++j) ++g.start[std::size_t(idx[j] + 1)];
    for (index_t r = 0; r < rows; ++r) g.start[std::size_t(r + 1)] += g.start[std::size_t(r)];
    std::vector<index_t> next(g.start.begin(), g.start.end() - 1);
    for (index_t j = 0; j < n; ++j) g.order[std::size_t(next[std::size_t(idx[j])]++)] = j;
    return g;
}

// grad_src[a, r, :] = sum over j with idx[j] == r of grad_out[a, j, :]; every row written
// (zero where no position names it). Both dense.
template <class T>
void index_rows_backward(T* grad_src, const T* grad_out, index_t outer, index_t rows, index_t inner,
                         const std::int64_t* idx, index_t n) {
    using C = compute_t<T>;
    const RowGroups groups = group_by_row(idx, n, rows);
    const index_t tasks = outer * rows;
    // Work is about inner per gathered position plus inner per row written.
    const index_t per_task = inner * (1 + (rows > 0 ? n / rows : 0));
    parallel_for(0, tasks, std::max<index_t>(1, cpu::grain / std::max<index_t>(per_task, 1)), [&](index_t b, index_t e) {
        std::vector<C> acc(static_cast<std::size_t>(inner));
        for (index_t t = b; t < e; ++t) {
            const index_t a = t / rows, r = t % rows;
            T* d = grad_src + t * inner;
            const index_t g0 = groups.start[std::size_t(r)], g1 = groups.start[std::size_t(r + 1)];
            if (g0 == g1) {
                std::fill(d, d + inner, T(0));
                continue;
            }
            std::fill(acc.begin(), acc.end(), C(0));
            for (index_t k = g0; k < g1; ++k) {
                const T* s = grad_out + (a * n + groups.order[std::size_t(k)]) * inner;
                C* ac = acc.data();
                for (index_t i = 0; i < inner; ++i) ac[i] += convert<C>(s[i]);
            }
            for (index_t i = 0; i < inner; ++i) d[i] = convert<T>(acc[std::size_t(i)]);
        }
    });
}

}  // namespace weft::detail
