// weft/models/clip/load.hpp: OpenAI CLIP checkpoints into a Clip model.
//
//   auto model = clip::load("ViT-B-16.pt");            // TorchScript or torch.save, fp16 or fp32,
//   auto same  = clip::load("vit-b16.safetensors");    // or safetensors; returns unique_ptr<Clip<float>>
//   ClipConfig c = clip::infer_config(Checkpoint::open("RN50.pt"));
//
// infer_config reads the hyper-parameters from tensor shapes exactly as OpenAI's build_model:
//   ViT when visual.proj exists: width = visual.conv1.weight[0], patch = its kernel size,
//     layers = the number of visual.*.attn.in_proj_weight keys, resolution = patch · √(rows of
//     visual.positional_embedding − 1), heads = width / 64;
//   ResNet otherwise: blocks per stage = distinct block indices under visual.layer1..4, width =
//     visual.layer1.0.conv1.weight[0], resolution = 32 · √(rows of
//     visual.attnpool.positional_embedding − 1), heads = width · 32 / 64;
//   text: embed_dim = text_projection[1], context_length = positional_embedding[0], vocab_size =
//     token_embedding.weight[0], width = ln_final.weight[0], heads = width / 64, layers = the
//     distinct indices under transformer.resblocks.
// load() then checks that every tensor fits (strict, naming the file and each key), converts the
// stored fp16 to T, ignores the scalars input_resolution, context_length and vocab_size that
// some of OpenAI's files carry (build_model deletes them too), and accepts BatchNorm layers
// without num_batches_tracked. A file named like an official release (RN50.pt, RN101.pt,
// ViT-B-16.pt) must have the release's SHA-256 (io/official_checkpoints.hpp).
#pragma once

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "../../io/checkpoint.hpp"
#include "../../io/official_checkpoints.hpp"
#include "../../nn/load_checkpoint.hpp"
#include "clip_model.hpp"

namespace weft::clip {

namespace detail {

// The i-th dot-separated field of `key` ("" when there is none).
inline std::string_view field(std::string_view key, int i) {
    for (; i > 0; --i) {
        const auto dot = key.find('.');
        if (dot == std::string_view::npos) return {};
        key.remove_prefix(dot + 1);
    }
    return key.substr(0, key.find('.'));
}

// The number of distinct values of field 2 among keys starting with `prefix`.
inline index_t count_blocks(const Checkpoint& ck, std::string_view prefix) {
    std::set<std::string, std::less<>> ids;
    for (const auto& k : ck.names())
        if (std::string_view(k).starts_with(prefix)) ids.emplace(field(k, 2));
    return index_t(ids.size());
}

inline std::vector<index_t> need_shape(const Checkpoint& ck, const std::string& key, std::size_t rank) {
    WEFT_CHECK(ck.contains(key), ck.where(), " is not a CLIP checkpoint: it has no tensor '", key,
               "' (OpenAI's model files and weft's safetensors exports do)");
    auto s = ck.shape(key);
    WEFT_CHECK(s.size() == rank, ck.where(), ": tensor '", key, "' has rank ", s.size(), ", CLIP's has rank ", rank);
    return s;
}

// √(rows − 1) of a [1 + g·g, C] positional embedding, checked.
inline index_t grid_of(const Checkpoint& ck, const std::string& key) {
    const index_t rows = need_shape(ck, key, 2)[0];
    const auto g = index_t(std::llround(std::sqrt(double(std::max<index_t>(rows - 1, 0)))));
    WEFT_CHECK(g >= 1 && g * g + 1 == rows, ck.where(), ": '", key, "' has ", rows,
               " rows, not one token row and a square grid (1 + g·g)");
    return g;
}

inline index_t heads_for(const Checkpoint& ck, index_t width, index_t per_head, const char* what) {
    WEFT_CHECK(width % per_head == 0 && width >= per_head, ck.where(), ": ", what, " width ", width,
               " is not a multiple of ", per_head, ", so OpenAI's head rule (width / ", per_head,
               ") gives no whole number of heads");
    return width / per_head;
}

}  // namespace detail

inline ClipConfig infer_config(const Checkpoint& ck) {
    using namespace detail;
    ClipConfig c;
    const auto proj = need_shape(ck, "text_projection", 2);
    c.embed_dim = proj[1];
    c.text.output_dim = c.embed_dim;
    c.text.context_length = need_shape(ck, "positional_embedding", 2)[0];
    c.text.vocab_size = need_shape(ck, "token_embedding.weight", 2)[0];
    c.text.width = need_shape(ck, "ln_final.weight", 1)[0];
    c.text.heads = heads_for(ck, c.text.width, 64, "the text transformer's");
    c.text.layers = count_blocks(ck, "transformer.resblocks.");

    if (ck.contains("visual.proj")) {
        VisionTransformerConfig v;
        const auto conv = need_shape(ck, "visual.conv1.weight", 4);
        v.width = conv[0];
        v.patch_size = conv[3];
        v.layers = 0;
        for (const auto& k : ck.names())
            if (k.starts_with("visual.") && k.ends_with(".attn.in_proj_weight")) ++v.layers;
        v.input_resolution = v.patch_size * grid_of(ck, "visual.positional_embedding");
        v.heads = heads_for(ck, v.width, 64, "the vision transformer's");
        v.output_dim = c.embed_dim;
        c.vision = v;
    } else {
        ModifiedResNetConfig r;
        for (int s = 0; s < 4; ++s)
            r.layers[std::size_t(s)] = count_blocks(ck, "visual.layer" + std::to_string(s + 1) + ".");
        r.width = need_shape(ck, "visual.layer1.0.conv1.weight", 4)[0];
        r.input_resolution = 32 * grid_of(ck, "visual.attnpool.positional_embedding");
        r.heads = heads_for(ck, r.width * 32, 64, "the attention pool's");
        r.output_dim = c.embed_dim;
        c.vision = r;
    }
    return c;
}

struct LoadOptions {
    bool verify_official_hash = true;  // check files named like OpenAI's releases by SHA-256
};

// Loads `ck` into an existing model (its shapes must match the file's).
template <Element T, Device D>
void load_weights(Clip<T, D>& model, const Checkpoint& ck) {
    nn::load_state(model, ck,
                   {.ignore = [](std::string_view k) {
                        return k == "input_resolution" || k == "context_length" || k == "vocab_size";
                    },
                    .optional = [](std::string_view k) { return k.ends_with(".num_batches_tracked"); }});
}

namespace detail {

// Loads `encoder` from the keys under `prefix`, resizing the stored positional embedding
// `pos_name` ([1 + g·g, C]) to the encoder's own grid when the sizes differ.
template <Element T, Device D>
void load_resizing(nn::Module<T, D>& encoder, Tensor<T, 2, D>& pos, const Checkpoint& ck, const std::string& prefix,
                   const std::string& pos_name, const std::function<bool(std::string_view)>& not_in_clip) {
    const std::string key = prefix + pos_name;
    WEFT_CHECK(ck.contains(key), ck.where(), ": no tensor '", key, "' (is this a CLIP checkpoint with this image encoder?)");
    nn::load_state(encoder, ck,
                   {.prefix = prefix,
                    .ignore = [&](std::string_view k) { return k == pos_name; },
                    .optional = [&](std::string_view k) {
                        return k.ends_with(".num_batches_tracked") || (not_in_clip && not_in_clip(k));
                    }});
    const auto stored = ck.get<T, 2>(key);  // [1 + g·g, C]
    WEFT_CHECK(stored.size(1) == pos.size(1), ck.where(), ": '", key, "' has width ", stored.size(1),
               ", the encoder's positional embedding ", pos.size(1));
    const index_t g = positional_grid_side(pos, "the encoder's positional embedding");
    positional_grid_side(stored, ck.where() + ": '" + key + "'");
    NoGrad no_grad;
    pos.copy_from(resize_positional_embedding(stored, {g, g}).template to<D>());
}

}  // namespace detail

// CLIP's image-encoder weights into an encoder built for another input resolution, as DenseCLIP
// loads them (spec §2.1-2.2): every tensor under `prefix` must fit, except the positional
// embedding, whose grid is resized bilinearly to the encoder's (7×7 -> 16×16 for a ResNet at
// 512, 14×14 -> 40×40 for ViT-B/16 at 640). `not_in_clip` names the encoder's own keys that
// CLIP's file cannot hold and that keep their initialisation (DenseCLIP's ViT adapters fpn1..4,
// registered on the same module); every other key must be there.
template <Element T, Device D>
void load_image_encoder(VisionTransformer<T, D>& encoder, const Checkpoint& ck, const std::string& prefix = "visual.",
                        const std::function<bool(std::string_view)>& not_in_clip = nullptr) {
    detail::load_resizing(encoder, encoder.positional_embedding, ck, prefix, "positional_embedding", not_in_clip);
}
template <Element T, Device D>
void load_image_encoder(ModifiedResNet<T, D>& encoder, const Checkpoint& ck, const std::string& prefix = "visual.",
                        const std::function<bool(std::string_view)>& not_in_clip = nullptr) {
    detail::load_resizing(encoder, encoder.attnpool.positional_embedding, ck, prefix, "attnpool.positional_embedding",
                          not_in_clip);
}

template <Element T = float, Device D = Cpu>
std::unique_ptr<Clip<T, D>> load(const std::filesystem::path& path, const LoadOptions& options = {}) {
    if (options.verify_official_hash) verify_official_checkpoint(path);
    const auto ck = Checkpoint::open(path);
    auto model = std::make_unique<Clip<T, D>>(infer_config(ck));
    load_weights(*model, ck);
    model->eval();
    return model;
}

}  // namespace weft::clip
