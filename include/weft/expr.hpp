// weft/expr.hpp: lazy element-wise expressions and reductions, with the CPU executor that runs
// them (and the CUDA one when compiled by nvcc with WEFT_CUDA).
#pragma once

#include "core.hpp"
#include "exec/cpu/executor.hpp"
#include "expr/assign.hpp"
#include "expr/broadcast.hpp"
#include "expr/derivative.hpp"
#include "expr/expression.hpp"
#include "expr/functors.hpp"
#include "expr/nodes.hpp"
#include "expr/operators.hpp"
#include "expr/reduce.hpp"
#if defined(__CUDACC__) && defined(WEFT_CUDA)
#include "cuda.cuh"
#endif
