// weft/core.hpp: tensors, shapes, dtypes, storage and random numbers (no arithmetic).
#pragma once

#include "core/bf16.hpp"
#include "core/config.hpp"
#include "core/device.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/format.hpp"
#include "core/half.hpp"
#include "core/philox.hpp"
#include "core/shape.hpp"
#include "core/storage.hpp"
#include "core/tensor.hpp"
