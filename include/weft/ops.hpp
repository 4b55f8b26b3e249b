// weft/ops.hpp: the non-element-wise primitives, each differentiable (records itself on the
// tape) with a plain forward and backward function beside it.
#pragma once

#include "ops/matmul.hpp"
#include "ops/embedding.hpp"
#include "ops/gather.hpp"
#include "ops/join.hpp"
#include "ops/cross_entropy.hpp"
#include "ops/softmax.hpp"
#include "ops/layer_norm.hpp"
#include "ops/group_norm.hpp"
#include "ops/batch_norm.hpp"
#include "ops/normalize.hpp"
#include "ops/dropout.hpp"
#include "ops/conv2d.hpp"
#include "ops/conv_transpose2d.hpp"
#include "ops/pool.hpp"
#include "ops/interpolate.hpp"
#include "ops/attention.hpp"
