// weft/models.hpp: the models built from weft's layers: OpenAI's CLIP (encoders, loading,
// tokenizer, image preprocessing) and the segmentation parts of DenseCLIP (ViT adapters, FPN neck,
// Semantic FPN head).
#pragma once

#include "models/clip/load.hpp"
#include "models/clip/maskclip.hpp"
#include "models/clip/preprocess.hpp"
#include "models/clip/text_context_encoder.hpp"
#include "models/clip/tokenizer.hpp"
#include "models/segmentation/conv_module.hpp"
#include "models/segmentation/fpn.hpp"
#include "models/segmentation/fpn_head.hpp"
#include "models/segmentation/vit_adapters.hpp"
