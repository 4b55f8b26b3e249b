// weft/loss.hpp: segmentation losses as DenseCLIP trains with them (mmseg 0.19 semantics): the
// decode head's cross-entropy and the pixel-text matching loss. See docs/prompt.md.
#pragma once

#include "loss/clip_contrastive.hpp"
#include "loss/decode_loss.hpp"
#include "loss/pixel_text_matching.hpp"
