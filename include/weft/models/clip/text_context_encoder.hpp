// weft/models/clip/text_context_encoder.hpp: DenseCLIP's `CLIPTextContextEncoder` (spec §2.3),
// CLIP's text transformer with learnable context tokens spliced in after the start token.
//
//   clip::TextContextEncoder<float> enc({.context_length = 13, .embed_dim = 1024});
//   clip::load_text_context_encoder(enc, Checkpoint::open("RN50.pt"));   // CLIP's text tower
//   auto text = enc(class_tokens, contexts);   // [K, 5] ids, [B_ctx, 8, 512] -> [B_ctx, K, 1024]
//
// For class k and context set b the sequence is
//   [E(SOT), ctx_b1 .. ctx_bN2, E(tok_k1), .., E(EOT), E(pad)..]     length 1 + N2 + (N1 - 1)
// (+ positional_embedding, the causal transformer, ln_final), read at the end token — the first
// largest id of the class row (torch.argmax) shifted by N2 — and right-multiplied by
// text_projection. DenseCLIP passes one context set ([1, 8, 512], learnable_context.hpp) and
// gets [1, K, C]; pre-model prompting passes one per image ([B, n_ctx, width]) and gets
// [B, K, C]: the same call, B·K sequences.
//
// N1 + N2 may be shorter than context_length (the first positional rows are used): as in
// TextTransformer, the causal mask makes that give the numbers of a padded sequence. DenseCLIP
// requires it to be exactly context_length (13 = 5 + 8).
//
// Names are relative to the encoder (DenseCLIP keeps them under `text_encoder.`):
// transformer.resblocks.{i}.*, token_embedding.weight, positional_embedding [context_length,
// width], ln_final.*, text_projection [width, embed_dim].
//
// load_text_context_encoder reads CLIP's text tower from any checkpoint (OpenAI's .pt, weft's
// safetensors, or a DenseCLIP file with prefix "text_encoder."): every key must be there with
// its shape, except positional_embedding, of which the first context_length rows are taken
// (CLIP's 77 -> 13, as DenseCLIP's init_weights). Keys outside the text tower are ignored.
// Everything is checked before anything is written.
#pragma once

#include <string>
#include <vector>

#include "../../io/checkpoint.hpp"
#include "../../nn/load_checkpoint.hpp"
#include "load.hpp"  // infer_config's shape helpers (detail::need_shape, count_blocks, heads_for)
#include "../../ops/join.hpp"
#include "text_transformer.hpp"

namespace weft::clip {

struct TextContextEncoderConfig {
    index_t context_length = 13;  // 5 class tokens + 8 contexts
    index_t vocab_size = 49408;
    index_t width = 512;
    index_t heads = 8;
    index_t layers = 12;
    index_t embed_dim = 1024;     // 1024 RN50, 512 RN101 and ViT-B/16
};

template <Element T = float, Device D = Cpu>
class TextContextEncoder : public nn::Module<T, D> {
public:
    Transformer<T, D> transformer;
    nn::Embedding<T, D> token_embedding;
    Tensor<T, 2, D> positional_embedding;  // [context_length, width]
    nn::LayerNorm<T, D> ln_final;
    Tensor<T, 2, D> text_projection;       // [width, embed_dim]

    explicit TextContextEncoder(const TextContextEncoderConfig& c = {}, Generator& gen = default_generator())
        : transformer({.width = c.width, .layers = c.layers, .heads = c.heads}, gen),
          token_embedding(c.vocab_size, c.width, gen),
          ln_final(c.width),
          config_(c) {
        WEFT_CHECK(c.context_length > 0 && c.vocab_size > 0 && c.embed_dim > 0,
                   "clip::TextContextEncoder: context_length ", c.context_length, ", vocab_size ", c.vocab_size,
                   " and embed_dim ", c.embed_dim, " must be positive");
        // DenseCLIP leaves these two as torch.empty until its checkpoint loads; weft draws them as
        // CLIP's initialize_parameters does, so an unloaded encoder still computes finite numbers.
        positional_embedding = Tensor<T, 2, D>::empty({c.context_length, c.width});
        text_projection = Tensor<T, 2, D>::empty({c.width, c.embed_dim});
        nn::init::normal_(positional_embedding, 0.0, 0.01, gen);
        nn::init::normal_(text_projection, 0.0, 1.0 / std::sqrt(double(c.width)), gen);
        this->register_module("transformer", transformer);
        this->register_module("token_embedding", token_embedding);
        this->register_parameter("positional_embedding", positional_embedding);
        this->register_module("ln_final", ln_final);
        this->register_parameter("text_projection", text_projection);
    }

    // text [K, N1] token ids, context [B, N2, width] -> [B, K, embed_dim]
    Tensor<T, 3, D> forward(const Tensor<std::int64_t, 2, D>& text, const Tensor<T, 3, D>& context) const {
        const index_t K = text.size(0), N1 = text.size(1), B = context.size(0), N2 = context.size(1);
        const index_t W = config_.width, L = N1 + N2;
        WEFT_CHECK(N1 >= 2 && context.size(2) == W && L <= config_.context_length,
                   "clip::TextContextEncoder: class tokens ", text.shape(), " and contexts ", context.shape(),
                   " must be [K, N1 >= 2] and [B, N2, ", W, "] with N1 + N2 <= context_length ",
                   config_.context_length);
        const auto x_text = token_embedding(text);  // [K, N1, W]
        const auto x = cat({x_text.narrow(1, 0, 1).unsqueeze(0).expand(B, K, 1, W),
                            context.unsqueeze(1).expand(B, K, N2, W),
                            x_text.narrow(1, 1, N1 - 1).unsqueeze(0).expand(B, K, N1 - 1, W)},
                           2);                                                  // [B, K, L, W]
        const Tensor<T, 3, D> seq = x.reshape(B * K, L, W) + positional_embedding.narrow(0, 0, L).unsqueeze(0);
        const auto y = ln_final(transformer(seq, causal_mask<T, D>(L)));        // [B*K, L, W]

        // The end token of each class row: the first largest id (torch.argmax), after the contexts.
        const auto eot_pos = end_token_positions(text);
        auto rows = Tensor<std::int64_t, 1, Cpu>::empty({B * K});
        for (index_t k = 0; k < K; ++k)
            for (index_t b = 0; b < B; ++b) rows(b * K + k) = (b * K + k) * L + eot_pos[std::size_t(k)] + N2;
        const auto eot = index_select(y.reshape(B * K * L, W), 0, rows.template to<D>());  // [B*K, W]
        return matmul(eot, text_projection).reshape(B, K, config_.embed_dim);              // [B, K, embed_dim]
    }
    Tensor<T, 3, D> operator()(const Tensor<std::int64_t, 2, D>& text, const Tensor<T, 3, D>& context) const {
        return forward(text, context);
    }

    const TextContextEncoderConfig& config() const { return config_; }

private:
    TextContextEncoderConfig config_;
};

// Hyper-parameters of CLIP's text tower in `ck` (keys after `prefix`), with DenseCLIP's
// context_length: width from ln_final, heads = width / 64 (OpenAI's rule), layers counted.
inline TextContextEncoderConfig text_context_encoder_config(const Checkpoint& ck, index_t context_length = 13,
                                                            const std::string& prefix = "") {
    TextContextEncoderConfig c;
    c.context_length = context_length;
    c.embed_dim = detail::need_shape(ck, prefix + "text_projection", 2)[1];
    c.vocab_size = detail::need_shape(ck, prefix + "token_embedding.weight", 2)[0];
    c.width = detail::need_shape(ck, prefix + "ln_final.weight", 1)[0];
    c.heads = detail::heads_for(ck, c.width, 64, "the text transformer's");
    c.layers = detail::count_blocks(ck, prefix + "transformer.resblocks.");
    return c;
}

// CLIP's text weights into `enc` (see the header comment). prefix: "" for OpenAI's files,
// "text_encoder." for DenseCLIP's.
template <Element T, Device D>
void load_text_context_encoder(TextContextEncoder<T, D>& enc, const Checkpoint& ck, const std::string& prefix = "") {
    const std::string pos_key = prefix + "positional_embedding";
    std::vector<std::string> problems;
    for (const auto& e : enc.named_state()) {
        const std::string key = prefix + e.name;
        if (!ck.contains(key)) {
            problems.push_back("missing '" + key + "' " + e.tensor.shape_string());
            continue;
        }
        const auto stored = ck.shape(key), own = e.tensor.shape();
        const bool fits = e.name == "positional_embedding"
                              ? stored.size() == 2 && stored[0] >= own[0] && stored[1] == own[1]
                              : stored == own;
        if (!fits) {
            std::string s = "[";
            for (std::size_t i = 0; i < stored.size(); ++i) s += (i ? ", " : "") + std::to_string(stored[i]);
            problems.push_back("'" + key + "' is " + s + "], the encoder's " + e.tensor.shape_string() +
                               (e.name == "positional_embedding" ? " (at least that many rows)" : ""));
        }
    }
    if (!problems.empty()) {
        std::string msg;
        for (const auto& p : problems) msg += "\n  " + p;
        WEFT_FAIL("clip::load_text_context_encoder: ", ck.where(), " does not hold a text tower that fits (context_length ",
                  enc.config().context_length, ", width ", enc.config().width, ", layers ", enc.config().layers,
                  "); nothing was loaded:", msg);
    }
    const auto text_key = [](std::string_view n) {
        return n.starts_with("transformer.") || n.starts_with("token_embedding.") || n.starts_with("ln_final.") ||
               n == "positional_embedding" || n == "text_projection";
    };
    nn::load_state(enc, ck,
                   {.strict = false, .prefix = prefix, .ignore = [&](std::string_view n) { return !text_key(n); }});
    NoGrad no_grad;
    const index_t L = enc.config().context_length;
    enc.positional_embedding.copy_from(ck.template get<T, 2>(pos_key).narrow(0, 0, L).template to<D>());
}

}  // namespace weft::clip
