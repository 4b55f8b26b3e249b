// weft/nn/transformer_encoder_layer.hpp: `TransformerEncoderLayer`, self-attention and MLP
// blocks with residual connections.
//
//   nn::TransformerEncoderLayer<float> layer(512, 8, {.dim_feedforward = 2048, .dropout = 0.1});
//   auto y = layer(x);                                   // x [L, N, 512] -> [L, N, 512]
//   auto z = layer(x, causal_mask, padding_mask);        // [L, L] additive, [N, L] bool
//
// Pre-norm by default (PyTorch's norm_first=True, as CLIP and ViT blocks are):
//   x = x + dropout1(self_attn(norm1(x)))
//   x = x + dropout2(linear2(dropout(activation(linear1(norm2(x))))))
// norm_first = false gives the post-norm layer of "Attention is all you need" (PyTorch's
// default): x = norm1(x + dropout1(self_attn(x))); x = norm2(x + dropout2(mlp(x))).
// The activation is GELU (exact) by default, QuickGELU for OpenAI's CLIP, or ReLU.
//
// Submodules carry PyTorch's names (self_attn, linear1, dropout, linear2, norm1, norm2,
// dropout1, dropout2), so nn.TransformerEncoderLayer checkpoints load by name. Inputs are
// sequence-first unless batch_first.
#pragma once

#include "../expr.hpp"
#include "dropout.hpp"
#include "layer_norm.hpp"
#include "linear.hpp"
#include "module.hpp"
#include "multihead_attention.hpp"

namespace weft::nn {

enum class Activation { relu, gelu, quick_gelu };

struct TransformerLayerOptions {
    index_t dim_feedforward = 2048;
    double dropout = 0.1;
    Activation activation = Activation::gelu;
    double layer_norm_eps = 1e-5;
    bool batch_first = false;
    bool norm_first = true;
};

namespace detail {
template <Element T, int R, Device D>
Tensor<T, R, D> activate(Activation a, const Tensor<T, R, D>& x) {
    switch (a) {
        case Activation::relu: return relu(x);
        case Activation::quick_gelu: return quick_gelu(x);
        case Activation::gelu: break;
    }
    return gelu(x);
}
}  // namespace detail

template <Element T = float, Device D = Cpu>
class TransformerEncoderLayer : public Module<T, D> {
public:
    MultiheadAttention<T, D> self_attn;
    Linear<T, D> linear1;
    Dropout<T, D> dropout;
    Linear<T, D> linear2;
    LayerNorm<T, D> norm1, norm2;
    Dropout<T, D> dropout1, dropout2;

    TransformerEncoderLayer(index_t d_model, index_t nhead, const TransformerLayerOptions& options = {},
                            Generator& gen = default_generator())
        : self_attn(d_model, nhead, {.dropout = options.dropout, .batch_first = options.batch_first}, gen),
          linear1(d_model, options.dim_feedforward, true, gen),
          dropout(options.dropout, gen),
          linear2(options.dim_feedforward, d_model, true, gen),
          norm1(d_model, options.layer_norm_eps),
          norm2(d_model, options.layer_norm_eps),
          dropout1(options.dropout, gen),
          dropout2(options.dropout, gen),
          options_(options) {
        this->register_module("self_attn", self_attn);
        this->register_module("linear1", linear1);
        this->register_module("dropout", dropout);
        this->register_module("linear2", linear2);
        this->register_module("norm1", norm1);
        this->register_module("norm2", norm2);
        this->register_module("dropout1", dropout1);
        this->register_module("dropout2", dropout2);
        // Sequence-first inputs keep the batch on axis 1 (what data-parallel replicas split).
        for (Dropout<T, D>* d : {&dropout, &dropout1, &dropout2})
            d->set_sample_axis(options.batch_first ? 0 : 1);
    }

    // src [L, N, E]; src_mask [L, L] additive; src_key_padding_mask [N, L], true = padding.
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& src, const Tensor<T, 2, D>& src_mask = {},
                            const Tensor<bool, 2, D>& src_key_padding_mask = {}) const {
        Tensor<T, 3, D> x = src;
        if (options_.norm_first) {
            x = eval(x + attention_block(norm1(x), src_mask, src_key_padding_mask));
            x = eval(x + mlp_block(norm2(x)));
        } else {
            x = norm1(eval(x + attention_block(x, src_mask, src_key_padding_mask)));
            x = norm2(eval(x + mlp_block(x)));
        }
        return x;
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& src, const Tensor<T, 2, D>& src_mask = {},
                               const Tensor<bool, 2, D>& src_key_padding_mask = {}) const {
        return forward(src, src_mask, src_key_padding_mask);
    }

    const TransformerLayerOptions& options() const { return options_; }

private:
    Tensor<T, 3, D> attention_block(const Tensor<T, 3, D>& x, const Tensor<T, 2, D>& mask,
                                    const Tensor<bool, 2, D>& padding) const {
        return dropout1(self_attn(x, x, x, padding, mask).output);
    }
    Tensor<T, 3, D> mlp_block(const Tensor<T, 3, D>& x) const {
        return dropout2(linear2(dropout(detail::activate(options_.activation, linear1(x)))));
    }

    TransformerLayerOptions options_;
};

}  // namespace weft::nn
