// weft/models/clip/residual_attention_block.hpp: CLIP's pre-norm transformer block.
//
//   clip::ResidualAttentionBlock<float> block(768, 12);        // width 768, 12 heads
//   x = block(x);                                              // [N, L, 768] -> [N, L, 768]
//   x = block(x, causal_mask);                                 // text: [L, L] additive
//
//   x = x + drop_path(attn(ln_1(x)))
//   x = x + drop_path(mlp(ln_2(x))),   mlp = c_proj(QuickGELU(c_fc(·))), hidden width 4·width
//
// Tensor names are OpenAI's (attn.in_proj_weight, attn.out_proj.*, ln_1.*, mlp.c_fc.*,
// mlp.c_proj.*, ln_2.*), so its checkpoints load by name. OpenAI's blocks take sequence-first
// [L, N, D] tensors; weft's are batch-first [N, L, D], which saves a transpose at each end of the
// encoder and gives the same numbers (attention is per sample either way).
//
// DropPath (stochastic depth) is off unless drop_path_rate > 0 and the block is training.
// drop_path_axis says which axis holds the "samples" whose branches are dropped together: 0 is
// timm's rule (whole images); DenseCLIP's ViT applies timm's rule to sequence-first tensors, so
// its mask is drawn per token position and shared over the batch (spec §9.3): axis 1 here.
#pragma once

#include "../../expr.hpp"
#include "../../nn/drop_path.hpp"
#include "../../nn/layer_norm.hpp"
#include "../../nn/linear.hpp"
#include "../../nn/module.hpp"
#include "../../nn/multihead_attention.hpp"

namespace weft::clip {

// c_fc -> QuickGELU -> c_proj, named as OpenAI's nn.Sequential(OrderedDict(...)).
template <Element T = float, Device D = Cpu>
class Mlp : public nn::Module<T, D> {
public:
    nn::Linear<T, D> c_fc, c_proj;

    Mlp(index_t width, index_t hidden, Generator& gen = default_generator())
        : c_fc(width, hidden, true, gen), c_proj(hidden, width, true, gen) {
        this->register_module("c_fc", c_fc);
        this->register_module("c_proj", c_proj);
    }

    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x) const { return c_proj(Tensor<T, 3, D>(quick_gelu(c_fc(x)))); }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& x) const { return forward(x); }
};

struct ResidualAttentionBlockOptions {
    double drop_path_rate = 0.0;
    int drop_path_axis = 0;  // 0: per image (timm); 1: per token position (DenseCLIP's ViT)
};

template <Element T = float, Device D = Cpu>
class ResidualAttentionBlock : public nn::Module<T, D> {
public:
    nn::MultiheadAttention<T, D> attn;
    nn::LayerNorm<T, D> ln_1;
    Mlp<T, D> mlp;
    nn::LayerNorm<T, D> ln_2;

    ResidualAttentionBlock(index_t width, index_t heads, const ResidualAttentionBlockOptions& options = {},
                           Generator& gen = default_generator())
        : attn(width, heads, {.batch_first = true}, gen),
          ln_1(width),
          mlp(width, 4 * width, gen),
          ln_2(width),
          drop_path_(options.drop_path_rate, options.drop_path_axis, gen, /*batch_axis=*/0) {  // x is [N, L, D]
        this->register_module("attn", attn);
        this->register_module("ln_1", ln_1);
        this->register_module("mlp", mlp);
        this->register_module("ln_2", ln_2);
        // No tensors: OpenAI's checkpoints have no entry for it, and neither does weft's.
        this->register_module("drop_path", drop_path_);
    }

    // x [N, L, D]; mask [L, L] additive (the text encoder's causal mask) or undefined.
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x, const Tensor<T, 2, D>& mask = {}) const {
        const auto h = ln_1(x);
        Tensor<T, 3, D> y = x + drop_path_(attn(h, h, h, {}, mask).output);
        return eval(y + drop_path_(mlp(ln_2(y))));
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& x, const Tensor<T, 2, D>& mask = {}) const {
        return forward(x, mask);
    }

    // The block's output for the first `rows` tokens of x [N, L, D] alone, attending over all L:
    // forward(x).narrow(1, 0, rows) at the cost of `rows` queries, output projections and MLP
    // rows (keys and values still come from every token). For a model that reads only the class
    // token after its last block. Per-position drop path (axis 1) would draw for these rows only,
    // so callers that need forward's random numbers use forward.
    Tensor<T, 3, D> forward_first(const Tensor<T, 3, D>& x, index_t rows) const {
        WEFT_CHECK(rows >= 1 && rows <= x.size(1), "ResidualAttentionBlock::forward_first: ", rows,
                   " rows of a sequence of shape ", x.shape());
        const auto h = ln_1(x);                                 // [N, L, D]
        const Tensor<T, 3, D> query = h.narrow(1, 0, rows);     // [N, rows, D]
        Tensor<T, 3, D> y = x.narrow(1, 0, rows) + drop_path_(attn(query, h, h).output);
        return eval(y + drop_path_(mlp(ln_2(y))));              // [N, rows, D]
    }

private:
    nn::DropPath<T, D> drop_path_;
};

}  // namespace weft::clip
