// weft/core/device.hpp: the device tags a tensor's type carries.
//
//   Tensor<float, 2, Cpu>   lives in host memory, runs through weft's CPU executor
//   Tensor<float, 2, Cuda>  lives in GPU memory, needs a translation unit compiled by nvcc
//
// Devices are types, so mixing them is a compile error instead of a run-time surprise.
#pragma once

#include <concepts>
#include <string_view>

namespace weft {

struct Cpu {
    static constexpr std::string_view name = "cpu";
};

struct Cuda {
    static constexpr std::string_view name = "cuda";
};

template <class D>
concept Device = std::same_as<D, Cpu> || std::same_as<D, Cuda>;

// True when this translation unit can run CUDA code (compiled by nvcc with WEFT_CUDA on).
#if defined(__CUDACC__) && defined(WEFT_CUDA)
inline constexpr bool cuda_enabled = true;
#else
inline constexpr bool cuda_enabled = false;
#endif

}  // namespace weft
