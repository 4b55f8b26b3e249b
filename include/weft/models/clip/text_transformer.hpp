// weft/models/clip/text_transformer.hpp: CLIP's text encoder.
//
//   clip::TextTransformer<float> text({.context_length = 77, .vocab_size = 49408, .width = 512,
//                                      .heads = 8, .layers = 12, .output_dim = 512});
//   auto t = text(tokens);            // Tensor<int64_t, 2> [N, 77] (Tokenizer::tokenize) -> [N, 512]
//
// Spec §1.5: token embedding + positional embedding -> transformer with a causal mask (each
// token sees itself and those before it) -> ln_final -> the row of the end-of-text token, found
// as the largest id in each row (<|endoftext|> = 49407 is the largest in the vocabulary) ->
// @ text_projection (right-multiplied, [width, output_dim]).
//
// In OpenAI's checkpoints these tensors sit at the root (transformer.*, token_embedding.weight,
// positional_embedding, ln_final.*, text_projection); in DenseCLIP's under text_encoder.*. The
// module names them relative to itself; Clip registers them at its root.
//
// Token rows may be shorter than context_length (the first positions are used): OpenAI requires
// exactly context_length, and a shorter row gives the same numbers as a padded one, since the
// causal mask keeps padding after the end token from reaching it.
#pragma once

#include <limits>
#include <vector>

#include "../../expr.hpp"
#include "../../nn/embedding.hpp"
#include "../../nn/init.hpp"
#include "../../nn/layer_norm.hpp"
#include "../../nn/module.hpp"
#include "../../ops/gather.hpp"
#include "../../ops/matmul.hpp"
#include "transformer.hpp"

namespace weft::clip {

struct TextTransformerConfig {
    index_t context_length = 77;
    index_t vocab_size = 49408;
    index_t width = 512;
    index_t heads = 8;           // OpenAI: width / 64
    index_t layers = 12;
    index_t output_dim = 512;    // the joint embedding width
};

// The [L, L] additive causal mask: 0 on and below the diagonal, -inf above.
template <Element T, Device D = Cpu>
Tensor<T, 2, D> causal_mask(index_t L) {
    auto m = Tensor<T, 2, Cpu>::zeros({L, L});
    for (index_t i = 0; i < L; ++i)
        for (index_t j = i + 1; j < L; ++j) m(i, j) = -std::numeric_limits<T>::infinity();
    return m.template to<D>();
}

// The position of each row's end-of-text token: its first largest id, as torch.argmax
// (<|endoftext|> = 49407 is the largest id CLIP's tokenizer gives). tokens [N, L] -> N positions.
template <Device D>
std::vector<index_t> end_token_positions(const Tensor<std::int64_t, 2, D>& tokens) {
    const auto host = tokens.template to<Cpu>().contiguous();
    std::vector<index_t> pos(std::size_t(host.size(0)), 0);
    for (index_t n = 0; n < host.size(0); ++n)
        for (index_t l = 1; l < host.size(1); ++l)
            if (host(n, l) > host(n, pos[std::size_t(n)])) pos[std::size_t(n)] = l;
    return pos;
}

template <Element T = float, Device D = Cpu>
class TextTransformer : public nn::Module<T, D> {
public:
    Transformer<T, D> transformer;
    nn::Embedding<T, D> token_embedding;
    Tensor<T, 2, D> positional_embedding;  // [context_length, width]
    nn::LayerNorm<T, D> ln_final;
    Tensor<T, 2, D> text_projection;       // [width, output_dim]

    explicit TextTransformer(const TextTransformerConfig& c, Generator& gen = default_generator())
        : transformer({.width = c.width, .layers = c.layers, .heads = c.heads}, gen),
          token_embedding(c.vocab_size, c.width, gen),
          ln_final(c.width),
          config_(c) {
        WEFT_CHECK(c.context_length > 0 && c.vocab_size > 0 && c.output_dim > 0,
                   "clip::TextTransformer: context_length ", c.context_length, ", vocab_size ", c.vocab_size,
                   " and output_dim ", c.output_dim, " must be positive");
        positional_embedding = Tensor<T, 2, D>::empty({c.context_length, c.width});
        text_projection = Tensor<T, 2, D>::empty({c.width, c.output_dim});
        initialize_parameters(gen);
        this->register_module("transformer", transformer);
        this->register_module("token_embedding", token_embedding);
        this->register_parameter("positional_embedding", positional_embedding);
        this->register_module("ln_final", ln_final);
        this->register_parameter("text_projection", text_projection);
    }

    // tokens [N, L] (L <= context_length) -> [N, output_dim]
    Tensor<T, 2, D> forward(const Tensor<std::int64_t, 2, D>& tokens) const {
        const auto x = features(tokens);                 // [N, L, width]
        const index_t N = x.size(0), L = x.size(1), W = x.size(2);
        const auto eot_pos = end_token_positions(tokens);
        auto rows = Tensor<std::int64_t, 1, Cpu>::empty({N});
        for (index_t n = 0; n < N; ++n) rows(n) = n * L + eot_pos[std::size_t(n)];
        const auto eot = index_select(x.reshape(N * L, W), 0, rows.template to<D>());  // [N, width]
        return matmul(eot, text_projection);                                            // [N, output_dim]
    }
    Tensor<T, 2, D> operator()(const Tensor<std::int64_t, 2, D>& tokens) const { return forward(tokens); }

    // Every position's output after ln_final: tokens [N, L] -> [N, L, width].
    Tensor<T, 3, D> features(const Tensor<std::int64_t, 2, D>& tokens) const {
        const index_t L = tokens.size(1);
        WEFT_CHECK(L >= 1 && L <= config_.context_length, "clip::TextTransformer: token rows of shape ",
                   tokens.shape(), " are longer than the context length ", config_.context_length);
        const Tensor<T, 3, D> x = token_embedding(tokens) + positional_embedding.narrow(0, 0, L).unsqueeze(0);
        return ln_final(transformer(x, causal_mask<T, D>(L)));
    }

    const TextTransformerConfig& config() const { return config_; }

private:
    // OpenAI's initialize_parameters for the text tower.
    void initialize_parameters(Generator& gen) {
        const double w = double(config_.width), layers = double(std::max<index_t>(config_.layers, 1));
        const double attn_std = 1.0 / std::sqrt(w), proj_std = attn_std / std::sqrt(2.0 * layers),
                     fc_std = 1.0 / std::sqrt(2.0 * w);
        nn::init::normal_(token_embedding.weight, 0.0, 0.02, gen);
        nn::init::normal_(positional_embedding, 0.0, 0.01, gen);
        for (auto& block : transformer.resblocks) {
            nn::init::normal_(block.attn.in_proj_weight, 0.0, attn_std, gen);
            nn::init::normal_(block.attn.out_proj.weight, 0.0, proj_std, gen);
            nn::init::normal_(block.mlp.c_fc.weight, 0.0, fc_std, gen);
            nn::init::normal_(block.mlp.c_proj.weight, 0.0, proj_std, gen);
        }
        nn::init::normal_(text_projection, 0.0, attn_std, gen);
    }

    TextTransformerConfig config_;
};

}  // namespace weft::clip
