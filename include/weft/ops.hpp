// weft/ops.hpp: the non-element-wise primitives, each differentiable (records itself on the
// tape) with a plain forward and backward function beside it.
#pragma once

#include "ops/matmul.hpp"
