// weft/io.hpp: checkpoints and tensor files.
#pragma once

#include "io/safetensors.hpp"
#include "io/checkpoint.hpp"
#include "io/official_checkpoints.hpp"
#include "io/sha256.hpp"
#include "io/torch_archive.hpp"
