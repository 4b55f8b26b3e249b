// weft/prompt/score_map.hpp: DenseCLIP's text update and pixel-text score map (spec §2.5).
//
//   auto text  = prompt::update_text(text, gamma, decoder(text, visual_context));   // t + γ·Δt
//   auto score = prompt::score_map(visual_embeddings, text);                         // [B, K, h, w]
//   auto ctx   = prompt::visual_context(global_feat, visual_embeddings);             // [B, 1+hw, C]
//
// score_map is einsum('bchw,bkc->bkhw', normalize(visual, dim 1), normalize(text, dim -1)), each
// normalised as F.normalize (x / max(‖x‖, 1e-12)): cosine similarities in [-1, 1], no temperature
// (τ enters only the pixel-text matching loss, loss/pixel_text_matching.hpp). It is one batched
// GEMM [B, K, C] x [B, C, hw].
#pragma once

#include "../expr.hpp"
#include "../ops/join.hpp"
#include "../ops/matmul.hpp"
#include "../ops/normalize.hpp"

namespace weft::prompt {

// text [B, K, C] + gamma [C] * diff [B, K, C] -> [B, K, C]
template <Element T, Device D>
Tensor<T, 3, D> update_text(const Tensor<T, 3, D>& text, const Tensor<T, 1, D>& gamma, const Tensor<T, 3, D>& diff) {
    WEFT_CHECK(text.shape() == diff.shape() && gamma.size(0) == text.size(2),
               "prompt::update_text: text ", text.shape(), ", gamma ", gamma.shape(), " and diff ", diff.shape(),
               " must be [B, K, C], [C], [B, K, C]");
    return eval(text + gamma * diff);
}

// visual [B, C, h, w], text [B, K, C] -> [B, K, h, w] cosine similarities
template <Element T, Device D>
Tensor<T, 4, D> score_map(const Tensor<T, 4, D>& visual, const Tensor<T, 3, D>& text) {
    const index_t B = visual.size(0), C = visual.size(1), h = visual.size(2), w = visual.size(3), K = text.size(1);
    WEFT_CHECK(text.size(0) == B && text.size(2) == C, "prompt::score_map: visual embeddings ", visual.shape(),
               " and text embeddings ", text.shape(), " must be [B, C, h, w] and [B, K, C]");
    const auto v = normalize(visual, 1).reshape(B, C, h * w);  // [B, C, hw]
    const auto t = normalize(text, -1);                        // [B, K, C]
    return matmul(t, v).reshape(B, K, h, w);                   // [B, K, h, w]
}

// DenseCLIP's visual context: the global embedding followed by the hw local ones.
// global [B, C], visual [B, C, h, w] -> [B, 1+hw, C]
template <Element T, Device D>
Tensor<T, 3, D> visual_context(const Tensor<T, 2, D>& global, const Tensor<T, 4, D>& visual) {
    const index_t B = visual.size(0), C = visual.size(1), hw = visual.size(2) * visual.size(3);
    WEFT_CHECK(global.size(0) == B && global.size(1) == C, "prompt::visual_context: global embedding ",
               global.shape(), " and visual embeddings ", visual.shape(), " must be [B, C] and [B, C, h, w]");
    return cat({global.reshape(B, C, 1), visual.reshape(B, C, hw)}, 2).permute(0, 2, 1).contiguous();
}

}  // namespace weft::prompt
