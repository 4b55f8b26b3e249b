// weft/ops/cpu/gemm_openblas.hpp: OpenBLAS's cblas_?gemm as a weft GEMM engine.
//
//   cpu::OpenBlasGemm::run(problem);   // a GemmProblem<float> or <double>, see ops/gemm.hpp
//
// The engine of `Gemm<Cpu>` when weft is configured with OpenBLAS (WEFT_USE_OPENBLAS, set by
// CMake when OpenBLAS is found). Needs OpenBLAS's cblas.h on the include path and libopenblas
// linked: the weft::weft target brings both.
//
// Threads: each product runs on the calling thread and OpenBLAS spreads it over its own
// threads (pthreads or OpenMP, whichever libopenblas.so.0 is installed), which share the packed
// operands; this measured 1.1-1.5x faster than cutting C into blocks for weft's pool (see
// docs/performance.md). OpenBLAS's thread count follows weft's `num_threads()`: it is set
// before a product whenever it differs from what the calling thread set last. Products too
// small for OpenBLAS to thread (m * n * k <= 4 * 65536) are spread over weft's pool one per task
// when a batch has several. Calling matmul from inside a weft parallel_for (or from several
// threads at once) is correct but lets each call start OpenBLAS's threads: prefer one large
// batched call.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <concepts>
#include <limits>
#include <string_view>

#include "../../core/error.hpp"
#include "../../exec/cpu/thread_pool.hpp"
#include "../gemm.hpp"

namespace weft::cpu {

struct OpenBlasGemm {
    static constexpr std::string_view name = "OpenBLAS";

    // OpenBLAS computes a product with m * n * k at most this on one thread (interface/gemm.c:
    // SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD).
    static constexpr double single_thread_work = 65536.0 * 4;

    // Makes OpenBLAS use weft's thread count for products issued from this thread.
    static void use_weft_threads() {
        thread_local int synced = 0;
        const int want = num_threads();
        if (synced != want) {
            openblas_set_num_threads(want);
            synced = want;
        }
    }

    template <class T>
    static void run(const GemmProblem<T>& p) {
        static_assert(std::same_as<T, float> || std::same_as<T, double>,
                      "weft: the OpenBLAS GEMM engine takes float or double");
        if (p.batch <= 0 || p.m == 0 || p.n == 0) return;
        constexpr index_t max_int = index_t(std::numeric_limits<blasint>::max());
        WEFT_CHECK(p.m <= max_int && p.n <= max_int && p.k <= max_int && p.lda <= max_int &&
                       p.ldb <= max_int && p.ldc <= max_int,
                   "matmul: a product of [", p.m, ", ", p.k, "] by [", p.k, ", ", p.n,
                   "] (leading dimensions ", p.lda, ", ", p.ldb, ", ", p.ldc,
                   ") exceeds OpenBLAS's integer range ", max_int);
        const double work = double(p.m) * double(p.n) * double(p.k);
        if (p.batch > 1 && work <= single_thread_work) {
            const index_t grain = std::max<index_t>(1, index_t(single_thread_work / std::max(work, 1.0)));
            parallel_for(0, p.batch, grain, [&](index_t b0, index_t b1) {
                for (index_t i = b0; i < b1; ++i) one(p, i);
            });
            return;
        }
        use_weft_threads();
        for (index_t i = 0; i < p.batch; ++i) one(p, i);
    }

private:
    template <class T>
    static void one(const GemmProblem<T>& p, index_t i) {
        const auto ta = p.trans_a ? CblasTrans : CblasNoTrans;
        const auto tb = p.trans_b ? CblasTrans : CblasNoTrans;
        const T* a = p.a + i * p.stride_a;
        const T* b = p.b + i * p.stride_b;
        T* c = p.c + i * p.stride_c;
        if constexpr (std::same_as<T, float>)
            cblas_sgemm(CblasRowMajor, ta, tb, blasint(p.m), blasint(p.n), blasint(p.k), p.alpha, a,
                        blasint(p.lda), b, blasint(p.ldb), p.beta, c, blasint(p.ldc));
        else
            cblas_dgemm(CblasRowMajor, ta, tb, blasint(p.m), blasint(p.n), blasint(p.k), p.alpha, a,
                        blasint(p.lda), b, blasint(p.ldb), p.beta, c, blasint(p.ldc));
    }
};

}  // namespace weft::cpu
