// weft/ops/cpu/gemm_eigen.hpp: Eigen's GEMM as a weft GEMM engine, threaded by weft's pool.
//
//   cpu::EigenGemm::run(problem);   // a GemmProblem<float> or <double>, see ops/gemm.hpp
//
// The fallback engine of `Gemm<Cpu>` when weft is built without OpenBLAS (WEFT_BLAS=Eigen, or
// OpenBLAS not found), and always available to code that includes this header (the tests
// check both engines). Eigen parallelises its GEMM only through OpenMP, so without it each
// product is cut into blocks of C that run on weft's threads: by columns when
// m < n (every task then packs its own copy of A, the smaller operand), else by rows (each
// packs B). Batches of at least as many products as threads run one product per task instead.
// Translation units compiled with -fopenmp (Eigen then defines EIGEN_HAS_OPENMP) let Eigen
// parallelise each product itself, and weft issues them one after the other, so that the two
// never nest.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <concepts>
#include <string_view>

#include "../../exec/cpu/thread_pool.hpp"
#include "../gemm.hpp"

namespace weft::cpu {

struct EigenGemm {
    static constexpr std::string_view name = "Eigen";

    // Below this many multiply-adds per task, waking another thread costs more than it saves.
    static constexpr double min_task_work = double(1 << 18);

    // C = alpha * op(A) * op(B) + beta * C for one product, on the calling thread.
    template <class T>
    static void kernel(index_t m, index_t n, index_t k, const T* a, index_t lda, bool trans_a, const T* b,
                       index_t ldb, bool trans_b, T* c, index_t ldc, T alpha, T beta) {
        using Stride = Eigen::OuterStride<>;
        using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        using ColMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
        Eigen::Map<RowMajor, Eigen::Unaligned, Stride> C(c, m, n, Stride(ldc));
        if (beta == T(0))
            C.setZero();  // BLAS semantics: C's old contents (even NaN) are ignored
        else if (beta != T(1))
            C *= beta;
        if (k == 0 || alpha == T(0)) return;
        // A transposed operand is a column-major view of the same memory: Eigen's GEMM packs
        // either order, so no copy is made.
        auto with_op = [](const T* x, index_t rows, index_t cols, index_t ld, bool trans, auto&& f) {
            if (trans)
                f(Eigen::Map<const ColMajor, Eigen::Unaligned, Stride>(x, rows, cols, Stride(ld)));
            else
                f(Eigen::Map<const RowMajor, Eigen::Unaligned, Stride>(x, rows, cols, Stride(ld)));
        };
        with_op(a, m, k, lda, trans_a, [&](const auto& A) {
            with_op(b, k, n, ldb, trans_b, [&](const auto& B) { C.noalias() += (alpha * A) * B; });
        });
    }

    template <class T>
    static void run(const GemmProblem<T>& p) {
        static_assert(std::same_as<T, float> || std::same_as<T, double>,
                      "weft: the Eigen GEMM engine takes float or double");
        if (p.batch <= 0 || p.m == 0 || p.n == 0) return;
#if defined(EIGEN_HAS_OPENMP)
        for (index_t i = 0; i < p.batch; ++i) one(p, i);
#else
        const double work = double(p.m) * double(p.n) * double(std::max<index_t>(p.k, 1));
        if (p.batch > 1 && p.batch >= num_threads()) {
            const index_t grain = std::max<index_t>(1, index_t(min_task_work / work));
            parallel_for(0, p.batch, grain, [&](index_t b0, index_t b1) {
                for (index_t i = b0; i < b1; ++i) one(p, i);
            });
            return;
        }
        for (index_t i = 0; i < p.batch; ++i) split(p, i, work);
#endif
    }

private:
    template <class T>
    static void one(const GemmProblem<T>& p, index_t i) {
        kernel(p.m, p.n, p.k, p.a + i * p.stride_a, p.lda, p.trans_a, p.b + i * p.stride_b, p.ldb, p.trans_b,
               p.c + i * p.stride_c, p.ldc, p.alpha, p.beta);
    }

    // Product i of the batch, its C cut into blocks of 8 rows or columns spread over the pool.
    template <class T>
    static void split(const GemmProblem<T>& p, index_t i, double work) {
        const T* a = p.a + i * p.stride_a;
        const T* b = p.b + i * p.stride_b;
        T* c = p.c + i * p.stride_c;
        const bool by_cols = p.m < p.n;
        const index_t extent = by_cols ? p.n : p.m;
        constexpr index_t unit = 8;
        const index_t units = (extent + unit - 1) / unit;
        const index_t grain = std::max<index_t>(1, index_t(double(units) * min_task_work / work));
        parallel_for(0, units, grain, [&](index_t u0, index_t u1) {
            const index_t lo = u0 * unit, hi = std::min(extent, u1 * unit);
            if (by_cols) {
                kernel(p.m, hi - lo, p.k, a, p.lda, p.trans_a, b + (p.trans_b ? lo * p.ldb : lo), p.ldb,
                       p.trans_b, c + lo, p.ldc, p.alpha, p.beta);
            } else {
                kernel(hi - lo, p.n, p.k, a + (p.trans_a ? lo : lo * p.lda), p.lda, p.trans_a, b, p.ldb,
                       p.trans_b, c + lo * p.ldc, p.ldc, p.alpha, p.beta);
            }
        });
    }
};

}  // namespace weft::cpu
