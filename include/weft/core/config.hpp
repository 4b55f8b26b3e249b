// weft/core/config.hpp: compiler and platform switches shared by every header.
//
// `WEFT_HD` marks code that must compile for the host and, under nvcc, for the device too:
// the same functor then serves the CPU loop and the CUDA kernel.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define WEFT_HD __host__ __device__
#define WEFT_DEVICE_COMPILE 1
#else
#define WEFT_HD
#define WEFT_DEVICE_COMPILE 0
#endif

#if defined(__CUDA_ARCH__)
#define WEFT_ON_DEVICE 1
#else
#define WEFT_ON_DEVICE 0
#endif

// WEFT_WITH_CUDA: this translation unit runs CUDA code (nvcc with WEFT_CUDA defined). Each op
// header includes its CUDA half (ops/cuda/<op>.cuh) and dispatches to it only then; in a host
// build a Cuda tensor cannot exist (Backend<Cuda> is undefined), so nothing is lost.
#if defined(__CUDACC__) && defined(WEFT_CUDA)
#define WEFT_WITH_CUDA 1
#else
#define WEFT_WITH_CUDA 0
#endif

#define WEFT_FORCE_INLINE inline __attribute__((always_inline))

namespace weft {

// Extents, strides and offsets are signed 64-bit: a 4-GiB tensor must index, and negative
// axes and steps read naturally.
using index_t = std::int64_t;

template <class...>
inline constexpr bool always_false = false;

}  // namespace weft
