// weft/models/clip/bottleneck.hpp: the residual block of CLIP's modified ResNet.
//
//   clip::Bottleneck<float> b(256, 128, 2);      // [N, 256, H, W] -> [N, 512, H/2, W/2]
//
// As a ResNet bottleneck (1×1, 3×3, 1×1 convolutions, expansion 4, every conv bias-free and
// followed by BatchNorm), but "anti-aliased": a stride-s block averages over s×s windows
// (AvgPool2d(s)) after the 3×3 convolution instead of striding a convolution, and its shortcut
// does the same before a 1×1 convolution. Names follow OpenAI's checkpoints: conv1, bn1, conv2,
// bn2, conv3, bn3, and downsample.0 (conv) / downsample.1 (BN); the shortcut's pooling is
// OpenAI's "downsample.-1", which has no tensors.
#pragma once

#include "../../expr.hpp"
#include "../../nn/batch_norm2d.hpp"
#include "../../nn/conv2d.hpp"
#include "../../nn/module.hpp"
#include "../../ops/pool.hpp"

namespace weft::clip {

namespace detail {
// AvgPool2d(s): s×s windows with stride s; the identity for s = 1.
template <Element T, Device D>
Tensor<T, 4, D> avg_pool(const Tensor<T, 4, D>& x, index_t s) {
    if (s == 1) return x;
    return avg_pool2d(x, Pool2dOptions{.kernel = {s, s}});
}
}  // namespace detail

// The projection shortcut: AvgPool2d(stride) ("-1"), conv 1×1 ("0"), BatchNorm ("1").
template <Element T = float, Device D = Cpu>
class Downsample : public nn::Module<T, D> {
public:
    nn::Conv2d<T, D> conv;
    nn::BatchNorm2d<T, D> bn;

    Downsample(index_t in_channels, index_t out_channels, index_t stride, Generator& gen = default_generator())
        : conv(in_channels, out_channels, 1, {}, false, gen), bn(out_channels), stride_(stride) {
        this->register_module("0", conv);
        this->register_module("1", bn);
    }

    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return bn(conv(detail::avg_pool(x, stride_))); }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

private:
    index_t stride_;
};

template <Element T = float, Device D = Cpu>
class Bottleneck : public nn::Module<T, D> {
public:
    static constexpr index_t expansion = 4;

    nn::Conv2d<T, D> conv1;
    nn::BatchNorm2d<T, D> bn1;
    nn::Conv2d<T, D> conv2;
    nn::BatchNorm2d<T, D> bn2;
    nn::Conv2d<T, D> conv3;
    nn::BatchNorm2d<T, D> bn3;
    std::unique_ptr<Downsample<T, D>> downsample;  // present when the shape changes

    Bottleneck(index_t inplanes, index_t planes, index_t stride = 1, Generator& gen = default_generator())
        : conv1(inplanes, planes, 1, {}, false, gen),
          bn1(planes),
          conv2(planes, planes, 3, {.padding = {1, 1}}, false, gen),
          bn2(planes),
          conv3(planes, planes * expansion, 1, {}, false, gen),
          bn3(planes * expansion),
          stride_(stride) {
        WEFT_CHECK(stride >= 1, "clip::Bottleneck: stride ", stride, " must be positive");
        this->register_module("conv1", conv1);
        this->register_module("bn1", bn1);
        this->register_module("conv2", conv2);
        this->register_module("bn2", bn2);
        this->register_module("conv3", conv3);
        this->register_module("bn3", bn3);
        if (stride > 1 || inplanes != planes * expansion) {
            downsample = std::make_unique<Downsample<T, D>>(inplanes, planes * expansion, stride, gen);
            this->register_module("downsample", *downsample);
        }
    }

    // [N, inplanes, H, W] -> [N, 4·planes, H/stride, W/stride]
    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
        const Tensor<T, 4, D> a = relu(bn1(conv1(x)));
        const Tensor<T, 4, D> b = relu(bn2(conv2(a)));
        const auto c = bn3(conv3(detail::avg_pool(b, stride_)));  // [N, 4·planes, H/s, W/s]
        const Tensor<T, 4, D> identity = downsample ? (*downsample)(x) : x;
        return eval(relu(c + identity));
    }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

private:
    index_t stride_;
};

}  // namespace weft::clip
