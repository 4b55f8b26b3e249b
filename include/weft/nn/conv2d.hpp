// weft/nn/conv2d.hpp: `Conv2d`, a 2-D convolution layer over [N, C, H, W].
//
//   nn::Conv2d<float> conv(3, 64, 7, {.stride = {2, 2}, .padding = {3, 3}}, false);  // ResNet stem
//   auto y = conv(x);                                        // [N, 3, H, W] -> [N, 64, H/2, W/2]
//
// weight [out, in / groups, kh, kw], bias [out]; zero padding (PyTorch's padding_mode
// "zeros"). Initialised as torch.nn.Conv2d: weight kaiming_uniform_(a = sqrt(5)), bias uniform
// on ±1/sqrt(fan_in), fan_in = in / groups · kh · kw.
#pragma once

#include <array>
#include <cmath>

#include "../ops/conv2d.hpp"
#include "init.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class Conv2d : public Module<T, D> {
public:
    Tensor<T, 4, D> weight;  // [out_channels, in_channels / groups, kh, kw]
    Tensor<T, 1, D> bias;    // [out_channels]; undefined when bias = false

    Conv2d(index_t in_channels, index_t out_channels, std::array<index_t, 2> kernel_size,
           const Conv2dOptions& options = {}, bool with_bias = true, Generator& gen = default_generator())
        : options_(options) {
        WEFT_CHECK(options.groups >= 1 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
                   "Conv2d: ", in_channels, " input and ", out_channels, " output channels do not split into ",
                   options.groups, " groups");
        WEFT_CHECK(kernel_size[0] > 0 && kernel_size[1] > 0, "Conv2d: kernel size [", kernel_size[0], ", ",
                   kernel_size[1], "] must be positive");
        weight = Tensor<T, 4, D>::empty({out_channels, in_channels / options.groups, kernel_size[0], kernel_size[1]});
        init::kaiming_uniform_(weight, {.a = std::sqrt(5.0)}, gen);
        this->register_parameter("weight", weight);
        if (with_bias) {
            bias = Tensor<T, 1, D>::empty({out_channels});
            const double bound = 1.0 / std::sqrt(double(init::calculate_fan_in_and_fan_out(weight).fan_in));
            init::uniform_(bias, -bound, bound, gen);
            this->register_parameter("bias", bias);
        }
    }
    Conv2d(index_t in_channels, index_t out_channels, index_t kernel_size, const Conv2dOptions& options = {},
           bool with_bias = true, Generator& gen = default_generator())
        : Conv2d(in_channels, out_channels, {kernel_size, kernel_size}, options, with_bias, gen) {}

    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return conv2d(x, weight, bias, options_); }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

    const Conv2dOptions& options() const { return options_; }

private:
    Conv2dOptions options_;
};

}  // namespace weft::nn
