// weft/loss/clip_contrastive.hpp: CLIP's contrastive pre-training loss (symmetric InfoNCE) and
// the clamp of its temperature after each optimizer step.
//
//   auto l = loss::clip_contrastive(image_features, text_features, logit_scale);  // [N, E], [N, E], []
//   l.backward();
//   opt.step();
//   loss::clamp_logit_scale_(logit_scale);          // into [0, ln 100], as CLIP and OpenCLIP do
//
// Image i and text i form the positive pair; every other text of the batch is a negative for
// image i and vice versa. With u, v the L2-normalised rows and s = exp(logit_scale):
//   logits = s · u · vᵀ                                       // [N, N]
//   loss   = (CE(logits, arange(N)) + CE(logitsᵀ, arange(N))) / 2   (means over the N rows)
// as OpenAI's CLIP paper (Fig. 3) and open_clip's ClipLoss. It is composed of recorded ops
// (normalize, matmul, exp, cross_entropy), so its backward reaches the features and logit_scale.
//
// Data-parallel training gathers the features first and passes the global [N_global, E] tensors
// here; no separate API is needed:
//   auto img = dist::all_gather(local_img, comm), txt = dist::all_gather(local_txt, comm);
//   auto l = loss::clip_contrastive(img, txt, logit_scale);   // every rank: the global batch's loss
// dist/all_gather.hpp explains why the ranks' averaged gradients then equal one process's on the
// global batch (the negatives include every rank's samples, as CLIP's 32k batch needs).
#pragma once

#include <cmath>
#include <cstdint>

#include "../autograd/grad_mode.hpp"
#include "../expr.hpp"
#include "../ops/cross_entropy.hpp"
#include "../ops/matmul.hpp"
#include "../ops/normalize.hpp"

namespace weft::loss {

// image_features [N, E], text_features [N, E] (row i of each a matching pair), logit_scale []
// (the log of the logits' scale) -> the mean of the image->text and text->image cross-entropies.
template <Element T, Device D>
Tensor<T, 0, D> clip_contrastive(const Tensor<T, 2, D>& image_features, const Tensor<T, 2, D>& text_features,
                                 const Tensor<T, 0, D>& logit_scale) {
    WEFT_CHECK(image_features.shape() == text_features.shape(), "loss::clip_contrastive: image features of shape ",
               image_features.shape(), " and text features of shape ", text_features.shape(),
               " must both be [N, E] with row i a matching pair");
    WEFT_CHECK(image_features.size(0) > 0, "loss::clip_contrastive: the batch is empty (shape ",
               image_features.shape(), ")");
    WEFT_CHECK(logit_scale.defined(), "loss::clip_contrastive: logit_scale is undefined");
    const index_t n = image_features.size(0);
    const auto img = normalize(image_features, 1);  // [N, E], rows of norm 1
    const auto txt = normalize(text_features, 1);   // [N, E]
    const Tensor<T, 2, D> logits = matmul(img, txt.t()) * exp(logit_scale.reshape(1, 1));  // [N, N] per image
    const auto labels = Tensor<std::int64_t, 1, D>::arange(n);                              // [N]: the diagonal
    const auto per_image = cross_entropy(logits, labels);                                   // []
    const auto per_text = cross_entropy(logits.t(), labels);                                // [] over columns
    return eval((per_image + per_text) * 0.5);
}

// Clamps the parameter in place to [0, ln(max_scale)]: the logits' scale stays within [1,
// max_scale] (CLIP: 100), which keeps training stable. Run it after the optimizer step; it is not
// recorded on the tape.
template <Element T, Device D>
void clamp_logit_scale_(Tensor<T, 0, D>& logit_scale, double max_scale = 100) {
    WEFT_CHECK(logit_scale.defined(), "loss::clamp_logit_scale_: logit_scale is undefined");
    WEFT_CHECK(max_scale >= 1, "loss::clamp_logit_scale_: max_scale ", max_scale,
               " must be at least 1 (the clamp's lower end is ln 1 = 0)");
    NoGrad no_grad;
    Tensor<T, 0, D> value = logit_scale.detach();  // the parameter's storage, written in place
    value = minimum(maximum(value, T(0)), T(std::log(max_scale)));
}

}  // namespace weft::loss
