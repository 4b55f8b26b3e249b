// weft/expr/executor.hpp: the hook through which expressions run on a device.
//
// expr/ describes computations; exec/ runs them. `Executor<D>` is specialised by
// exec/cpu/executor.hpp and exec/cuda/executor.cuh with two entry points:
//   assign(dst, evaluator)            dst[idx] = evaluator(idx) for every index of dst
//   reduce(out, evaluator, plan, op)  reductions, see reduce.hpp
#pragma once

#include "../core/config.hpp"
#include "../core/device.hpp"

namespace weft {

template <class D>
struct Executor {
    static_assert(!std::same_as<D, Cpu>,
                  "weft: no CPU executor is visible here; include <weft/weft.hpp> (or "
                  "<weft/exec/cpu/executor.hpp>) to run expressions");
    static_assert(!std::same_as<D, Cuda>,
                  "weft: expressions on Cuda tensors need CUDA: configure with -DWEFT_CUDA=ON and compile "
                  "this translation unit with nvcc (a .cu file) including <weft/weft.hpp>");
};

}  // namespace weft
