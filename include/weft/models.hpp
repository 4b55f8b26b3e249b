// weft/models.hpp: the models built from weft's layers: OpenAI's CLIP (encoders, loading,
// tokenizer, image preprocessing).
#pragma once

#include "models/clip/load.hpp"
#include "models/clip/preprocess.hpp"
#include "models/clip/text_context_encoder.hpp"
#include "models/clip/tokenizer.hpp"
