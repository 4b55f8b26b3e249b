// weft/models.hpp: the models built from weft's layers. So far: CLIP's tokenizer.
#pragma once

#include "models/clip/preprocess.hpp"
#include "models/clip/tokenizer.hpp"
