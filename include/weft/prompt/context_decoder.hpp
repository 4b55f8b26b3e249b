// weft/prompt/context_decoder.hpp: DenseCLIP's `ContextDecoder`, post-model prompting (spec §2.4):
// the class text embeddings attend to the image's visual context and come out as a correction.
//
//   prompt::ContextDecoder<float> decoder({.visual_dim = 1024});    // width 256, 4 heads, 3 layers
//   auto diff = decoder(text, visual_context);   // text [B, K, C], context [B, 1+HW, C] -> [B, K, C]
//   text = prompt::update_text(text, gamma, diff);                   // t + γ·Δt (score_map.hpp)
//
//   memory = memory_proj(visual_context)      LayerNorm(C) -> Linear(C, d) -> LayerNorm(d)
//   x      = text_proj(text)                  LayerNorm(C) -> Linear(C, d)
//   x      = decoder.i(x, memory)             for each of `layers` pre-norm layers:
//              x = x + self_attn(norm1(x))                       (q = k = v)
//              x = x + cross_attn(norm2(x), memory, memory)      (the memory is not re-normalised)
//              x = x + dropout(mlp(norm3(x)))                    Linear(d, 4d) -> GELU(erf) -> Dropout -> Linear(4d, d)
//   out    = out_proj(x)                      LayerNorm(d) -> Linear(d, out_dim)
//
// The attention (ContextAttention) has q/k/v projections without bias, an output projection
// `proj` with bias, scale head_dim^-0.5, no dropout on the weights, and Dropout(p) after `proj`
// (timm's proj_drop). Dropout is active only while the module is training.
//
// State-dict names are DenseCLIP's (segmentation/denseclip/models.py), so its checkpoints load
// by name under `context_decoder.`: memory_proj.{0,1,2}.*, text_proj.{0,1}.*,
// decoder.{i}.self_attn.{q_proj,k_proj,v_proj}.weight, decoder.{i}.self_attn.proj.{weight,bias},
// the same under cross_attn, decoder.{i}.norm{1,2,3}.*, decoder.{i}.mlp.{0,3}.*,
// out_proj.{0,1}.*. Init as DenseCLIP's `_init_weights`: every Linear weight truncated normal
// std 0.02 with timm's absolute bounds ±2 (so practically untruncated), biases 0, LayerNorm
// weight 1 and bias 0.
//
// `out_dim` (0 = visual_dim) is weft's addition: DenseCLIP always maps back to visual_dim; the
// pre-model prompt (pre_model_prompt.hpp) maps to the text encoder's width instead.
//
// Batch-first throughout; every step is a recorded weft op (linear, layer_norm,
// scaled_dot_product_attention, expressions), so the module is differentiable end to end.
#pragma once

#include <cmath>

#include "../expr.hpp"
#include "../nn/activation.hpp"
#include "../nn/dropout.hpp"
#include "../nn/init.hpp"
#include "../nn/layer_norm.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "../nn/module_list.hpp"
#include "../nn/sequential.hpp"
#include "../ops/attention.hpp"
#include "../ops/matmul.hpp"

namespace weft::prompt {

struct ContextDecoderConfig {
    index_t transformer_width = 256;
    index_t transformer_heads = 4;
    index_t transformer_layers = 3;  // every released DenseCLIP config (the _base_ default is 6)
    index_t visual_dim = 1024;       // C: 1024 for RN50, 512 for RN101 and ViT-B/16
    double dropout = 0.1;
    index_t out_dim = 0;             // 0: visual_dim (DenseCLIP)
};

// Multi-head attention as DenseCLIP's `Attention` (timm style, separate q/k/v projections).
template <Element T = float, Device D = Cpu>
class ContextAttention : public nn::Module<T, D> {
public:
    nn::Linear<T, D> q_proj, k_proj, v_proj, proj;

    ContextAttention(index_t dim, index_t heads, double proj_dropout, Generator& gen = default_generator())
        : q_proj(dim, dim, false, gen),
          k_proj(dim, dim, false, gen),
          v_proj(dim, dim, false, gen),
          proj(dim, dim, true, gen),
          attn_drop_(0.0, gen),
          proj_drop_(proj_dropout, gen),
          heads_(heads) {
        WEFT_CHECK(heads > 0 && dim % heads == 0, "prompt::ContextAttention: width ", dim,
                   " must be a positive multiple of heads ", heads);
        this->register_module("q_proj", q_proj);
        this->register_module("k_proj", k_proj);
        this->register_module("v_proj", v_proj);
        // Tensor-free, as in DenseCLIP (attn_drop has p = 0 there); registered so train()/eval() reach them.
        this->register_module("attn_drop", attn_drop_);
        this->register_module("proj", proj);
        this->register_module("proj_drop", proj_drop_);
    }

    // q [B, N, d], k = v [B, M, d] -> [B, N, d]
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& q, const Tensor<T, 3, D>& k, const Tensor<T, 3, D>& v) const {
        WEFT_CHECK(k.shape() == v.shape() && q.size(0) == k.size(0) && q.size(2) == k.size(2),
                   "prompt::ContextAttention: queries ", q.shape(), ", keys ", k.shape(), " and values ", v.shape(),
                   " must be [B, N, d], [B, M, d], [B, M, d]");
        const index_t B = q.size(0), N = q.size(1), M = k.size(1), C = q.size(2), E = C / heads_;
        const auto qh = q_proj(q).reshape(B, N, heads_, E).permute(0, 2, 1, 3);  // [B, H, N, E]
        const auto kh = k_proj(k).reshape(B, M, heads_, E).permute(0, 2, 1, 3);  // [B, H, M, E]
        const auto vh = v_proj(v).reshape(B, M, heads_, E).permute(0, 2, 1, 3);  // [B, H, M, E]
        AttentionOptions<T, D> opts;
        opts.scale = 1.0 / std::sqrt(double(E));
        const auto o = scaled_dot_product_attention(qh, kh, vh, opts);           // [B, H, N, E]
        return proj_drop_(proj(o.permute(0, 2, 1, 3).reshape(B, N, C)));       // [B, N, d]
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& q, const Tensor<T, 3, D>& k, const Tensor<T, 3, D>& v) const {
        return forward(q, k, v);
    }

    index_t heads() const { return heads_; }

private:
    nn::Dropout<T, D> attn_drop_;
    nn::Dropout<T, D> proj_drop_;
    index_t heads_;
};

// DenseCLIP's `TransformerDecoderLayer` (not PyTorch's: different names, no bias on q/k/v).
template <Element T = float, Device D = Cpu>
class ContextDecoderLayer : public nn::Module<T, D> {
public:
    ContextAttention<T, D> self_attn, cross_attn;
    nn::LayerNorm<T, D> norm1, norm2, norm3;
    nn::Sequential<T, 3, D> mlp;  // 0 Linear(d, 4d), 1 GELU, 2 Dropout, 3 Linear(4d, d)

    ContextDecoderLayer(index_t d_model, index_t heads, double dropout, Generator& gen = default_generator())
        : self_attn(d_model, heads, dropout, gen),
          cross_attn(d_model, heads, dropout, gen),
          norm1(d_model),
          norm2(d_model),
          norm3(d_model),
          dropout_(dropout, gen) {
        mlp.template emplace_back<nn::Linear<T, D>>(d_model, 4 * d_model, true, gen);
        mlp.template emplace_back<nn::GELU<T, D>>();
        mlp.template emplace_back<nn::Dropout<T, D>>(dropout, gen);
        mlp.template emplace_back<nn::Linear<T, D>>(4 * d_model, d_model, true, gen);
        this->register_module("self_attn", self_attn);
        this->register_module("cross_attn", cross_attn);
        this->register_module("norm1", norm1);
        this->register_module("norm2", norm2);
        this->register_module("norm3", norm3);
        this->register_module("dropout", dropout_);
        this->register_module("mlp", mlp);
    }

    // x [B, K, d], memory [B, M, d] -> [B, K, d]
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x, const Tensor<T, 3, D>& memory) const {
        const auto h = norm1(x);
        Tensor<T, 3, D> y = x + self_attn(h, h, h);
        y = eval(y + cross_attn(norm2(y), memory, memory));
        return eval(y + dropout_(mlp(norm3(y))));
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& x, const Tensor<T, 3, D>& memory) const {
        return forward(x, memory);
    }

private:
    nn::Dropout<T, D> dropout_;
};

template <Element T = float, Device D = Cpu>
class ContextDecoder : public nn::Module<T, D> {
public:
    nn::Sequential<T, 3, D> memory_proj;  // LayerNorm(C), Linear(C, d), LayerNorm(d)
    nn::Sequential<T, 3, D> text_proj;    // LayerNorm(C), Linear(C, d)
    nn::ModuleList<ContextDecoderLayer<T, D>> decoder;
    nn::Sequential<T, 3, D> out_proj;     // LayerNorm(d), Linear(d, out_dim)

    explicit ContextDecoder(const ContextDecoderConfig& config = {}, Generator& gen = default_generator())
        : config_(config) {
        const index_t C = config.visual_dim, d = config.transformer_width;
        const index_t out = config.out_dim > 0 ? config.out_dim : C;
        WEFT_CHECK(C > 0 && d > 0 && config.transformer_layers >= 0 && config.transformer_heads > 0 &&
                       d % config.transformer_heads == 0 && config.out_dim >= 0,
                   "prompt::ContextDecoder: visual_dim ", C, ", transformer_width ", d, " (a multiple of heads ",
                   config.transformer_heads, "), layers ", config.transformer_layers, " and out_dim ",
                   config.out_dim, " must be positive (layers and out_dim may be 0)");
        memory_proj.template emplace_back<nn::LayerNorm<T, D>>(C);
        memory_proj.template emplace_back<nn::Linear<T, D>>(C, d, true, gen);
        memory_proj.template emplace_back<nn::LayerNorm<T, D>>(d);
        text_proj.template emplace_back<nn::LayerNorm<T, D>>(C);
        text_proj.template emplace_back<nn::Linear<T, D>>(C, d, true, gen);
        for (index_t i = 0; i < config.transformer_layers; ++i)
            decoder.emplace_back(d, config.transformer_heads, config.dropout, gen);
        out_proj.template emplace_back<nn::LayerNorm<T, D>>(d);
        out_proj.template emplace_back<nn::Linear<T, D>>(d, out, true, gen);
        this->register_module("memory_proj", memory_proj);
        this->register_module("text_proj", text_proj);
        this->register_module("decoder", decoder);
        this->register_module("out_proj", out_proj);
        init_weights(gen);
    }

    // text [B, K, C], visual_context [B, 1+HW, C] -> [B, K, out_dim]
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& text, const Tensor<T, 3, D>& visual_context) const {
        WEFT_CHECK(text.size(2) == config_.visual_dim && visual_context.size(2) == config_.visual_dim &&
                       text.size(0) == visual_context.size(0),
                   "prompt::ContextDecoder: text of shape ", text.shape(), " and visual context of shape ",
                   visual_context.shape(), " must be [B, K, ", config_.visual_dim, "] and [B, 1+HW, ",
                   config_.visual_dim, "] with the same B");
        const auto memory = memory_proj(visual_context);  // [B, 1+HW, d]
        auto x = text_proj(text);                         // [B, K, d]
        for (const auto& layer : decoder) x = layer(x, memory);
        return out_proj(x);                               // [B, K, out_dim]
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& text, const Tensor<T, 3, D>& visual_context) const {
        return forward(text, visual_context);
    }

    // DenseCLIP's `_init_weights`, applied to every Linear and LayerNorm below this module.
    void init_weights(Generator& gen = default_generator()) {
        for (auto& p : this->named_parameters()) {
            const auto& n = p.name;
            const bool weight = n.size() >= 6 && n.compare(n.size() - 6, 6, "weight") == 0;
            p.tensor.visit([&](auto& t) {
                if (!weight) nn::init::zeros_(t);            // every bias
                else if constexpr (std::remove_cvref_t<decltype(t)>::rank == 2)
                    nn::init::trunc_normal_(t, 0.0, 0.02, -2.0, 2.0, gen);  // Linear weights
                else nn::init::constant_(t, 1.0);            // LayerNorm weights
            });
        }
    }

    const ContextDecoderConfig& config() const { return config_; }

private:
    ContextDecoderConfig config_;
};

}  // namespace weft::prompt
