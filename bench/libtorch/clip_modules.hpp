// bench/libtorch/clip_modules.hpp: OpenAI CLIP's modules (clip/model.py) written with libtorch's
// C++ API, shared by the libtorch sides of the benchmarks (clip.cpp, clip_step.cpp,
// denseclip.cpp).
//
//   weft_bench::torch_clip::VisionTransformer vit(224, 16, 768, 12, 12, 512);
//   torch::Tensor e = vit.forward(images);                  // [B, 3, 224, 224] -> [B, 512]
//   weft_bench::torch_clip::Clip clip(vision, text, 512);   // both towers and logit_scale
//   torch::Tensor t = clip.encode_text(tokens);             // [N, L] int64 -> [N, 512]
//
// Parameters carry OpenAI's state names (visual.transformer.resblocks.0.attn.in_proj_weight,
// token_embedding.weight, ...), which are weft's clip::Clip names too, so weights can be copied
// between the two by name. Blocks run sequence-first ([L, N, D]) as CLIP's code does;
// torch::nn::MultiheadAttention is the C++ API's own layer: one [3E, E] projection, q scaled,
// bmm, softmax, bmm, out_proj (1.13 has no fused path for it in C++). It recognises
// self-attention by comparing query, key and value element by element (torch::equal), which
// costs about 0.5% of a ViT-B/16 forward.
//
// Initialisation: libtorch's defaults for conv, linear, layer norm and attention; the tensors
// CLIP draws itself as it does (class_embedding, positional_embedding and proj randn · width^-0.5;
// the token embedding N(0, 0.02), text positions N(0, 0.01), text_projection randn · width^-0.5,
// logit_scale ln(1/0.07)).
#pragma once

#include <torch/nn/init.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace weft_bench::torch_clip {

inline torch::nn::LayerNorm layer_norm(std::int64_t d) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}));
}

// CLIP's MLP: c_fc -> QuickGELU -> c_proj.
struct Mlp : torch::nn::Module {
    torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};

    explicit Mlp(std::int64_t d) {
        c_fc = register_module("c_fc", torch::nn::Linear(d, 4 * d));
        c_proj = register_module("c_proj", torch::nn::Linear(4 * d, d));
    }

    torch::Tensor forward(const torch::Tensor& x) {  // [L, N, D]
        torch::Tensor m = c_fc(x);                   // [L, N, 4D]
        m = m * torch::sigmoid(1.702 * m);           // QuickGELU
        return c_proj(m);                            // [L, N, D]
    }
};

// CLIP's ResidualAttentionBlock: pre-norm attention and MLP, sequence-first [L, N, D], with an
// optional additive attention mask [L, L] (the text encoder's causal one).
struct ResidualAttentionBlock : torch::nn::Module {
    torch::nn::MultiheadAttention attn{nullptr};
    torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
    std::shared_ptr<Mlp> mlp;

    ResidualAttentionBlock(std::int64_t d, std::int64_t heads) {
        attn = register_module("attn", torch::nn::MultiheadAttention(d, heads));
        ln_1 = register_module("ln_1", layer_norm(d));
        mlp = register_module("mlp", std::make_shared<Mlp>(d));
        ln_2 = register_module("ln_2", layer_norm(d));
    }

    torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask = {}) {  // [L, N, D]
        const torch::Tensor h = ln_1(x);
        x = x + std::get<0>(attn->forward(h, h, h, /*key_padding_mask=*/{}, /*need_weights=*/false, mask));
        return x + mlp->forward(ln_2(x));  // [L, N, D]
    }
};

// CLIP's Transformer: `layers` blocks under resblocks.0, resblocks.1, ...
struct Transformer : torch::nn::Module {
    torch::nn::ModuleList resblocks{nullptr};
    std::vector<std::shared_ptr<ResidualAttentionBlock>> blocks;  // the same, typed

    Transformer(std::int64_t width, std::int64_t layers, std::int64_t heads) {
        resblocks = register_module("resblocks", torch::nn::ModuleList());
        for (std::int64_t i = 0; i < layers; ++i) {
            blocks.push_back(std::make_shared<ResidualAttentionBlock>(width, heads));
            resblocks->push_back(blocks.back());
        }
    }

    torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask = {}) {  // [L, N, D]
        for (auto& block : blocks) x = block->forward(x, mask);
        return x;
    }
};

// CLIP's VisionTransformer.
struct VisionTransformer : torch::nn::Module {
    std::int64_t width;
    torch::nn::Conv2d conv1{nullptr};
    torch::Tensor class_embedding, positional_embedding, proj;
    torch::nn::LayerNorm ln_pre{nullptr}, ln_post{nullptr};
    std::shared_ptr<Transformer> transformer;

    VisionTransformer(std::int64_t resolution, std::int64_t patch, std::int64_t width_, std::int64_t layers,
                      std::int64_t heads, std::int64_t output_dim)
        : width(width_) {
        const double scale = 1.0 / std::sqrt(double(width));
        const std::int64_t grid = resolution / patch;
        conv1 = register_module(
            "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, width, patch).stride(patch).bias(false)));
        class_embedding = register_parameter("class_embedding", torch::randn({width}) * scale);
        positional_embedding =
            register_parameter("positional_embedding", torch::randn({grid * grid + 1, width}) * scale);
        ln_pre = register_module("ln_pre", layer_norm(width));
        transformer = register_module("transformer", std::make_shared<Transformer>(width, layers, heads));
        ln_post = register_module("ln_post", layer_norm(width));
        proj = register_parameter("proj", torch::randn({width, output_dim}) * scale);
    }

    torch::Tensor forward(torch::Tensor x) {  // [B, 3, H, W]
        const std::int64_t B = x.size(0);
        x = conv1(x);                                                   // [B, width, g, g]
        x = x.reshape({B, width, -1}).permute({0, 2, 1});               // [B, g·g, width]
        x = torch::cat({class_embedding.expand({B, 1, width}), x}, 1);  // [B, 1 + g·g, width]
        x = x + positional_embedding;
        x = ln_pre(x);
        x = x.permute({1, 0, 2});                                       // [L, B, width]
        x = transformer->forward(x);
        x = x.permute({1, 0, 2});                                       // [B, L, width]
        x = ln_post(x.select(1, 0));                                    // [B, width]
        return x.matmul(proj);                                          // [B, output_dim]
    }
};

// The [L, L] additive causal mask: 0 on and below the diagonal, -inf above.
inline torch::Tensor causal_mask(std::int64_t L) {
    return torch::full({L, L}, -std::numeric_limits<float>::infinity()).triu(1);
}

struct VisionConfig {
    std::int64_t resolution, patch, width, layers, heads;
};
struct TextConfig {
    std::int64_t context_length, vocab, width, heads, layers;
};

// CLIP with a ViT image encoder; the text encoder's tensors sit at the root, as in OpenAI's
// checkpoints (and weft's clip::Clip).
struct Clip : torch::nn::Module {
    std::shared_ptr<VisionTransformer> visual;
    std::shared_ptr<Transformer> transformer;
    torch::nn::Embedding token_embedding{nullptr};
    torch::nn::LayerNorm ln_final{nullptr};
    torch::Tensor positional_embedding, text_projection, logit_scale, mask;

    Clip(const VisionConfig& v, const TextConfig& t, std::int64_t embed_dim) {
        positional_embedding = register_parameter("positional_embedding", torch::randn({t.context_length, t.width}) * 0.01);
        text_projection =
            register_parameter("text_projection", torch::randn({t.width, embed_dim}) / std::sqrt(double(t.width)));
        logit_scale = register_parameter("logit_scale", torch::full({}, std::log(1.0 / 0.07)));
        visual = register_module(
            "visual", std::make_shared<VisionTransformer>(v.resolution, v.patch, v.width, v.layers, v.heads, embed_dim));
        transformer = register_module("transformer", std::make_shared<Transformer>(t.width, t.layers, t.heads));
        token_embedding = register_module("token_embedding", torch::nn::Embedding(t.vocab, t.width));
        torch::nn::init::normal_(token_embedding->weight, 0.0, 0.02);
        ln_final = register_module("ln_final", layer_norm(t.width));
        mask = causal_mask(t.context_length);
    }

    torch::Tensor encode_image(const torch::Tensor& images) { return visual->forward(images); }  // -> [B, E]

    // tokens [N, L] int64 -> [N, E]: the features of each row's end-of-text token (its largest id).
    torch::Tensor encode_text(const torch::Tensor& tokens) {
        const std::int64_t N = tokens.size(0), L = tokens.size(1);
        torch::Tensor x = token_embedding(tokens) + positional_embedding.narrow(0, 0, L);  // [N, L, W]
        x = transformer->forward(x.permute({1, 0, 2}), mask.narrow(0, 0, L).narrow(1, 0, L));  // [L, N, W]
        x = ln_final(x.permute({1, 0, 2}));                                                // [N, L, W]
        const torch::Tensor eot = tokens.argmax(-1);                                      // [N]
        x = x.reshape({N * L, -1}).index_select(0, torch::arange(N) * L + eot);           // [N, W]
        return x.matmul(text_projection);                                                 // [N, E]
    }
};

}  // namespace weft_bench::torch_clip
