// weft/models/segmentation/vit_adapters.hpp: `ViTAdapters`, DenseCLIP's multi-scale adapters
// (fpn1..fpn4 of its CLIPVisionTransformer) that turn four stride-16 ViT feature maps into a
// pyramid at strides 4, 8, 16 and 32 for the FPN neck.
//
//   seg::ViTAdapters<float> adapters(768);
//   auto pyramid = adapters({t3, t5, t7, t11});  // 4 x [N, 768, h, w] -> [N, 768, 4h, 4w],
//                                                //   [N, 768, 2h, 2w], [N, 768, h, w], [N, 768, h/2, w/2]
//
// With C = embed_dim and patch size 16, as DenseCLIP builds them:
//   fpn1 = Sequential(GroupNorm(1, C), ConvTranspose2d(C, C, 2, stride 2), BatchNorm2d(C),
//                     GELU (exact erf), ConvTranspose2d(C, C, 2, stride 2))         -> x4
//   fpn2 = Sequential(GroupNorm(1, C), ConvTranspose2d(C, C, 2, stride 2))          -> x2
//   fpn3 = GroupNorm(1, C)            (a bare module, not a Sequential)             -> x1
//   fpn4 = Sequential(GroupNorm(1, C), MaxPool2d(2, stride 2))                      -> /2
// GroupNorm(1, C) normalises each sample over (C, H, W) with a per-channel affine. The BN is a
// SyncBatchNorm in DenseCLIP; on one process it computes what BatchNorm2d does.
//
// Names, as in DenseCLIP checkpoints under "backbone.": fpn1.0.{weight,bias}, fpn1.1.{weight,bias},
// fpn1.2.{weight,bias,running_mean,running_var,num_batches_tracked}, fpn1.4.{weight,bias},
// fpn2.0.*, fpn2.1.*, fpn3.{weight,bias}, fpn4.0.{weight,bias}. GELU (fpn1.3) and the pool
// (fpn4.1) hold no tensors. The adapters are not in CLIP's checkpoint: DenseCLIP leaves them with
// PyTorch's default init (GroupNorm and BN weight 1 / bias 0; ConvTranspose2d kaiming_uniform(a=√5)
// and a uniform bias), which is what the weft layers do.
//
// DenseCLIP also defines adapters for patch size 8; the released configs use ViT-B/16 only,
// so only patch size 16 is built here.
#pragma once

#include <vector>

#include "../../nn/activation.hpp"
#include "../../nn/batch_norm2d.hpp"
#include "../../nn/conv_transpose2d.hpp"
#include "../../nn/group_norm.hpp"
#include "../../nn/sequential.hpp"
#include "resample.hpp"

namespace weft::seg {

template <Element T = float, Device D = Cpu>
class ViTAdapters : public nn::Module<T, D> {
public:
    nn::Sequential<T, 4, D> fpn1;
    nn::Sequential<T, 4, D> fpn2;
    nn::GroupNorm<T, D> fpn3;
    nn::Sequential<T, 4, D> fpn4;

    explicit ViTAdapters(index_t embed_dim = 768, index_t patch_size = 16, Generator& gen = default_generator())
        : fpn3(1, embed_dim), embed_dim_(embed_dim) {
        WEFT_CHECK(patch_size == 16, "ViTAdapters: only patch size 16 (ViT-B/16, DenseCLIP's released configs) is "
                   "built; got patch size ", patch_size);
        const ConvTranspose2dOptions up{.stride = {2, 2}};
        fpn1.template emplace_back<nn::GroupNorm<T, D>>(1, embed_dim);
        fpn1.template emplace_back<nn::ConvTranspose2d<T, D>>(embed_dim, embed_dim, 2, up, true, gen);
        fpn1.template emplace_back<nn::BatchNorm2d<T, D>>(embed_dim);
        fpn1.template emplace_back<nn::GELU<T, D>>();
        fpn1.template emplace_back<nn::ConvTranspose2d<T, D>>(embed_dim, embed_dim, 2, up, true, gen);
        fpn2.template emplace_back<nn::GroupNorm<T, D>>(1, embed_dim);
        fpn2.template emplace_back<nn::ConvTranspose2d<T, D>>(embed_dim, embed_dim, 2, up, true, gen);
        fpn4.template emplace_back<nn::GroupNorm<T, D>>(1, embed_dim);
        fpn4.template emplace_back<MaxPool2d<T, D>>(2, 2);
        this->register_module("fpn1", fpn1);
        this->register_module("fpn2", fpn2);
        this->register_module("fpn3", fpn3);
        this->register_module("fpn4", fpn4);
    }

    // 4 x [N, C, h, w] (the taps after blocks 3, 5, 7, 11) -> strides 4, 8, 16, 32
    std::vector<Tensor<T, 4, D>> forward(const std::vector<Tensor<T, 4, D>>& taps) const {
        WEFT_CHECK(taps.size() == 4, "ViTAdapters: expected 4 feature maps, got ", taps.size());
        for (std::size_t i = 0; i < 4; ++i)
            WEFT_CHECK(taps[i].size(1) == embed_dim_, "ViTAdapters: feature map ", i, " of shape ", taps[i].shape(),
                       " should have ", embed_dim_, " channels");
        return {fpn1(taps[0]), fpn2(taps[1]), fpn3(taps[2]), fpn4(taps[3])};
    }
    std::vector<Tensor<T, 4, D>> operator()(const std::vector<Tensor<T, 4, D>>& taps) const {
        return forward(taps);
    }

    index_t embed_dim() const { return embed_dim_; }

private:
    index_t embed_dim_;
};

}  // namespace weft::seg
