// weft/models/clip/maskclip.hpp: dense CLIP features without training (MaskCLIP: Zhou, Loy and
// Dai, "Extract Free Dense Labels from CLIP", ECCV 2022).
//
//   auto model = clip::load("ViT-B-16.pt");
//   auto f = clip::dense_value_features(*model, images);        // [N, 3, H, W] -> [N, 512, H/16, W/16]
//   auto s = clip::dense_class_logits(f, model->encode_text(tokens));   // [N, K, H/16, W/16] cosines
//   // per-pixel label: argmax over K (after upsampling s to the image size, if wanted)
//
// CLIP's last attention layer mixes all positions into one query (the class or mean token). MaskCLIP
// keeps every position apart: each spatial token goes through that layer's value and output
// projections only, skipping the query-key mixing, and so lands in CLIP's joint image-text space,
// where it can be compared with text embeddings. No weight is changed or learned.
//
// What the MaskCLIP code does (read in the public mmseg-based MaskCLIP code, repository
// volgachen/MaskCLIP, a copy of the authors' chongzhou96/MaskCLIP; the same lines are in other forks):
//
// ResNet (mmseg/models/decode_heads/maskclip_head.py, MaskClipHead, vit=False, attn_pooling=False;
// configs/_base_/models/maskclip_r50.py): the head turns the attention pool's v_proj and c_proj into
// 1×1 convolutions and applies them to layer4's output: feat = c_proj(v_proj(x)). The positional
// embedding is NOT added, and the mean token plays no part. So here:
//   f = c_proj.W · (v_proj.W · x + v_proj.b) + c_proj.b at every position: [N, width·32, h, w] ->
//   [N, output_dim, h, w], h = H/32, w = W/32 (any H, W; no grid to match).
//
// ViT (mmseg/models/backbones/vit.py, TransformerEncoderLayer.forward with return_qkv, and
// VisionTransformer.forward at the last layer; configs/_base_/models/maskclip_vit16.py sets
// pre_norm, final_norm and return_qkv): blocks 0..L-2 run as usual; in the last block the code
// computes y = ln_1(x), applies the packed in-projection and then out_proj to each of q, k and v, and
// keeps v = out_proj(v_proj(y)) + x (the residual IS added), then v = v + mlp(ln_2(v)) (the MLP
// branch IS run, with its own residual); final_norm (CLIP's ln_post) is applied to v and the head's
// bias-free 1×1 conv holds CLIP's proj. So here, per patch token x after block L-2:
//   v = x + out_proj(v_proj(ln_1(x)));  v = v + mlp(ln_2(v));  f = ln_post(v) · proj.
// Tokens do not interact in the last block, so only the patch tokens go through it.
//
// Where weft differs from that code, deliberately:
//  - the positional grid is resized bilinearly (align_corners = false), the resize forward_dense and
//    DenseCLIP use (positional_embedding.hpp); MaskCLIP's mmseg ViT resizes bicubically;
//  - the blocks are CLIP's own (QuickGELU, LayerNorm eps 1e-5), the ones the weights were trained
//    with; MaskCLIP's config builds them with GELU and eps 1e-6;
//  - the class token gets the class embedding once (plain CLIP, and MaskCLIP's mmseg ViT);
//    MaskClipOptions::class_embedding_twice reproduces DenseCLIP's double addition instead.
// Drop path is not applied in the last block (MaskCLIP is an inference-time method); the first L-1
// blocks are called as they are, so keep the model in eval mode.
//
// Everything is built from recorded ops (linear, matmul, layer_norm, element-wise expressions), so
// gradients flow to the images and weights if grad mode is on, though the method needs none.
#pragma once

#include "../../expr.hpp"
#include "../../ops/join.hpp"
#include "../../ops/matmul.hpp"
#include "../../ops/normalize.hpp"
#include "clip_model.hpp"
#include "modified_resnet.hpp"
#include "positional_embedding.hpp"
#include "vision_transformer.hpp"

namespace weft::clip {

struct MaskClipOptions {
    bool class_embedding_twice = false;  // DenseCLIP's class-token quirk; CLIP and MaskCLIP add it once
};

namespace detail {

// CLIP's ViT input: ln_pre([class; patches] + positions), the grid resized to the image's patch grid.
// [N, 3, H, W] -> [N, 1 + h·w, width]. The same steps as VisionTransformer's forward_dense.
template <Element T, Device D>
Tensor<T, 3, D> maskclip_vit_tokens(const VisionTransformer<T, D>& vit, const Tensor<T, 4, D>& images,
                                    bool class_twice) {
    const index_t p = vit.config().patch_size;
    WEFT_CHECK(images.size(1) == 3, "clip::dense_value_features: images of shape ", images.shape(),
               " must have 3 channels (RGB, [N, 3, H, W])");
    WEFT_CHECK(images.size(2) >= p && images.size(3) >= p, "clip::dense_value_features: images of shape ",
               images.shape(), " are smaller than one ", p, "×", p, " patch");
    const auto f = vit.conv1(images);  // [N, C, h, w]
    const index_t N = f.size(0), C = f.size(1), h = f.size(2), w = f.size(3);
    const auto pos = resize_positional_embedding(vit.positional_embedding, {h, w});  // [1 + hw, C]
    const Tensor<T, 1, D> cls_row = class_twice ? eval(vit.class_embedding * 2.0 + pos.select(0, 0))
                                                : eval(vit.class_embedding + pos.select(0, 0));
    const Tensor<T, 3, D> patches = f.reshape(N, C, h * w).permute(0, 2, 1) + pos.narrow(0, 1, h * w).unsqueeze(0);
    const auto tokens = cat({Tensor<T, 3, D>(cls_row.reshape(1, 1, C).expand(N, 1, C)), patches}, 1);  // [N, 1 + hw, C]
    return vit.ln_pre(tokens);
}

// The value path of a block's attention: out_proj(v_proj(y)), y [N, L, E] -> [N, L, E].
template <Element T, Device D>
Tensor<T, 3, D> value_path(const nn::MultiheadAttention<T, D>& attn, const Tensor<T, 3, D>& y) {
    const index_t E = attn.out_proj.in_features();
    // CLIP's blocks keep q, k and v packed as in_proj_weight [3E, E]; v is the last third.
    const Tensor<T, 2, D> wv = attn.in_proj_weight.defined() ? attn.in_proj_weight.narrow(0, 2 * E, E)
                                                             : attn.v_proj_weight;  // [E, E]
    const Tensor<T, 1, D> bv = attn.in_proj_bias.defined() ? attn.in_proj_bias.narrow(0, 2 * E, E) : Tensor<T, 1, D>{};
    return attn.out_proj(linear(y, wv, bv));  // [N, L, E]
}

}  // namespace detail

// MaskCLIP's dense features of CLIP's ViT: images [N, 3, H, W] -> [N, output_dim, H/p, W/p]
// (p the patch size; any H, W of at least one patch).
template <Element T, Device D>
Tensor<T, 4, D> dense_value_features(const VisionTransformer<T, D>& vit, const Tensor<T, 4, D>& images,
                                     const MaskClipOptions& options = {}) {
    const index_t L = vit.config().layers;
    WEFT_CHECK(L >= 1, "clip::dense_value_features: the vision transformer has no blocks, so there is no last "
                       "attention layer to take the value path of");
    Tensor<T, 3, D> x = detail::maskclip_vit_tokens(vit, images, options.class_embedding_twice);  // [N, 1 + hw, C]
    for (index_t i = 0; i + 1 < L; ++i) x = vit.transformer.resblocks[std::size_t(i)](x);
    const index_t N = images.size(0), p = vit.config().patch_size, h = images.size(2) / p, w = images.size(3) / p;
    const index_t E = vit.proj.size(1);

    // The last block without query-key mixing; positions are independent, so only patches are needed.
    const auto& last = vit.transformer.resblocks[std::size_t(L - 1)];
    const Tensor<T, 3, D> patches = x.narrow(1, 1, h * w);                                 // [N, hw, C]
    const Tensor<T, 3, D> v = patches + detail::value_path(last.attn, last.ln_1(patches));  // [N, hw, C]
    const Tensor<T, 3, D> y = v + last.mlp(last.ln_2(v));                                   // [N, hw, C]
    const auto e = matmul(vit.ln_post(y), vit.proj);                                        // [N, hw, E]
    return e.permute(0, 2, 1).contiguous().reshape(N, E, h, w);  // [N, E, h, w]
}

// MaskCLIP's dense features of CLIP's modified ResNet: images [N, 3, H, W] -> [N, output_dim, H/32,
// W/32]: the attention pool's v_proj then c_proj as 1×1 convolutions on layer4's output, with no
// positional embedding (as MaskCLIP's head).
template <Element T, Device D>
Tensor<T, 4, D> dense_value_features(const ModifiedResNet<T, D>& rn, const Tensor<T, 4, D>& images) {
    const auto f = rn.layer4(rn.layer3(rn.layer2(rn.layer1(rn.stem(images)))));  // [N, C, h, w]
    const index_t N = f.size(0), C = f.size(1), h = f.size(2), w = f.size(3);
    const auto& pool = rn.attnpool;
    const index_t E = pool.c_proj.out_features();
    WEFT_CHECK(C == pool.v_proj.in_features(), "clip::dense_value_features: layer4 gives ", C,
               " channels, the attention pool's v_proj expects ", pool.v_proj.in_features());
    // Channel-first products ([C', C] × [N, C, hw]) are the 1×1 convolutions, with no transposes.
    const auto x = f.reshape(N, C, h * w);                                                            // [N, C, hw]
    const Tensor<T, 3, D> v = matmul(pool.v_proj.weight, x) + pool.v_proj.bias.reshape(1, C, 1);       // [N, C, hw]
    const Tensor<T, 3, D> e = matmul(pool.c_proj.weight, v) + pool.c_proj.bias.reshape(1, E, 1);       // [N, E, hw]
    return e.reshape(N, E, h, w);                                                                     // [N, E, h, w]
}

// Whichever image encoder the model holds. options apply to the ViT only.
template <Element T, Device D>
Tensor<T, 4, D> dense_value_features(const Clip<T, D>& model, const Tensor<T, 4, D>& images,
                                     const MaskClipOptions& options = {}) {
    if (model.vit) return dense_value_features(*model.vit, images, options);
    return dense_value_features(*model.resnet, images);
}

// Cosine similarity of every position with every class: features [N, C, h, w] and text features
// [K, C] (encode_text of K prompts) -> [N, K, h, w] in [-1, 1], both sides L2-normalised as
// F.normalize. prompt::score_map computes the same for per-image text [N, K, C]; this is the shared
// [K, C] case as one product. Multiply by a temperature (MaskCLIP: 100, CLIP: exp(logit_scale))
// before a softmax over K.
template <Element T, Device D>
Tensor<T, 4, D> dense_class_logits(const Tensor<T, 4, D>& features, const Tensor<T, 2, D>& text_features) {
    const index_t N = features.size(0), C = features.size(1), h = features.size(2), w = features.size(3),
                  K = text_features.size(0);
    WEFT_CHECK(text_features.size(1) == C, "clip::dense_class_logits: features of shape ", features.shape(),
               " and text features of shape ", text_features.shape(),
               " must be [N, C, h, w] and [K, C] with the same C");
    const auto v = normalize(features, 1).reshape(N, C, h * w);  // [N, C, hw]
    const auto t = normalize(text_features, -1);                 // [K, C]
    return matmul(t, v).reshape(N, K, h, w);                     // [N, K, h, w]
}

}  // namespace weft::clip
