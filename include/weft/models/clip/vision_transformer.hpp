// weft/models/clip/vision_transformer.hpp: CLIP's ViT image encoder (ViT-B/16 and any other).
//
//   clip::VisionTransformer<float> vit({.input_resolution = 224, .patch_size = 16, .width = 768,
//                                       .layers = 12, .heads = 12, .output_dim = 512});
//   auto v = vit(images);                                 // [N, 3, 224, 224] -> [N, 512]
//   auto d = vit.forward_dense(images, {.out_indices = {3, 5, 7, 11}});   // any size
//
// CLIP's forward (spec §1.4): patches (a bias-free conv with kernel and stride = patch size) ->
// [class token; patch tokens] + positional embedding -> ln_pre -> transformer -> ln_post of the
// class token -> @ proj (right-multiplied, [width, output_dim]).
//
// forward_dense is DenseCLIP's CLIPVisionTransformer (spec §2.2): the positional grid is resized
// bilinearly to the input's patch grid, so any size works; the residual stream after the blocks
// listed in out_indices comes back as feature maps [N, width, h, w] (no norm); and every token,
// not just the class token, goes through ln_post and proj, giving the global embedding and an
// embedding per patch. DenseCLIP adds class_embedding to the class token twice (its positional
// row is built as pos[0] + class_embedding, then the class embedding is prepended as usual);
// DenseOptions::class_embedding_twice reproduces that, and is on by default because DenseCLIP's
// released weights were trained with it.
#pragma once

#include <vector>

#include "../../expr.hpp"
#include "../../nn/conv2d.hpp"
#include "../../nn/init.hpp"
#include "../../nn/layer_norm.hpp"
#include "../../nn/module.hpp"
#include "../../ops/join.hpp"
#include "../../ops/matmul.hpp"
#include "positional_embedding.hpp"
#include "transformer.hpp"

namespace weft::clip {

struct VisionTransformerConfig {
    index_t input_resolution = 224;  // fixes the positional grid: (input_resolution / patch_size)²
    index_t patch_size = 16;
    index_t width = 768;
    index_t layers = 12;
    index_t heads = 12;              // OpenAI: width / 64
    index_t output_dim = 512;        // the joint embedding width
    double drop_path_rate = 0.0;     // stochastic depth, 0 -> rate over the blocks (DenseCLIP: 0.1)
    int drop_path_axis = 0;          // 1: per token position, as DenseCLIP (see ResidualAttentionBlock)
};

struct DenseOptions {
    std::vector<index_t> out_indices{3, 5, 7, 11};  // blocks whose output becomes a feature map
    bool class_embedding_twice = true;              // DenseCLIP's class-token quirk (spec §9.2)
    bool embeddings = true;                         // compute global and per-patch embeddings
};

template <Element T = float, Device D = Cpu>
struct ViTDenseOutput {
    std::vector<Tensor<T, 4, D>> features;  // one [N, width, h, w] per out_indices entry
    Tensor<T, 2, D> global;                 // [N, output_dim] (with DenseOptions::embeddings)
    Tensor<T, 4, D> local;                  // [N, output_dim, h, w] (with DenseOptions::embeddings)
};

template <Element T = float, Device D = Cpu>
class VisionTransformer : public nn::Module<T, D> {
public:
    nn::Conv2d<T, D> conv1;
    Tensor<T, 1, D> class_embedding;       // [width]
    Tensor<T, 2, D> positional_embedding;  // [1 + g·g, width]
    nn::LayerNorm<T, D> ln_pre;
    Transformer<T, D> transformer;
    nn::LayerNorm<T, D> ln_post;
    Tensor<T, 2, D> proj;                  // [width, output_dim]

    explicit VisionTransformer(const VisionTransformerConfig& c, Generator& gen = default_generator())
        : conv1(3, checked(c).width, c.patch_size, {.stride = {c.patch_size, c.patch_size}}, false, gen),
          ln_pre(c.width),
          transformer({.width = c.width, .layers = c.layers, .heads = c.heads, .drop_path_rate = c.drop_path_rate,
                       .drop_path_axis = c.drop_path_axis},
                      gen),
          ln_post(c.width),
          config_(c) {
        const double scale = 1.0 / std::sqrt(double(c.width));  // OpenAI: width^-0.5 · randn
        const index_t g = c.input_resolution / c.patch_size;
        class_embedding = Tensor<T, 1, D>::empty({c.width});
        positional_embedding = Tensor<T, 2, D>::empty({g * g + 1, c.width});
        proj = Tensor<T, 2, D>::empty({c.width, c.output_dim});
        nn::init::normal_(class_embedding, 0.0, scale, gen);
        nn::init::normal_(positional_embedding, 0.0, scale, gen);
        nn::init::normal_(proj, 0.0, scale, gen);
        // OpenAI's order: class_embedding, positional_embedding, proj, then the children.
        this->register_parameter("class_embedding", class_embedding);
        this->register_parameter("positional_embedding", positional_embedding);
        this->register_parameter("proj", proj);
        this->register_module("conv1", conv1);
        this->register_module("ln_pre", ln_pre);
        this->register_module("transformer", transformer);
        this->register_module("ln_post", ln_post);
    }

    // CLIP's image embedding: [N, 3, R, R] -> [N, output_dim] (R = input_resolution).
    Tensor<T, 2, D> forward(const Tensor<T, 4, D>& images) const {
        check_grid(images);
        // Nothing but the class token is read after the last block, so that block computes its
        // query, output projection and MLP for the class token alone (keys and values for every
        // token): the same embedding for 7% fewer FLOPs in ViT-B/16 (docs/performance.md).
        // Per-position drop path draws per token, so with it the last block runs whole.
        const auto& blocks = transformer.resblocks;
        const index_t n = index_t(blocks.size());
        const bool class_only = n > 0 && !(config_.drop_path_rate > 0 && config_.drop_path_axis == 1);
        Tensor<T, 3, D> x = embed(images, false);  // [N, 1 + g·g, width]
        for (index_t i = 0; i < n - (class_only ? 1 : 0); ++i) x = blocks[std::size_t(i)](x);
        if (class_only) x = blocks[std::size_t(n - 1)].forward_first(x, 1);  // [N, 1, width]
        const auto cls = ln_post(Tensor<T, 2, D>(x.select(1, 0)));            // [N, width]
        return matmul(cls, proj);                                             // [N, output_dim]
    }
    Tensor<T, 2, D> operator()(const Tensor<T, 4, D>& images) const { return forward(images); }

    // Every token after the last block, [N, 1 + g·g, width] (before ln_post): what forward reads
    // the class token from. forward(images) equals matmul(ln_post(forward_tokens(images)[:, 0]), proj).
    Tensor<T, 3, D> forward_tokens(const Tensor<T, 4, D>& images) const {
        check_grid(images);
        return transformer(embed(images, false));
    }

    // DenseCLIP's backbone output for images [N, 3, H, W] (H and W multiples of the patch size).
    ViTDenseOutput<T, D> forward_dense(const Tensor<T, 4, D>& images, const DenseOptions& options = {}) const {
        for (index_t i : options.out_indices)
            WEFT_CHECK(i >= 0 && i < config_.layers, "clip::VisionTransformer::forward_dense: out index ", i,
                       " is not a block (the model has ", config_.layers, ")");
        const index_t N = images.size(0), h = images.size(2) / config_.patch_size,
                      w = images.size(3) / config_.patch_size;
        // [N, L, C] tokens -> [N, C', h, w] maps of the patch tokens
        auto to_map = [&](const Tensor<T, 3, D>& t) {
            const index_t Cp = t.size(2);
            return t.narrow(1, 1, h * w).permute(0, 2, 1).contiguous().reshape(N, Cp, h, w);
        };

        ViTDenseOutput<T, D> r;
        Tensor<T, 3, D> x = embed(images, options.class_embedding_twice);  // [N, 1 + hw, C]
        for (index_t i = 0; i < config_.layers; ++i) {
            x = transformer.resblocks[std::size_t(i)](x);
            for (index_t o : options.out_indices)
                if (o == i) r.features.push_back(to_map(x));  // [N, C, h, w]
        }
        if (options.embeddings) {
            const auto e = matmul(ln_post(x), proj);  // [N, 1 + hw, output_dim]
            r.global = e.select(1, 0);
            r.local = to_map(e);
        }
        return r;
    }

    const VisionTransformerConfig& config() const { return config_; }

private:
    void check_grid(const Tensor<T, 4, D>& images) const {
        const index_t g = positional_grid_side(positional_embedding, "VisionTransformer.positional_embedding");
        const index_t p = config_.patch_size;
        WEFT_CHECK(images.size(2) / p == g && images.size(3) / p == g, "clip::VisionTransformer: images of shape ",
                   images.shape(), " give a ", images.size(2) / p, "×", images.size(3) / p, " patch grid, but the model's",
                   " positional embedding is for ", g, "×", g, " (", g * p, "×", g * p,
                   " pixels); resize the images, or use forward_dense, which takes any size");
    }

    // [N, 3, H, W] -> ln_pre([class token; patch tokens] + positions): [N, 1 + hw, width]
    Tensor<T, 3, D> embed(const Tensor<T, 4, D>& images, bool class_twice) const {
        WEFT_CHECK(images.size(1) == 3, "clip::VisionTransformer: images of shape ", images.shape(),
                   " must have 3 channels (RGB, [N, 3, H, W])");
        WEFT_CHECK(images.size(2) >= config_.patch_size && images.size(3) >= config_.patch_size,
                   "clip::VisionTransformer: images of shape ", images.shape(), " are smaller than one ",
                   config_.patch_size, "×", config_.patch_size, " patch");
        const auto f = conv1(images);  // [N, C, h, w]
        const index_t N = f.size(0), C = f.size(1), h = f.size(2), w = f.size(3);
        const auto pos = resize_positional_embedding(positional_embedding, {h, w});  // [1 + hw, C]
        const Tensor<T, 1, D> cls_row = class_twice ? eval(class_embedding * 2.0 + pos.select(0, 0))
                                                    : eval(class_embedding + pos.select(0, 0));
        const Tensor<T, 3, D> patches = f.reshape(N, C, h * w).permute(0, 2, 1) + pos.narrow(0, 1, h * w).unsqueeze(0);
        const auto tokens = cat({Tensor<T, 3, D>(cls_row.reshape(1, 1, C).expand(N, 1, C)), patches}, 1);
        return ln_pre(tokens);
    }

    static const VisionTransformerConfig& checked(const VisionTransformerConfig& c) {
        WEFT_CHECK(c.patch_size > 0 && c.input_resolution >= c.patch_size && c.input_resolution % c.patch_size == 0,
                   "clip::VisionTransformer: input_resolution ", c.input_resolution,
                   " must be a positive multiple of patch_size ", c.patch_size);
        WEFT_CHECK(c.width > 0 && c.heads > 0 && c.width % c.heads == 0 && c.output_dim > 0,
                   "clip::VisionTransformer: width ", c.width, " must be a positive multiple of heads ", c.heads);
        return c;
    }

    VisionTransformerConfig config_;
};

}  // namespace weft::clip
