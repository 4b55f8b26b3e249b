// weft/prompt.hpp: DenseCLIP's context-aware prompting: learnable context tokens, pre-model
// prompting (queries read the image before the text encoder), post-model prompting
// (ContextDecoder, t + γ·Δt) and the pixel-text score map. See docs/prompt.md.
#pragma once

#include "prompt/learnable_context.hpp"
#include "prompt/context_decoder.hpp"
#include "prompt/pre_model_prompt.hpp"
#include "prompt/score_map.hpp"
