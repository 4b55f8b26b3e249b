// examples/denseclip/model.hpp: DenseCLIP for semantic segmentation (Rao et al., CVPR 2022) as
// its released code builds it (spec §0, §2), assembled from weft's parts.
//
//   auto cfg = denseclip::read_config("examples/denseclip/configs/rn50.json");
//   denseclip::DenseClip<float> model(cfg, class_tokens);     // tokens [K, 5] of the class names
//   denseclip::load_clip_weights(model, weft::Checkpoint::open("RN50.pt"));
//   auto out  = model(images);                                // logits [B, K, H/4, W/4], score map
//   auto loss = model.losses(images, labels);                 // decode + 0.4 · pixel-text matching
//
// Forward (DenseCLIP's extract_feat + after_extract_feat + decode head):
//   backbone(img)        -> 4 feature maps (strides 4..32), global z̄ [B, C], local z [B, C, h, w]
//   text_encoder(texts, contexts) -> t [1, K, C]  (image-independent; expanded to [B, K, C])
//   t  = t + γ · context_decoder(t, [z̄; z])                   (post-model prompting)
//   s  = cosine(z, t)                                         [B, K, h, w]
//   x[score_concat_index] = cat(x[score_concat_index], s)     (+K channels)
//   logits = decode_head(neck(x))                             [B, K, H/4, W/4]
//
// Names are those of the official checkpoints: contexts, gamma, backbone.* (CLIP's visual.*
// names, plus fpn1..fpn4 for the ViT), text_encoder.*, context_decoder.*, neck.*, decode_head.*,
// so a released DenseCLIP .pth (an mmcv dict with "state_dict") loads by name (load_denseclip).
//
// With "prompting": "pre" (the paper's pre-model prompting, not in the released code; spec
// §2.11) contexts, gamma and context_decoder give way to pre_prompt.* (prompt/pre_model_prompt.hpp):
// learned queries read [z̄; z] and become each image's context tokens, and the text encoder runs
// per image (B·K sequences).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <weft/io/checkpoint.hpp>
#include <weft/loss.hpp>
#include <weft/models/clip/load.hpp>
#include <weft/models/clip/modified_resnet.hpp>
#include <weft/models/clip/text_context_encoder.hpp>
#include <weft/models/clip/vision_transformer.hpp>
#include <weft/models/segmentation/fpn.hpp>
#include <weft/models/segmentation/fpn_head.hpp>
#include <weft/models/segmentation/vit_adapters.hpp>
#include <weft/nn/load_checkpoint.hpp>
#include <weft/ops/interpolate.hpp>
#include <weft/ops/join.hpp>
#include <weft/prompt.hpp>

#include "config.hpp"

namespace denseclip {

using namespace weft;

// What the image encoder gives: DenseCLIP's backbone 5-tuple.
template <Element T, Device D>
struct BackboneOutput {
    std::vector<Tensor<T, 4, D>> features;  // strides 4, 8, 16, 32
    Tensor<T, 2, D> global;                 // [B, C]
    Tensor<T, 4, D> local;                  // [B, C, h, w]
};

// DenseCLIP's CLIPVisionTransformer: CLIP's ViT (dense forward, DropPath per token position)
// with the multi-scale adapters registered beside its own tensors, as in the checkpoints
// (backbone.conv1.weight ... backbone.fpn1.0.weight).
template <Element T = float, Device D = Cpu>
class DenseViT : public clip::VisionTransformer<T, D> {
public:
    seg::ViTAdapters<T, D> adapters;

    explicit DenseViT(const ViTBackboneConfig& c, Generator& gen = default_generator())
        : clip::VisionTransformer<T, D>(c.vit, gen), adapters(c.vit.width, c.vit.patch_size, gen),
          out_indices_(c.out_indices) {
        this->register_module("fpn1", adapters.fpn1);
        this->register_module("fpn2", adapters.fpn2);
        this->register_module("fpn3", adapters.fpn3);
        this->register_module("fpn4", adapters.fpn4);
    }

    BackboneOutput<T, D> forward_features(const Tensor<T, 4, D>& images) const {
        auto d = this->forward_dense(images, {.out_indices = out_indices_});
        return {adapters(d.features), d.global, d.local};
    }

    static bool is_adapter_key(std::string_view k) { return k.starts_with("fpn"); }

private:
    std::vector<index_t> out_indices_;
};

struct LossTerms {
    double total = 0, decode = 0, aux = 0;
};

template <Element T = float, Device D = Cpu>
class DenseClip : public nn::Module<T, D> {
public:
    // Post-model prompting (DenseCLIP's released code): contexts, gamma and the context decoder.
    Tensor<T, 3, D> contexts;  // [1, n_ctx, text width]
    Tensor<T, 1, D> gamma;     // [C]
    std::unique_ptr<prompt::ContextDecoder<T, D>> context_decoder;
    // Pre-model prompting (config "prompting": "pre"), in their place.
    std::unique_ptr<prompt::PreModelPrompt<T, D>> pre_prompt;
    std::unique_ptr<DenseViT<T, D>> vit;                  // one of the two is the "backbone"
    std::unique_ptr<clip::ModifiedResNet<T, D>> resnet;
    clip::TextContextEncoder<T, D> text_encoder;
    seg::FPN<T, D> neck;
    seg::FPNHead<T, D> decode_head;

    // texts: the class names tokenized with context length token_length ([K, token_length]).
    DenseClip(const DenseClipConfig& c, Tensor<std::int64_t, 2> texts, Generator& gen = default_generator())
        : text_encoder(checked(c, texts).text, gen),
          neck(c.neck_in_channels, c.neck_out_channels, 4, gen),
          decode_head(c.head, gen),
          config_(c),
          texts_(texts.contiguous().template to<D>()) {
        const bool post = c.prompting == "post";
        if (post) {
            contexts = prompt::make_contexts<T, D>(c.n_ctx, c.text.width, gen);
            gamma = prompt::make_gamma<T, D>(c.embed_dim(), c.gamma_init);
            this->register_parameter("contexts", contexts);
            this->register_parameter("gamma", gamma);
        }
        if (c.is_vit()) {
            vit = std::make_unique<DenseViT<T, D>>(std::get<ViTBackboneConfig>(c.backbone), gen);
            this->register_module("backbone", *vit);
        } else {
            resnet = std::make_unique<clip::ModifiedResNet<T, D>>(std::get<ResNetBackboneConfig>(c.backbone), gen);
            this->register_module("backbone", *resnet);
        }
        this->register_module("text_encoder", text_encoder);
        if (post) {
            context_decoder = std::make_unique<prompt::ContextDecoder<T, D>>(c.context_decoder, gen);
            this->register_module("context_decoder", *context_decoder);
        } else {
            const auto& d = c.context_decoder;
            pre_prompt = std::make_unique<prompt::PreModelPrompt<T, D>>(
                prompt::PreModelPromptConfig{.n_ctx = c.n_ctx,
                                             .visual_dim = d.visual_dim,
                                             .text_width = c.text.width,
                                             .transformer_width = d.transformer_width,
                                             .transformer_heads = d.transformer_heads,
                                             .transformer_layers = d.transformer_layers,
                                             .dropout = d.dropout},
                gen);
            this->register_module("pre_prompt", *pre_prompt);
        }
        this->register_module("neck", neck);
        this->register_module("decode_head", decode_head);
    }

    nn::Module<T, D>& backbone() { return vit ? static_cast<nn::Module<T, D>&>(*vit) : *resnet; }

    // images [B, 3, H, W] -> backbone features, global and local embeddings
    BackboneOutput<T, D> extract(const Tensor<T, 4, D>& images) const {
        if (vit) return vit->forward_features(images);
        auto r = resnet->forward_dense(images);
        return {{r.stages[0], r.stages[1], r.stages[2], r.stages[3]}, r.global, r.local};
    }

    // The class embeddings from the learned prompts alone (post-model prompting): [1, K, C].
    Tensor<T, 3, D> text_embeddings() const {
        WEFT_CHECK(!pre_prompt, "DenseClip: with pre-model prompting the text embeddings depend on the image");
        return text_encoder(texts_, contexts);
    }

    struct Output {
        Tensor<T, 4, D> logits;     // [B, K, H/4, W/4]
        Tensor<T, 4, D> score_map;  // [B, K, h, w], cosine similarities
    };

    Output forward(const Tensor<T, 4, D>& images) const {
        WEFT_CHECK(images.size(1) == 3, "DenseClip: images of shape ", images.shape(), " must be [B, 3, H, W]");
        auto x = extract(images);
        const index_t B = images.size(0);
        const auto context = prompt::visual_context(x.global, x.local);  // [B, 1+hw, C]
        Tensor<T, 3, D> text;                                            // [B, K, C]
        if (pre_prompt) {
            text = text_encoder(texts_, (*pre_prompt)(context));         // contexts [B, n_ctx, width]
        } else {
            const auto t0 = text_embeddings();                           // [1, K, C]
            const auto t = t0.expand(B, t0.size(1), t0.size(2));
            text = prompt::update_text(t, gamma, (*context_decoder)(t, context));
        }
        auto score = prompt::score_map(x.local, text);                   // [B, K, h, w]
        auto& level = x.features[std::size_t(config_.score_concat_index)];
        WEFT_CHECK(level.size(2) == score.size(2) && level.size(3) == score.size(3), "DenseClip: feature level ",
                   config_.score_concat_index, " of shape ", level.shape(), " and the score map ", score.shape(),
                   " differ in size; score_concat_index must pick the level at the embedding map's stride");
        level = cat({level, score}, 1);                                               // [B, c + K, h, w]
        return {decode_head(neck(x.features)), score};
    }
    Output operator()(const Tensor<T, 4, D>& images) const { return forward(images); }

    // DenseCLIP's encode_decode: logits resized to the input size, [B, K, H, W].
    Tensor<T, 4, D> encode_decode(const Tensor<T, 4, D>& images) const {
        return interpolate(forward(images).logits, std::array<index_t, 2>{images.size(2), images.size(3)},
                           Interpolation::bilinear, false);
    }

    struct Losses {
        Tensor<T, 0, D> total, decode, aux;
        LossTerms values() const { return {double(total.item()), double(decode.item()), double(aux.item())}; }
    };

    // labels [B, H, W] (class indices, ignore_index elsewhere)
    Losses losses(const Tensor<T, 4, D>& images, const Tensor<std::int64_t, 3, D>& labels) const {
        const auto out = forward(images);
        Losses l;
        l.decode = loss::decode_loss(out.logits, labels,
                                     {.loss_weight = config_.decode_weight, .ignore_index = config_.ignore_index});
        l.aux = loss::pixel_text_matching_loss(out.score_map, labels,
                                               {.tau = config_.tau,
                                                .loss_weight = config_.identity_weight,
                                                .ignore_index = config_.ignore_index});
        l.total = weft::eval(l.decode + l.aux);
        return l;
    }

    const DenseClipConfig& config() const { return config_; }
    const Tensor<std::int64_t, 2, D>& texts() const { return texts_; }

private:
    static const DenseClipConfig& checked(const DenseClipConfig& c, const Tensor<std::int64_t, 2>& texts) {
        WEFT_CHECK(texts.defined() && texts.size(0) == c.num_classes() && texts.size(1) == c.token_length,
                   "DenseClip: class tokens of shape ", (texts.defined() ? texts.shape() : Shape<2>{0, 0}), " must be [",
                   c.num_classes(), ", ", c.token_length, "] (one row per class, token_length ids)");
        // parse_config has checked the rest (the neck's channels, the embedding widths).
        return c;
    }

    DenseClipConfig config_;
    Tensor<std::int64_t, 2, D> texts_;
};

// CLIP's weights into a fresh DenseCLIP (spec §2.10): the image encoder from "visual.*" with its
// positional grid resized (the ViT adapters keep their init), the text encoder from the text
// tower with the positional embedding cut to context_length. Everything else keeps its init.
template <Element T, Device D>
void load_clip_weights(DenseClip<T, D>& model, const Checkpoint& ck) {
    if (model.vit)
        clip::load_image_encoder(*model.vit, ck, "visual.", &DenseViT<T, D>::is_adapter_key);
    else
        clip::load_image_encoder(*model.resnet, ck, "visual.");
    clip::load_text_context_encoder(model.text_encoder, ck, "");
}

// A DenseCLIP checkpoint: weft's own safetensors (names at the root) or a released .pth, an
// mmcv dict whose "state_dict" holds the names (read through the "state_dict." prefix). Strict:
// a missing or mis-shaped key is an error naming it, and nothing is loaded.
template <Element T, Device D>
void load_denseclip(DenseClip<T, D>& model, const Checkpoint& ck) {
    const bool mmcv = !ck.contains("gamma") && ck.contains("state_dict.gamma");
    nn::load_state(model, ck,
                   {.prefix = mmcv ? "state_dict." : "",
                    .ignore = [mmcv](std::string_view k) {
                        // mmcv also keeps "meta" and "optimizer" next to "state_dict"; weft's
                        // checkpoints keep the optimizer and RNG under "optimizer." and "train.".
                        return !mmcv && (k.starts_with("optimizer.") || k.starts_with("train."));
                    },
                    .optional = [](std::string_view k) { return k.ends_with(".num_batches_tracked"); }});
}

}  // namespace denseclip
