// weft/nn.hpp: modules, layers and their parameters.
#pragma once

#include "nn/tensor_ref.hpp"
#include "nn/state_dict.hpp"
#include "nn/module.hpp"
#include "nn/state_file.hpp"
#include "nn/init.hpp"
#include "nn/activation.hpp"
#include "nn/linear.hpp"
#include "nn/sequential.hpp"
#include "nn/module_list.hpp"
