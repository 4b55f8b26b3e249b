// weft/models/clip/clip_model.hpp: `Clip`, OpenAI's CLIP: an image encoder and a text encoder
// that map into one embedding space.
//
//   auto model = clip::load("ViT-B-16.pt");                 // load.hpp: config from the file
//   clip::Clip<float> fresh(clip::vit_b16_config());         // or built from a config
//   auto img = model->encode_image(images);                  // [N, 3, 224, 224] -> [N, 512]
//   auto txt = model->encode_text(tokens);                   // [M, 77] int64 -> [M, 512]
//   auto logits = model->logits(img, txt);                   // [N, M] = exp(logit_scale)·cos
//
// The image encoder is a ModifiedResNet or a VisionTransformer (chosen by the config), named
// `visual`; the text encoder's tensors sit at the root, as in OpenAI's checkpoints. A fresh model
// is initialised as OpenAI's initialize_parameters does (normal initialisations scaled by width
// and depth, the last BatchNorm of each bottleneck zeroed, logit_scale = ln(1/0.07)).
#pragma once

#include <cmath>
#include <memory>
#include <variant>

#include "../../expr.hpp"
#include "../../nn/init.hpp"
#include "../../nn/module.hpp"
#include "../../ops/matmul.hpp"
#include "modified_resnet.hpp"
#include "text_transformer.hpp"
#include "vision_transformer.hpp"

namespace weft::clip {

struct ClipConfig {
    index_t embed_dim = 512;
    std::variant<VisionTransformerConfig, ModifiedResNetConfig> vision = VisionTransformerConfig{};
    TextTransformerConfig text{};

    bool is_vit() const { return std::holds_alternative<VisionTransformerConfig>(vision); }
    index_t image_resolution() const {
        return std::visit([](const auto& v) { return v.input_resolution; }, vision);
    }
};

// The released models DenseCLIP uses (spec §1.1).
inline ClipConfig rn_config(std::array<index_t, 4> layers, index_t embed_dim) {
    return {embed_dim,
            ModifiedResNetConfig{.layers = layers, .output_dim = embed_dim, .heads = 32, .input_resolution = 224,
                                 .width = 64},
            TextTransformerConfig{.output_dim = embed_dim}};
}
inline ClipConfig rn50_config() { return rn_config({3, 4, 6, 3}, 1024); }
inline ClipConfig rn101_config() { return rn_config({3, 4, 23, 3}, 512); }
inline ClipConfig vit_b16_config() {
    return {512, VisionTransformerConfig{}, TextTransformerConfig{.output_dim = 512}};
}

template <Element T = float, Device D = Cpu>
class Clip : public nn::Module<T, D> {
public:
    std::unique_ptr<ModifiedResNet<T, D>> resnet;   // the image encoder: one of these two
    std::unique_ptr<VisionTransformer<T, D>> vit;   //   is set, named "visual"
    TextTransformer<T, D> text;                      // its tensors are registered at the root
    Tensor<T, 0, D> logit_scale;                     // log of the logits' temperature factor

    explicit Clip(const ClipConfig& config, Generator& gen = default_generator())
        : text(with_output(config.text, config.embed_dim), gen), config_(config) {
        if (const auto* v = std::get_if<VisionTransformerConfig>(&config.vision)) {
            auto c = *v;
            c.output_dim = config.embed_dim;
            vit = std::make_unique<VisionTransformer<T, D>>(c, gen);
        } else {
            auto c = std::get<ModifiedResNetConfig>(config.vision);
            c.output_dim = config.embed_dim;
            resnet = std::make_unique<ModifiedResNet<T, D>>(c, gen);
            initialize_resnet(*resnet, gen);
        }
        logit_scale = Tensor<T, 0, D>::full({}, std::log(1.0 / 0.07));
        // OpenAI's state_dict order: the root's parameters, then visual and the text modules.
        this->register_parameter("positional_embedding", text.positional_embedding);
        this->register_parameter("text_projection", text.text_projection);
        this->register_parameter("logit_scale", logit_scale);
        this->register_module("visual", visual());
        this->register_module("transformer", text.transformer);
        this->register_module("token_embedding", text.token_embedding);
        this->register_module("ln_final", text.ln_final);
    }

    nn::Module<T, D>& visual() const {
        if (vit) return *vit;
        return *resnet;
    }

    // images [N, 3, R, R] (preprocess.hpp) -> [N, embed_dim]
    Tensor<T, 2, D> encode_image(const Tensor<T, 4, D>& images) const {
        return vit ? vit->forward(images) : resnet->forward(images);
    }
    // tokens [M, L] (Tokenizer::tokenize) -> [M, embed_dim]
    Tensor<T, 2, D> encode_text(const Tensor<std::int64_t, 2, D>& tokens) const { return text(tokens); }

    // exp(logit_scale) · cos(image_i, text_j): [N, E] and [M, E] -> [N, M] (logits per image;
    // transpose for logits per text).
    Tensor<T, 2, D> logits(const Tensor<T, 2, D>& image_features, const Tensor<T, 2, D>& text_features) const {
        WEFT_CHECK(image_features.size(1) == text_features.size(1), "Clip::logits: image features of shape ",
                   image_features.shape(), " and text features of shape ", text_features.shape(),
                   " differ in width");
        const Tensor<T, 2, D> img = image_features / sqrt(sum(square(image_features), {1}, keepdim));
        const Tensor<T, 2, D> txt = text_features / sqrt(sum(square(text_features), {1}, keepdim));
        return eval(matmul(img, txt.t()) * exp(logit_scale.reshape(1, 1)));
    }
    // Logits per image for images [N, 3, R, R] and tokens [M, L]: [N, M].
    Tensor<T, 2, D> forward(const Tensor<T, 4, D>& images, const Tensor<std::int64_t, 2, D>& tokens) const {
        return logits(encode_image(images), encode_text(tokens));
    }

    const ClipConfig& config() const { return config_; }

private:
    static TextTransformerConfig with_output(TextTransformerConfig c, index_t embed_dim) {
        c.output_dim = embed_dim;
        return c;
    }

    // OpenAI's initialize_parameters for the ResNet: the attention pool's projections normal
    // with std 1/√in_features, and each bottleneck's last BatchNorm scale zero, so that every
    // residual block starts as the identity.
    static void initialize_resnet(ModifiedResNet<T, D>& rn, Generator& gen) {
        auto& pool = rn.attnpool;
        const double std = 1.0 / std::sqrt(double(pool.c_proj.in_features()));
        for (auto* l : {&pool.q_proj, &pool.k_proj, &pool.v_proj, &pool.c_proj}) nn::init::normal_(l->weight, 0.0, std, gen);
        for (auto* stage : {&rn.layer1, &rn.layer2, &rn.layer3, &rn.layer4})
            for (const auto& [name, child] : stage->named_children())
                if (auto* b = dynamic_cast<Bottleneck<T, D>*>(child)) nn::init::zeros_(b->bn3.weight);
    }

    ClipConfig config_;
};

}  // namespace weft::clip
