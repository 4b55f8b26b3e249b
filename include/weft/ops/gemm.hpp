// weft/ops/gemm.hpp: the GEMM customization point every matrix product goes through.
//
//   GemmProblem<float> p;            // C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b]
//   ...
//   Gemm<Cpu>::run(p);               // ops/cpu/gemm.hpp: OpenBLAS, or Eigen's GEMM
//
// ops/matmul.hpp turns tensors into GemmProblems (transposed views become transpose flags,
// broadcast batches become batch stride 0) and hands them to `Gemm<D>`; each device
// specialises it: `Gemm<Cpu>` in ops/cpu/gemm.hpp, `Gemm<Cuda>` (cuBLAS strided-batched GEMM)
// in ops/cuda/gemm.cuh. A problem is row-major throughout; a column-major
// library computes Cᵀ = op(B)ᵀ·op(A)ᵀ instead, which is the same memory.
#pragma once

#include <concepts>

#include "../core/config.hpp"
#include "../core/device.hpp"

namespace weft {

// One batch of matrix products, all matrices row-major: element (i, j) of a matrix X with
// leading dimension ldx sits at x[i * ldx + j]. op(X) is X, or Xᵀ when trans_x is set, so
// op(A) is [m, k], op(B) is [k, n] and C is [m, n]; A is stored [m, k] (or [k, m] when
// transposed), with lda >= its column count (at least 1), and likewise B and C.
// Matrix b of the batch starts at a + b * stride_a (and so on); a stride of 0 shares one A or
// B across the batch. Every C[b] must be distinct and must not overlap A or B.
// beta == 0 ignores C's old contents (NaN included), as BLAS does.
template <class T>
struct GemmProblem {
    index_t batch = 1, m = 0, n = 0, k = 0;
    const T* a = nullptr;
    index_t lda = 1, stride_a = 0;
    bool trans_a = false;
    const T* b = nullptr;
    index_t ldb = 1, stride_b = 0;
    bool trans_b = false;
    T* c = nullptr;
    index_t ldc = 1, stride_c = 0;
    T alpha = T(1), beta = T(0);
};

// `Gemm<D>::run(problem)` runs a GemmProblem on device D.
template <Device D>
struct Gemm {
    static_assert(
        !std::same_as<D, Cpu>,
        "weft: no CPU GEMM is visible here; include <weft/ops/matmul.hpp> (or <weft/ops/cpu/gemm.hpp>)");
    static_assert(!std::same_as<D, Cuda>,
                  "weft: matmul, bmm and linear on Cuda tensors need a translation unit compiled by nvcc with "
                  "WEFT_CUDA (a .cu file; configure weft with -DWEFT_CUDA=ON), which brings the cuBLAS GEMM "
                  "(ops/cuda/gemm.cuh)");
};

}  // namespace weft
