// weft/nn.hpp: modules, layers and their parameters.
#pragma once

#include "nn/tensor_ref.hpp"
