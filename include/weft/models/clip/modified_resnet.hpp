// weft/models/clip/modified_resnet.hpp: CLIP's image encoder for RN50, RN101 (and any width).
//
//   clip::ModifiedResNet<float> rn({.layers = {3, 4, 6, 3}, .output_dim = 1024, .heads = 32,
//                                   .input_resolution = 224, .width = 64});        // RN50
//   auto v = rn(images);                           // [N, 3, 224, 224] -> [N, 1024]
//   auto f = rn.forward_dense(images);             // any size: stages + dense attention pool
//
// A ResNet with three changes (spec §1.3): a stem of three 3×3 convolutions (the first with
// stride 2) and a 2×2 average pool; anti-aliased strided blocks (bottleneck.hpp); and an
// attention pool instead of global average pooling. Stage widths are width·4·{1, 2, 4, 8}
// channels (256 to 2048 for width 64) at strides 4, 8, 16 and 32; the pool has width·32
// channels and `heads` heads (OpenAI: width·32/64).
#pragma once

#include <array>

#include "../../nn/sequential.hpp"
#include "attention_pool2d.hpp"
#include "bottleneck.hpp"

namespace weft::clip {

struct ModifiedResNetConfig {
    std::array<index_t, 4> layers{3, 4, 6, 3};  // blocks per stage
    index_t output_dim = 1024;                   // the joint embedding width
    index_t heads = 32;                          // attention-pool heads
    index_t input_resolution = 224;              // fixes the pool's positional grid (resolution / 32)
    index_t width = 64;                          // stem width; stages have 4·width·2^i channels
};

// The four stage outputs (strides 4, 8, 16, 32) and, from the dense pool, the global and
// per-position embeddings: DenseCLIP's CLIPResNetWithAttention output.
template <Element T = float, Device D = Cpu>
struct ResNetDenseOutput {
    std::array<Tensor<T, 4, D>, 4> stages;  // [N, 4·width·2^i, H/2^(i+2), W/2^(i+2)]
    Tensor<T, 2, D> global;                 // [N, output_dim]
    Tensor<T, 4, D> local;                  // [N, output_dim, H/32, W/32]
};

template <Element T = float, Device D = Cpu>
class ModifiedResNet : public nn::Module<T, D> {
public:
    nn::Conv2d<T, D> conv1;
    nn::BatchNorm2d<T, D> bn1;
    nn::Conv2d<T, D> conv2;
    nn::BatchNorm2d<T, D> bn2;
    nn::Conv2d<T, D> conv3;
    nn::BatchNorm2d<T, D> bn3;
    nn::Sequential<T, 4, D> layer1, layer2, layer3, layer4;
    AttentionPool2d<T, D> attnpool;

    explicit ModifiedResNet(const ModifiedResNetConfig& c, Generator& gen = default_generator())
        : conv1(3, checked(c).width / 2, 3, {.stride = {2, 2}, .padding = {1, 1}}, false, gen),
          bn1(c.width / 2),
          conv2(c.width / 2, c.width / 2, 3, {.padding = {1, 1}}, false, gen),
          bn2(c.width / 2),
          conv3(c.width / 2, c.width, 3, {.padding = {1, 1}}, false, gen),
          bn3(c.width),
          attnpool(c.input_resolution / 32, c.width * 32, c.heads, c.output_dim, gen),
          config_(c) {
        this->register_module("conv1", conv1);
        this->register_module("bn1", bn1);
        this->register_module("conv2", conv2);
        this->register_module("bn2", bn2);
        this->register_module("conv3", conv3);
        this->register_module("bn3", bn3);
        index_t inplanes = c.width;
        nn::Sequential<T, 4, D>* stages[] = {&layer1, &layer2, &layer3, &layer4};
        for (int s = 0; s < 4; ++s) {
            const index_t planes = c.width << s;
            for (index_t b = 0; b < c.layers[std::size_t(s)]; ++b) {
                stages[s]->template emplace_back<Bottleneck<T, D>>(inplanes, planes, b == 0 && s > 0 ? 2 : 1, gen);
                inplanes = planes * Bottleneck<T, D>::expansion;
            }
            this->register_module("layer" + std::to_string(s + 1), *stages[s]);
        }
        this->register_module("attnpool", attnpool);
    }

    // [N, 3, H, W] -> [N, width, H/4, W/4]
    Tensor<T, 4, D> stem(const Tensor<T, 4, D>& x) const {
        WEFT_CHECK(x.size(1) == 3, "clip::ModifiedResNet: images of shape ", x.shape(),
                   " must have 3 channels (RGB, [N, 3, H, W])");
        const Tensor<T, 4, D> a = relu(bn1(conv1(x)));
        const Tensor<T, 4, D> b = relu(bn2(conv2(a)));
        const Tensor<T, 4, D> c = relu(bn3(conv3(b)));
        return detail::avg_pool(c, 2);
    }

    // The four stage outputs.
    std::array<Tensor<T, 4, D>, 4> forward_stages(const Tensor<T, 4, D>& x) const {
        std::array<Tensor<T, 4, D>, 4> out;
        out[0] = layer1(stem(x));
        out[1] = layer2(out[0]);
        out[2] = layer3(out[1]);
        out[3] = layer4(out[2]);
        return out;
    }

    // CLIP's image embedding: [N, 3, R, R] -> [N, output_dim] (R = input_resolution).
    Tensor<T, 2, D> forward(const Tensor<T, 4, D>& x) const { return attnpool(layer4(layer3(layer2(layer1(stem(x)))))); }
    Tensor<T, 2, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

    // DenseCLIP's backbone output, for any H and W divisible by 32.
    ResNetDenseOutput<T, D> forward_dense(const Tensor<T, 4, D>& x) const {
        ResNetDenseOutput<T, D> r;
        r.stages = forward_stages(x);
        auto pooled = attnpool.forward_dense(r.stages[3]);
        r.global = pooled.global;
        r.local = pooled.local;
        return r;
    }

    const ModifiedResNetConfig& config() const { return config_; }

private:
    static const ModifiedResNetConfig& checked(const ModifiedResNetConfig& c) {
        WEFT_CHECK(c.width >= 2 && c.width % 2 == 0 && c.output_dim > 0 && c.heads > 0 && (c.width * 32) % c.heads == 0,
                   "clip::ModifiedResNet: width ", c.width, " must be even and width·32 a multiple of heads ", c.heads,
                   " (output_dim ", c.output_dim, ")");
        WEFT_CHECK(c.input_resolution >= 32 && c.input_resolution % 32 == 0, "clip::ModifiedResNet: input_resolution ",
                   c.input_resolution, " must be a positive multiple of 32 (the encoder's stride)");
        for (index_t n : c.layers)
            WEFT_CHECK(n >= 1, "clip::ModifiedResNet: every stage needs at least one block (layers ", n, ")");
        return c;
    }

    ModifiedResNetConfig config_;
};

}  // namespace weft::clip
