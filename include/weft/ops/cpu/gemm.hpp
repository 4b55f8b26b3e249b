// weft/ops/cpu/gemm.hpp: `Gemm<Cpu>`, the CPU's matrix product engine.
//
// OpenBLAS when weft was configured with it (CMake defines WEFT_USE_OPENBLAS when it finds
// OpenBLAS; WEFT_BLAS=Eigen opts out), else Eigen's GEMM on weft's thread pool. Both take float
// and double; the 16-bit floats are not supported on the CPU yet.
#pragma once

#include <concepts>
#include <string_view>

#include "../gemm.hpp"

#if defined(WEFT_USE_OPENBLAS) && WEFT_USE_OPENBLAS
#include "gemm_openblas.hpp"
#else
#include "gemm_eigen.hpp"
#endif

namespace weft {

template <>
struct Gemm<Cpu> {
#if defined(WEFT_USE_OPENBLAS) && WEFT_USE_OPENBLAS
    using Engine = cpu::OpenBlasGemm;
#else
    using Engine = cpu::EigenGemm;
#endif
    static constexpr std::string_view engine_name = Engine::name;

    template <class T>
    static void run(const GemmProblem<T>& p) {
        static_assert(std::same_as<T, float> || std::same_as<T, double>,
                      "weft: matmul, bmm and linear on the CPU take float or double tensors; bf16 and half "
                      "are not supported on the CPU yet (compute in float: weft::cast<float>(x))");
        Engine::run(p);
    }
};

}  // namespace weft
