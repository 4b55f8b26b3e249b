// weft/exec/cpu/executor.hpp: runs expressions and reductions on the CPU.
//
// Assignment takes one of two loops:
//  - linear: destination and every operand dense in the same order (no broadcasting): one flat
//    loop over i, which the compiler vectorizes; cut into one chunk per thread.
//  - rows: otherwise, one loop per row of the last axis; rows are spread over the threads and a
//    row whose operands all have unit inner stride (bias adds, [N, C] + [C]) still vectorizes.
// Reductions run one output per task when the last axis is reduced, and one output row per task,
// accumulating whole rows, when it is kept, so the inner loop always walks memory in order.
#pragma once

#include <vector>

#include "../../core/tensor.hpp"
#include "../../expr/executor.hpp"
#include "thread_pool.hpp"

namespace weft {

namespace cpu {

// Enough work per chunk that waking a thread pays for itself.
inline constexpr index_t grain = 1 << 15;

template <class T, class Ev>
void linear_loop(T* __restrict out, const Ev& ev_in, index_t begin, index_t end) {
    const Ev ev = ev_in;  // a local copy lives in registers; the stores cannot alias it
#pragma GCC ivdep
    for (index_t i = begin; i < end; ++i) out[i] = convert<T>(ev.linear(i));
}

template <class T, class Row>
void row_loop_unit(T* __restrict out, const Row& row_in, index_t n) {
    const Row row = row_in;
#pragma GCC ivdep
    for (index_t j = 0; j < n; ++j) out[j] = convert<T>(row.at_unit(j));
}

template <class T, class Row>
void row_loop(T* out, index_t step, const Row& row_in, index_t n) {
    const Row row = row_in;
    for (index_t j = 0; j < n; ++j) out[j * step] = convert<T>(row.at(j));
}

// Sets idx (rank R, last entry 0) to the multi-index of row `r` of `shape`.
template <int R>
void unravel_row(index_t r, const Shape<R>& shape, index_t* idx) {
    for (int d = R - 2; d >= 0; --d) {
        idx[d] = r % shape[d];
        r /= shape[d];
    }
    if constexpr (R > 0) idx[R - 1] = 0;
}

template <int R>
void next_row(const Shape<R>& shape, index_t* idx) {
    for (int d = R - 2; d >= 0; --d) {
        if (++idx[d] < shape[d]) return;
        idx[d] = 0;
    }
}

}  // namespace cpu

template <>
struct Executor<Cpu> {
    template <Element T, int R, class Ev>
    static void assign(const Tensor<T, R, Cpu>& dst, const Ev& ev) {
        const index_t n = dst.numel();
        T* out = dst.data();
        if (dst.is_contiguous() && ev.linear_ok()) {
            parallel_for(0, n, cpu::grain, [&](index_t b, index_t e) { cpu::linear_loop(out, ev, b, e); });
            return;
        }
        const Shape<R>& shape = dst.shape();
        const index_t inner = R > 0 ? shape[R - 1] : 1;
        const index_t rows = n / inner;
        const index_t step = R > 0 ? dst.strides()[R - 1] : 1;
        const bool unit = step == 1 && ev.inner_unit();
        parallel_for(0, rows, std::max<index_t>(1, cpu::grain / inner), [&](index_t rb, index_t re) {
            index_t idx[R > 0 ? R : 1];
            cpu::unravel_row(rb, shape, idx);
            for (index_t r = rb; r < re; ++r, cpu::next_row(shape, idx)) {
                index_t off = 0;
                for (int d = 0; d < R - 1; ++d) off += idx[d] * dst.strides()[d];
                const auto row = ev.row(idx);
                if (unit) cpu::row_loop_unit(out + off, row, inner);
                else cpu::row_loop(out + off, step, row, inner);
            }
        });
    }

    // out has the input's rank with extent 1 on every reduced axis, and is dense.
    template <Element Out, int R, class Ev, class Mask, class Op>
    static void reduce(const Tensor<Out, R, Cpu>& out, const Ev& ev, const Shape<R>& in, const Mask& mask, Op op) {
        using Acc = typename Op::acc_type;
        Out* o = out.data();
        index_t count = 1;
        for (int d = 0; d < R; ++d)
            if (mask[d]) count *= in[d];
        const bool unit = ev.inner_unit();
        if (count == 0) {  // an empty range: sum 0, mean NaN (0/0), as torch
            for (index_t k = 0; k < out.numel(); ++k) o[k] = op.template finalize<Out>(op.init(), 0);
            return;
        }

        // Odometer over the reduced axes other than the last; `pos_base` is the position of the
        // current row start within the reduced index space (row-major over reduced axes).
        auto for_each_reduced_row = [&](index_t* idx, auto&& body) {
            index_t pos_base = 0;
            for (;;) {
                body(pos_base);
                int d = R - 2;
                for (; d >= 0; --d) {
                    if (!mask[d]) continue;
                    if (++idx[d] < in[d]) break;
                    idx[d] = 0;
                }
                if (d < 0) return;
                ++pos_base;
            }
        };

        if (R == 0 || mask[R - 1]) {
            // Each task reduces whole outputs; the last axis is walked inside.
            const index_t inner = R > 0 ? in[R - 1] : 1;
            parallel_for(0, out.numel(), std::max<index_t>(1, cpu::grain / std::max<index_t>(count, 1)),
                         [&](index_t b, index_t e) {
                             for (index_t k = b; k < e; ++k) {
                                 index_t idx[R > 0 ? R : 1] = {};
                                 index_t rem = k;
                                 for (int d = R - 1; d >= 0; --d) {
                                     idx[d] = rem % out.shape()[d];
                                     rem /= out.shape()[d];
                                 }
                                 Acc acc = op.init();
                                 if constexpr (R == 0) {
                                     acc = op.combine(acc, ev.at(idx), 0);
                                 } else {
                                     for_each_reduced_row(idx, [&](index_t pos_base) {
                                         const auto row = ev.row(idx);
                                         const index_t base = pos_base * inner;
                                         if (unit)
                                             for (index_t j = 0; j < inner; ++j)
                                                 acc = op.combine(acc, row.at_unit(j), base + j);
                                         else
                                             for (index_t j = 0; j < inner; ++j)
                                                 acc = op.combine(acc, row.at(j), base + j);
                                     });
                                 }
                                 o[k] = op.template finalize<Out>(acc, count);
                             }
                         });
            return;
        }

        // The last axis is kept: accumulate whole rows of outputs at once. (Rank 0 always takes
        // the branch above; `if constexpr` keeps a zero-length array out of its instantiation.)
        if constexpr (R > 0) {
            const index_t inner = in[R - 1];
            const index_t out_rows = out.numel() / inner;
            parallel_for(0, out_rows, std::max<index_t>(1, cpu::grain / std::max<index_t>(count * inner, 1)),
                         [&](index_t b, index_t e) {
                             std::vector<Acc> acc(static_cast<std::size_t>(inner));
                             for (index_t r = b; r < e; ++r) {
                                 index_t idx[R] = {};
                                 index_t rem = r;
                                 for (int d = R - 2; d >= 0; --d) {
                                     idx[d] = rem % out.shape()[d];
                                     rem /= out.shape()[d];
                                 }
                                 for (auto& a : acc) a = op.init();
                                 for_each_reduced_row(idx, [&](index_t pos) {
                                     const auto row = ev.row(idx);
                                     Acc* a = acc.data();
                                     if (unit)
                                         for (index_t j = 0; j < inner; ++j) a[j] = op.combine(a[j], row.at_unit(j), pos);
                                     else
                                         for (index_t j = 0; j < inner; ++j) a[j] = op.combine(a[j], row.at(j), pos);
                                 });
                                 Out* dst = o + r * inner;
                                 for (index_t j = 0; j < inner; ++j) dst[j] = op.template finalize<Out>(acc[j], count);
                             }
                         });
        }
    }
};

}  // namespace weft
