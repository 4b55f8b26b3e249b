// bench/cuda/gemm.cu: weft::matmul on Cuda tensors against a direct cuBLAS call on the same
// buffers, and the GPU's measured GEMM peak.
//
//   gemm/<dtype>/<M>x<N>x<K>          weft::matmul(a, b): a [M, K], b [K, N] -> a new c [M, N]
//   gemm/<dtype>/<M>x<N>x<K>/cublas   cublasGemmEx(a, b) into a preallocated c: cuBLAS's own rate
//
// dtype bf16 (inputs and output bf16, accumulation in float) or fp32 (exact fp32, no TF32: weft's
// and PyTorch's default for matmul). Shapes: ViT-B/16's products at 640×640, batch 4
// (M = 4·1601 tokens): the MLP's c_fc 6404×3072×768 and c_proj 6404×768×3072, the attention's
// q/k/v projection 6404×2304×768; the square 4096³; and 8192³, whose /cublas rate is the measured
// peak the device check divides by (scripts/device-table.py: "measured peak"). PyTorch's side,
// bench/gpu/ops_torch.py, runs torch.matmul on the same cases under the same names.
//
// weft::matmul goes through Gemm<Cuda> (ops/cuda/gemm.cuh: one cublasGemmStridedBatchedEx with a
// batch of 1) and allocates its output from the caching allocator, as torch.matmul does from
// its own; the /cublas case calls cublasGemmEx on weft's cuBLAS handle and stream, the
// operands swapped for row-major storage (Cᵀ = Bᵀ·Aᵀ in cuBLAS's column-major view). The ratio
// weft / cublas is the cost of weft's dispatch and its choice of call.
//
// Counters (timing.cuh): median_ms, flop = 2·M·N·K, TFLOPs, peak_mib (the inputs and outputs).
#include <benchmark/benchmark.h>

#include <cublas_v2.h>

#include <cstdint>
#include <string>

#include <weft/cuda.cuh>
#include <weft/ops/matmul.hpp>

#include "timing.cuh"

namespace {

using weft::bf16;
using weft::Cuda;
using weft::index_t;
using weft::Tensor;

struct Shape3 {
    index_t m, n, k;
};

template <class T>
struct DType;
template <>
struct DType<float> {
    static constexpr const char* name = "fp32";
    static constexpr cudaDataType_t cuda = CUDA_R_32F;
};
template <>
struct DType<bf16> {
    static constexpr const char* name = "bf16";
    static constexpr cudaDataType_t cuda = CUDA_R_16BF;
};

template <class T>
struct Operands {
    Tensor<T, 2, Cuda> a, b, c;  // [M, K], [K, N], [M, N]
};

// Inputs of unit scale, so that bf16 products stay far from overflow; drawn on the device.
template <class T>
Operands<T> make_operands(const Shape3& s) {
    weft::Generator g(7);
    Operands<T> o;
    o.a = Tensor<T, 2, Cuda>::randn({s.m, s.k}, g);
    o.b = Tensor<T, 2, Cuda>::randn({s.k, s.n}, g);
    o.c = Tensor<T, 2, Cuda>::zeros({s.m, s.n});
    return o;
}

template <class T>
void weft_matmul(benchmark::State& state, Shape3 s) {
    if (!weft_bench::have_gpu()) return state.SkipWithError("no CUDA device");
    const weft_bench::PeakMemory peak;
    auto o = make_operands<T>(s);
    weft_bench::cuda_timed(state, {.flop = 2.0 * double(s.m) * double(s.n) * double(s.k)},
                           [&] { o.c = weft::matmul(o.a, o.b); });
    state.counters["peak_mib"] = peak.mib();
}

template <class T>
void cublas_direct(benchmark::State& state, Shape3 s) {
    if (!weft_bench::have_gpu()) return state.SkipWithError("no CUDA device");
    const weft_bench::PeakMemory peak;
    auto o = make_operands<T>(s);
    const float alpha = 1, beta = 0;
    const cublasHandle_t handle = weft::cuda::cublas_handle();  // bound to weft's current stream
    weft_bench::cuda_timed(state, {.flop = 2.0 * double(s.m) * double(s.n) * double(s.k)}, [&] {
        // Row-major C [M, N] = A [M, K] · B [K, N] is column-major Cᵀ [N, M] = Bᵀ [N, K] · Aᵀ [K, M].
        WEFT_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, int(s.n), int(s.m), int(s.k), &alpha,
                                       o.b.data(), DType<T>::cuda, int(s.n), o.a.data(), DType<T>::cuda, int(s.k),
                                       &beta, o.c.data(), DType<T>::cuda, int(s.n), CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
    });
    state.counters["peak_mib"] = peak.mib();
}

std::string shape_name(const Shape3& s) {
    return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
}

template <class T>
void add(const Shape3& s) {
    const std::string base = std::string("gemm/") + DType<T>::name + "/" + shape_name(s);
    benchmark::RegisterBenchmark(base.c_str(), weft_matmul<T>, s)->UseManualTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((base + "/cublas").c_str(), cublas_direct<T>, s)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
    constexpr index_t tokens = 4 * 1601;  // ViT-B/16 at 640×640: 40·40 patches + the class token, batch 4
    for (const Shape3& s : {Shape3{tokens, 3072, 768}, Shape3{tokens, 768, 3072}, Shape3{tokens, 2304, 768},
                            Shape3{4096, 4096, 4096}, Shape3{8192, 8192, 8192}})
        add<bf16>(s);
    for (const Shape3& s : {Shape3{tokens, 3072, 768}, Shape3{4096, 4096, 4096}, Shape3{8192, 8192, 8192}})
        add<float>(s);
    return true;
}();

}  // namespace
