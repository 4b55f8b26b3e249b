// weft/ops/cuda/gemm.cuh: `Gemm<Cuda>`, matrix products on the GPU through cuBLAS.
//
//   Gemm<Cuda>::run(problem);              // a GemmProblem<T> of device pointers, see ops/gemm.hpp
//   weft::cuda::set_allow_tf32(true);      // float products on tensor cores (10-bit mantissa inputs)
//
// Every problem is one cublasGemmStridedBatchedEx call on weft's current stream: float, double,
// bf16 and half, the 16-bit types accumulating in float (CUBLAS_COMPUTE_32F), as PyTorch does. A
// stride of 0 shares an operand over the batch, which cuBLAS reads in place.
//
// Row-major problems, column-major library: the memory of a row-major C [m, n] is the column-major
// Cᵀ [n, m], so cuBLAS computes Cᵀ = op(B)ᵀ · op(A)ᵀ, B and A swapped, their transpose flags kept.
//
// float products are exact fp32 by default (PyTorch's default for matmul too); TF32 trades 13 bits
// of each input's mantissa for the tensor cores and is opt-in. One cuBLAS handle per host thread
// and device, created on first use and never destroyed: a handle's destructor may run after CUDA
// has shut down at exit, and the driver reclaims it with the process. cuBLAS allocates its
// workspace when the handle is made, so steady-state products call no cudaMalloc.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/gemm.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

// cublas_v2.h brings cuda_fp16.h, whose global `half` typedef would make weft::half ambiguous
// under `using namespace weft`; CUDA_NO_HALF leaves it out (the weft target defines it too).
#if !defined(CUDA_NO_HALF)
#define CUDA_NO_HALF
#endif
#include <cublas_v2.h>

#include <atomic>
#include <concepts>
#include <limits>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "../../core/bf16.hpp"
#include "../../core/cuda/check.cuh"
#include "../../core/error.hpp"
#include "../../core/half.hpp"
#include "../../exec/cuda/stream.cuh"
#include "../gemm.hpp"

namespace weft {

namespace cuda {

namespace detail {

[[noreturn]] inline void cublas_fail(cublasStatus_t status, const char* call, const char* file, int line) {
    std::ostringstream os;
    os << "weft: cuBLAS error " << cublasGetStatusName(status) << " (" << cublasGetStatusString(status) << ") in `"
       << call << "` [" << file << ":" << line << "]";
    throw Error(os.str());
}

inline std::atomic<bool>& allow_tf32_flag() {
    static std::atomic<bool> flag{false};
    return flag;
}

}  // namespace detail

#define WEFT_CUBLAS_CHECK(call)                                                                 \
    do {                                                                                        \
        const cublasStatus_t weft_cublas_status_ = (call);                                      \
        if (weft_cublas_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                          \
            ::weft::cuda::detail::cublas_fail(weft_cublas_status_, #call, __FILE__, __LINE__); \
    } while (0)

// Lets float products use TF32 tensor cores (as torch.backends.cuda.matmul.allow_tf32).
inline void set_allow_tf32(bool allow) { detail::allow_tf32_flag().store(allow, std::memory_order_relaxed); }
inline bool allow_tf32() { return detail::allow_tf32_flag().load(std::memory_order_relaxed); }

// This host thread's cuBLAS handle for the current device, bound to weft's current stream.
inline cublasHandle_t cublas_handle() {
    thread_local std::unordered_map<int, cublasHandle_t> handles;  // never destroyed: see the top
    const int device = current_device();
    cublasHandle_t& h = handles[device];
    if (!h) WEFT_CUBLAS_CHECK(cublasCreate(&h));
    WEFT_CUBLAS_CHECK(cublasSetStream(h, current_stream()));
    return h;
}

namespace detail {

// cuBLAS's names for an element type and the type it accumulates in.
template <class T>
struct CublasTypes;
template <>
struct CublasTypes<float> {
    static constexpr cudaDataType_t data = CUDA_R_32F;
    using Scale = float;
};
template <>
struct CublasTypes<double> {
    static constexpr cudaDataType_t data = CUDA_R_64F;
    using Scale = double;
};
template <>
struct CublasTypes<bf16> {
    static constexpr cudaDataType_t data = CUDA_R_16BF;
    using Scale = float;
};
template <>
struct CublasTypes<half> {
    static constexpr cudaDataType_t data = CUDA_R_16F;
    using Scale = float;
};

template <class T>
cublasComputeType_t compute_type() {
    if constexpr (std::same_as<T, double>) return CUBLAS_COMPUTE_64F;
    else if constexpr (std::same_as<T, float>) return allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    else return CUBLAS_COMPUTE_32F;
}

}  // namespace detail

}  // namespace cuda

template <>
struct Gemm<Cuda> {
    static constexpr std::string_view engine_name = "cuBLAS";

    template <class T>
    static void run(const GemmProblem<T>& p) {
        static_assert(std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, bf16> ||
                          std::same_as<T, half>,
                      "weft: matmul, bmm and linear on CUDA take float, double, bf16 or half tensors");
        if (p.batch <= 0 || p.m == 0 || p.n == 0) return;
        constexpr index_t max_int = std::numeric_limits<int>::max();
        WEFT_CHECK(p.m <= max_int && p.n <= max_int && p.k <= max_int && p.batch <= max_int && p.lda <= max_int &&
                       p.ldb <= max_int && p.ldc <= max_int,
                   "matmul: a batch of ", p.batch, " products of [", p.m, ", ", p.k, "] by [", p.k, ", ", p.n,
                   "] (leading dimensions ", p.lda, ", ", p.ldb, ", ", p.ldc, ") exceeds cuBLAS's int range");
        using Types = cuda::detail::CublasTypes<T>;
        using S = typename Types::Scale;
        const S alpha = S(p.alpha), beta = S(p.beta);
        // Cᵀ [n, m] = op(B)ᵀ [n, k] · op(A)ᵀ [k, m], all column-major (see the top of this file).
        WEFT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            cuda::cublas_handle(), p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
            int(p.n), int(p.m), int(p.k), &alpha, p.b, Types::data, int(p.ldb), (long long)p.stride_b, p.a,
            Types::data, int(p.lda), (long long)p.stride_a, &beta, p.c, Types::data, int(p.ldc),
            (long long)p.stride_c, int(p.batch), cuda::detail::compute_type<T>(), CUBLAS_GEMM_DEFAULT));
    }
};

}  // namespace weft
