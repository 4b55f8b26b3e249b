// weft/optim/cuda/exact_math.cuh: the CPU's float and double operations, one at a time, on the GPU.
//
//   p = exact::add(p, exact::mul(-lr, d));     // p + (-lr) * d, rounded after the product and the sum
//
// nvcc contracts `a * b + c` into one fused multiply-add (rounded once) unless told otherwise;
// g++ with -std=c++20 does not (docs/design-notes.md). The optimizers' CUDA kernels promise the
// CPU loop's rounding of every stored value (tests compare the two over many steps), so they
// spell each operation with the round-to-nearest intrinsics, which the compiler never fuses.
// Division and square root are IEEE-exact here as on the CPU (__fdiv_rn, __fsqrt_rn).
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/optim/cuda/exact_math.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

namespace weft::cuda::exact {

__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrt(double a) { return __dsqrt_rn(a); }

}  // namespace weft::cuda::exact
