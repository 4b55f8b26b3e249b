// weft/models/clip/transformer.hpp: CLIP's `Transformer`, a stack of ResidualAttentionBlocks.
//
//   clip::Transformer<float> t({.width = 512, .layers = 12, .heads = 8});
//   x = t(x, causal_mask);                     // [N, L, 512] -> [N, L, 512]
//   for (auto& block : t.resblocks) ...        // block by block, for intermediate outputs
//
// Blocks are named resblocks.0 .. resblocks.{layers-1}, as in OpenAI's checkpoints. With
// drop_path_rate > 0, block i drops its branches with probability drop_path_rate·i/(layers-1)
// (torch.linspace(0, rate, layers), as DenseCLIP's ViT).
#pragma once

#include <vector>

#include "residual_attention_block.hpp"
#include "../../nn/module_list.hpp"

namespace weft::clip {

struct TransformerConfig {
    index_t width = 512;
    index_t layers = 12;
    index_t heads = 8;
    double drop_path_rate = 0.0;
    int drop_path_axis = 0;  // see ResidualAttentionBlockOptions
};

template <Element T = float, Device D = Cpu>
class Transformer : public nn::Module<T, D> {
public:
    nn::ModuleList<ResidualAttentionBlock<T, D>> resblocks;

    explicit Transformer(const TransformerConfig& config, Generator& gen = default_generator()) : config_(config) {
        WEFT_CHECK(config.width > 0 && config.layers >= 0 && config.heads > 0 && config.width % config.heads == 0,
                   "clip::Transformer: width ", config.width, " must be a positive multiple of heads ", config.heads,
                   " (layers ", config.layers, ")");
        for (index_t i = 0; i < config.layers; ++i) {
            const double rate =
                config.layers > 1 ? config.drop_path_rate * double(i) / double(config.layers - 1) : 0.0;
            resblocks.emplace_back(config.width, config.heads,
                                   ResidualAttentionBlockOptions{rate, config.drop_path_axis}, gen);
        }
        this->register_module("resblocks", resblocks);
    }

    // x [N, L, width]; mask [L, L] additive or undefined.
    Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x, const Tensor<T, 2, D>& mask = {}) const {
        Tensor<T, 3, D> y = x;
        for (const auto& block : resblocks) y = block(y, mask);
        return y;
    }
    Tensor<T, 3, D> operator()(const Tensor<T, 3, D>& x, const Tensor<T, 2, D>& mask = {}) const {
        return forward(x, mask);
    }

    const TransformerConfig& config() const { return config_; }

private:
    TransformerConfig config_;
};

}  // namespace weft::clip
