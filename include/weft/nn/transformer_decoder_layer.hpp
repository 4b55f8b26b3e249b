// weft/nn/transformer_decoder_layer.hpp: `TransformerDecoderLayer`, self-attention,
// cross-attention to a memory, and an MLP, with residual connections.
//
//   nn::TransformerDecoderLayer<float> layer(256, 8, {.dim_feedforward = 1024, .dropout = 0.1});
//   auto y = layer(tgt, memory);              // tgt [T, N, 256], memory [S, N, 256] -> [T, N, 256]
//
// Pre-norm by default (PyTorch's norm_first=True):
//   x = x + dropout1(self_attn(norm1(x)))
//   x = x + dropout2(multihead_attn(norm2(x), memory, memory))
//   x = x + dropout3(linear2(dropout(activation(linear1(norm3(x))))))
// norm_first = false is PyTorch's post-norm order. The memory is not normalized here (the
// encoder's final norm does that). Submodule names are nn.TransformerDecoderLayer's (self_attn,
// multihead_attn, linear1, dropout, linear2, norm1, norm2, norm3, dropout1..3); options as
// TransformerEncoderLayer's.
#pragma once

#include "transformer_encoder_layer.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class TransformerDecoderLayer : public Module<T, D> {
public:
    MultiheadAttention<T, D> self_attn;
    MultiheadAttention<T, D> multihead_attn;
    Linear<T, D> linear1;
    Dropout<T, D> dropout;
    Linear<T, D> linear2;
    LayerNorm<T, D> norm1, norm2, norm3;
    Dropout<T, D> dropout1, dropout2, dropout3;

    TransformerDecoderLayer(index_t d_model, index_t nhead, const TransformerLayerOptions& options = {},
                            Generator& gen = default_generator())
        : self_attn(d_model, nhead, {.dropout = options.dropout, .batch_first = options.batch_first}, gen),
          multihead_attn(d_model, nhead, {.dropout = options.dropout, .batch_first = options.batch_first}, gen),
          linear1(d_model, options.dim_feedforward, true, gen),
          dropout(options.dropout, gen),
          linear2(options.dim_feedforward, d_model, true, gen),
          norm1(d_model, options.layer_norm_eps),
          norm2(d_model, options.layer_norm_eps),
          norm3(d_model, options.layer_norm_eps),
          dropout1(options.dropout, gen),
          dropout2(options.dropout, gen),
          dropout3(options.dropout, gen),
          options_(options) {
        this->register_module("self_attn", self_attn);
        this->register_module("multihead_attn", multihead_attn);
        this->register_module("linear1", linear1);
        this->register_module("dropout", dropout);
        this->register_module("linear2", linear2);
        this->register_module("norm1", norm1);
        this->register_module("norm2", norm2);
        this->register_module("norm3", norm3);
        this->register_module("dropout1", dropout1);
        this->register_module("dropout2", dropout2);
        this->register_module("dropout3", dropout3);
        // Sequence-first inputs keep the batch on axis 1 (what data-parallel replicas split).
        for (Dropout<T, D>* d : {&dropout, &dropout1, &dropout2, &dropout3})
            d->set_sample_axis(options.batch_first ? 0 : 1);
    }

    // tgt [T, N, E], memory [S, N, E]; masks additive [T, T] / [T, S]; padding masks [N, T] / [N, S].
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& tgt, const Tensor<T, 3, D>& memory,
                            const Tensor<T, 2, D>& tgt_mask = {}, const Tensor<T, 2, D>& memory_mask = {},
                            const Tensor<bool, 2, D>& tgt_key_padding_mask = {},
                            const Tensor<bool, 2, D>& memory_key_padding_mask = {}) const {
        Tensor<T, 3, D> x = tgt;
        if (options_.norm_first) {
            x = eval(x + self_block(norm1(x), tgt_mask, tgt_key_padding_mask));
            x = eval(x + cross_block(norm2(x), memory, memory_mask, memory_key_padding_mask));
            x = eval(x + mlp_block(norm3(x)));
        } else {
            x = norm1(eval(x + self_block(x, tgt_mask, tgt_key_padding_mask)));
            x = norm2(eval(x + cross_block(x, memory, memory_mask, memory_key_padding_mask)));
            x = norm3(eval(x + mlp_block(x)));
        }
        return x;
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& tgt, const Tensor<T, 3, D>& memory,
                               const Tensor<T, 2, D>& tgt_mask = {}, const Tensor<T, 2, D>& memory_mask = {},
                               const Tensor<bool, 2, D>& tgt_key_padding_mask = {},
                               const Tensor<bool, 2, D>& memory_key_padding_mask = {}) const {
        return forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask);
    }

    const TransformerLayerOptions& options() const { return options_; }

private:
    Tensor<T, 3, D> self_block(const Tensor<T, 3, D>& x, const Tensor<T, 2, D>& mask,
                               const Tensor<bool, 2, D>& padding) const {
        return dropout1(self_attn(x, x, x, padding, mask).output);
    }
    Tensor<T, 3, D> cross_block(const Tensor<T, 3, D>& x, const Tensor<T, 3, D>& memory,
                                const Tensor<T, 2, D>& mask, const Tensor<bool, 2, D>& padding) const {
        return dropout2(multihead_attn(x, memory, memory, padding, mask).output);
    }
    Tensor<T, 3, D> mlp_block(const Tensor<T, 3, D>& x) const {
        return dropout3(linear2(dropout(detail::activate(options_.activation, linear1(x)))));
    }

    TransformerLayerOptions options_;
};

}  // namespace weft::nn
