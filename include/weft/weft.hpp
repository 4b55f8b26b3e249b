// weft/weft.hpp: everything weft offers. Finer headers (weft/core.hpp, weft/expr.hpp, and each
// file under weft/<layer>/) compile on their own for faster builds.
//
// Compiled by nvcc with WEFT_CUDA defined (the weft::weft target does both when configured with
// -DWEFT_CUDA=ON), this also brings in the CUDA backend, so Tensor<T, R, Cuda> works.
#pragma once

#include "core.hpp"
#include "expr.hpp"
#include "autograd.hpp"
#include "data.hpp"
#include "dist.hpp"
#include "io.hpp"
#include "loss.hpp"
#include "metrics.hpp"
#include "models.hpp"
#include "nn.hpp"
#include "ops.hpp"
#include "optim.hpp"
#include "prompt.hpp"
