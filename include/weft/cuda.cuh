// weft/cuda.cuh: weft's CUDA backend: Backend<Cuda> (memory, copies, factories), the caching
// allocator, the current stream, and Executor<Cuda> (fused element-wise kernels, reductions).
//
// Included by <weft/expr.hpp> (and so <weft/weft.hpp>) when the translation unit is compiled by
// nvcc with WEFT_CUDA defined: the weft::weft CMake target defines it, and adds the nvcc flags
// --extended-lambda --expt-relaxed-constexpr, when configured with -DWEFT_CUDA=ON.
#pragma once

#if !defined(__CUDACC__)
#error "weft: <weft/cuda.cuh> is CUDA code and needs nvcc. Compile this translation unit as a .cu file with nvcc (configure weft with -DWEFT_CUDA=ON), or include <weft/weft.hpp>, which leaves CUDA out in host-only builds."
#endif
#if !defined(WEFT_CUDA)
#error "weft: <weft/cuda.cuh> needs WEFT_CUDA defined (pass -DWEFT_CUDA=1 to nvcc, or link the weft::weft target of a build configured with -DWEFT_CUDA=ON)."
#endif

#include "core.hpp"
#include "core/cuda/check.cuh"
#include "exec/cuda/stream.cuh"
#include "core/cuda/caching_allocator.cuh"
#include "core/cuda/backend.cuh"
#include "exec/cuda/executor.cuh"
#include "expr.hpp"
