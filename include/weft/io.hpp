// weft/io.hpp: checkpoints and tensor files.
#pragma once

#include "io/safetensors.hpp"
