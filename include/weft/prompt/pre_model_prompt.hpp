// weft/prompt/pre_model_prompt.hpp: pre-model prompting (DenseCLIP paper, spec §2.11): learned
// queries read the image's visual context before the text encoder, and what they read becomes
// that image's context tokens.
//
//   prompt::PreModelPrompt<float> pre({.n_ctx = 8, .visual_dim = 1024, .text_width = 512});
//   auto contexts = pre(visual_context);            // [B, 1+HW, 1024] -> [B, 8, 512]
//   auto text = text_encoder(class_tokens, contexts);   // per image: [B, K, embed_dim]
//
//   v_pre = TransDecoder(q, [z̄, z])    q = `queries` [n_ctx, C], shared by all images
//
// The released DenseCLIP code has no pre-model prompting (the authors dropped it: post-model
// was faster and better), and the paper gives neither the decoder's size nor its init. weft's
// choices, all configurable:
//   - the decoder is prompt::ContextDecoder (names under `decoder.`), the same block as the
//     post-model prompt: memory_proj, text_proj (here it projects the queries), `layers`
//     pre-norm layers of self-attention, cross-attention to the context and MLP, and out_proj;
//     defaults: width 256, 4 heads, 3 layers, dropout 0.1 — the released post-model sizes (the
//     paper's notes say 6 layers; 3 is what the code trains);
//   - out_proj maps straight to the text encoder's width (ContextDecoder's out_dim), so the
//     result replaces the contexts [1, n_ctx, width] of post-model prompting with
//     [B, n_ctx, width], one set per image; no extra projection;
//   - `queries` [n_ctx, visual_dim] start as a truncated normal with std 1 (±2), like the
//     learnable contexts they stand in for; the decoder is initialised as DenseCLIP's
//     ContextDecoder (Linear weights trunc-normal std 0.02, biases 0, LayerNorm 1/0).
// The text encoder then runs B·K sequences instead of K: that is the cost the authors cite.
#pragma once

#include "context_decoder.hpp"

namespace weft::prompt {

struct PreModelPromptConfig {
    index_t n_ctx = 8;
    index_t visual_dim = 1024;  // C of the visual context
    index_t text_width = 512;   // the text transformer's width
    index_t transformer_width = 256;
    index_t transformer_heads = 4;
    index_t transformer_layers = 3;
    double dropout = 0.1;
};

template <Element T = float, Device D = Cpu>
class PreModelPrompt : public nn::Module<T, D> {
public:
    Tensor<T, 2, D> queries;  // [n_ctx, visual_dim]
    ContextDecoder<T, D> decoder;

    explicit PreModelPrompt(const PreModelPromptConfig& c = {}, Generator& gen = default_generator())
        : decoder({.transformer_width = c.transformer_width,
                   .transformer_heads = c.transformer_heads,
                   .transformer_layers = c.transformer_layers,
                   .visual_dim = c.visual_dim,
                   .dropout = c.dropout,
                   .out_dim = c.text_width},
                  gen),
          config_(c) {
        WEFT_CHECK(c.n_ctx > 0 && c.text_width > 0, "prompt::PreModelPrompt: n_ctx ", c.n_ctx, " and text_width ",
                   c.text_width, " must be positive");
        queries = Tensor<T, 2, D>::empty({c.n_ctx, c.visual_dim});
        nn::init::trunc_normal_(queries, 0.0, 1.0, -2.0, 2.0, gen);
        this->register_parameter("queries", queries);
        this->register_module("decoder", decoder);
    }

    // visual_context [B, 1+HW, visual_dim] -> contexts [B, n_ctx, text_width]
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& visual_context) const {
        const index_t B = visual_context.size(0);
        const auto q = queries.unsqueeze(0).expand(B, config_.n_ctx, config_.visual_dim);  // [B, n_ctx, C]
        return decoder(q, visual_context);
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& visual_context) const { return forward(visual_context); }

    const PreModelPromptConfig& config() const { return config_; }

private:
    PreModelPromptConfig config_;
};

}  // namespace weft::prompt
