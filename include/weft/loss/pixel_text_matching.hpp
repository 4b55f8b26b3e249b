// weft/loss/pixel_text_matching.hpp: DenseCLIP's pixel-text matching loss, the "identity head"
// (spec §2.8): the score map as logits over classes, sharpened by a temperature.
//
//   auto l = loss::pixel_text_matching_loss(score_map, labels);   // [B, K, h, w], [B, H, W] int64
//
// DenseCLIP passes score_map / τ (τ = 0.07) to an IdentityHead, which returns it unchanged;
// mmseg's BaseDecodeHead.losses then upsamples it bilinearly (align_corners false) to the label
// size and applies CrossEntropyLoss with ignore_index 255, loss_weight 0.4 and mmseg 0.19's mean
// over all pixels (decode_loss.hpp). The score map holds cosine similarities (prompt/score_map.hpp).
#pragma once

#include "decode_loss.hpp"

namespace weft::loss {

struct PixelTextMatchingOptions {
    double tau = 0.07;
    double loss_weight = 0.4;
    std::int64_t ignore_index = 255;
    bool align_corners = false;
    Reduction reduction = Reduction::mean_all;
};

// score_map [B, K, h, w], labels [B, H, W] -> loss_weight · CE(resize(score_map / tau), labels)
template <Element T, Device D>
Tensor<T, 0, D> pixel_text_matching_loss(const Tensor<T, 4, D>& score_map, const Tensor<std::int64_t, 3, D>& labels,
                                         const PixelTextMatchingOptions& options = {}) {
    WEFT_CHECK(options.tau > 0, "loss::pixel_text_matching_loss: tau ", options.tau, " must be positive");
    const Tensor<T, 4, D> logits = score_map / options.tau;
    return decode_loss(logits, labels,
                       {.loss_weight = options.loss_weight,
                        .ignore_index = options.ignore_index,
                        .align_corners = options.align_corners,
                        .reduction = options.reduction});
}

}  // namespace weft::loss
