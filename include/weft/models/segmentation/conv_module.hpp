// weft/models/segmentation/conv_module.hpp: `ConvModule`, the conv [+ BN] [+ ReLU] block of
// mmcv that mmseg's FPN neck and FPNHead are built from.
//
//   seg::ConvModule<float> lateral(768, 256, {.kernel_size = 1});                        // conv + bias
//   seg::ConvModule<float> block(256, 128, {.kernel_size = 3, .padding = 1, .norm = true, .relu = true});
//   auto y = block(x);                                     // [N, 256, H, W] -> [N, 128, H, W]
//
// The subset of mmcv.cnn.ConvModule that mmseg's Semantic FPN uses: order ("conv", "norm",
// "act"), BatchNorm2d as the only norm (SyncBN trains as BN on one process), ReLU as the only
// activation. State names are mmcv's: conv.weight, conv.bias, bn.weight, bn.bias,
// bn.running_mean, bn.running_var, bn.num_batches_tracked, so mmseg checkpoints load by name.
// The bias follows mmcv's bias='auto': present exactly when there is no norm (the norm's shift
// makes it redundant), unless `bias` says otherwise.
//
// Initialised at construction as mmcv does (ConvModule.init_weights runs in its __init__):
// conv weight kaiming_normal_(mode fan_out, nonlinearity relu), conv bias 0, BN weight 1 and
// bias 0. mmcv picks the relu gain even when there is no activation, so every ConvModule here
// gets it.
#pragma once

#include <memory>
#include <optional>

#include "../../nn/batch_norm2d.hpp"
#include "../../nn/conv2d.hpp"
#include "../../nn/init.hpp"
#include "../../nn/module.hpp"

namespace weft::seg {

struct ConvModuleOptions {
    index_t kernel_size = 1;
    index_t stride = 1;
    index_t padding = 0;
    bool norm = false;               // BatchNorm2d after the convolution ("bn")
    bool relu = false;               // ReLU last
    std::optional<bool> bias = {};   // default (mmcv's 'auto'): a bias exactly when there is no norm
};

template <Element T = float, Device D = Cpu>
class ConvModule : public nn::Module<T, D> {
public:
    nn::Conv2d<T, D> conv;
    std::unique_ptr<nn::BatchNorm2d<T, D>> bn;  // null without norm

    ConvModule(index_t in_channels, index_t out_channels, const ConvModuleOptions& options = {},
               Generator& gen = default_generator())
        : conv(in_channels, out_channels, options.kernel_size,
               {.stride = {options.stride, options.stride}, .padding = {options.padding, options.padding}},
               options.bias.value_or(!options.norm), gen),
          relu_(options.relu) {
        // mmcv re-initialises the freshly built conv; the default init drawn above is overwritten.
        nn::init::kaiming_normal_(conv.weight,
                                  {.a = 0.0, .mode = nn::init::FanMode::fan_out,
                                   .nonlinearity = nn::init::Nonlinearity::relu},
                                  gen);
        if (conv.bias.defined()) nn::init::zeros_(conv.bias);
        this->register_module("conv", conv);
        if (options.norm) {
            bn = std::make_unique<nn::BatchNorm2d<T, D>>(out_channels);  // weight 1, bias 0 (mmcv's constant_init)
            this->register_module("bn", *bn);
        }
    }

    // [N, in, H, W] -> [N, out, H', W']
    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
        Tensor<T, 4, D> y = conv(x);
        if (bn) y = bn->forward(y);
        if (relu_) y = Tensor<T, 4, D>(relu(y));
        return y;
    }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

    bool has_norm() const { return bn != nullptr; }
    bool has_relu() const { return relu_; }

private:
    bool relu_;
};

}  // namespace weft::seg
