// weft/loss/decode_loss.hpp: the decode head's segmentation loss as mmseg 0.19 computes it
// (spec §2.8): logits upsampled to the label size, then cross-entropy.
//
//   auto l = loss::decode_loss(logits, labels);     // logits [B, K, h, w], labels [B, H, W] int64
//
// mmseg's BaseDecodeHead.losses: resize(logits, label size, bilinear, align_corners false) ->
// CrossEntropyLoss(ignore_index 255) whose mean divides by ALL pixels, ignored ones included
// (mmseg < 0.23: F.cross_entropy(reduction='none').mean(); weft's Reduction::mean_all) -> times
// loss_weight (1.0 for the FPN head). The result is a rank-0 tensor; its backward reaches the
// logits through the interpolation.
#pragma once

#include <cstdint>

#include "../expr.hpp"
#include "../ops/cross_entropy.hpp"
#include "../ops/interpolate.hpp"

namespace weft::loss {

struct DecodeLossOptions {
    double loss_weight = 1.0;
    std::int64_t ignore_index = 255;
    bool align_corners = false;
    Reduction reduction = Reduction::mean_all;  // mmseg 0.19; Reduction::mean is mmseg >= 0.23's avg_non_ignore
};

// logits [B, K, h, w], labels [B, H, W] -> loss_weight · CE(resize(logits, (H, W)), labels)
template <Element T, Device D>
Tensor<T, 0, D> decode_loss(const Tensor<T, 4, D>& logits, const Tensor<std::int64_t, 3, D>& labels,
                            const DecodeLossOptions& options = {}) {
    WEFT_CHECK(logits.size(0) == labels.size(0), "loss::decode_loss: logits ", logits.shape(), " and labels ",
               labels.shape(), " must be [B, K, h, w] and [B, H, W] with the same B");
    const auto up = interpolate(logits, std::array<index_t, 2>{labels.size(1), labels.size(2)},
                                Interpolation::bilinear, options.align_corners);  // [B, K, H, W]
    CrossEntropyOptions<T, D> ce;
    ce.ignore_index = options.ignore_index;
    ce.reduction = options.reduction;
    const auto l = cross_entropy(up, labels, ce);
    if (options.loss_weight == 1.0) return l;
    return eval(l * options.loss_weight);
}

}  // namespace weft::loss
