// weft/nn/conv_transpose2d.hpp: `ConvTranspose2d`, the transposed 2-D convolution layer.
//
//   nn::ConvTranspose2d<float> up(256, 128, 2, {.stride = {2, 2}});   // [N, 256, H, W] -> [N, 128, 2H, 2W]
//
// weight [in, out / groups, kh, kw] (PyTorch's layout), bias [out]. Initialised as
// torch.nn.ConvTranspose2d: weight kaiming_uniform_(a = sqrt(5)) and bias uniform on
// ±1/sqrt(fan_in), where PyTorch computes fan_in from the weight's shape as for any
// convolution: weight.size(1) · kh · kw = out / groups · kh · kw.
#pragma once

#include <array>
#include <cmath>

#include "../ops/conv_transpose2d.hpp"
#include "init.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class ConvTranspose2d : public Module<T, D> {
public:
    Tensor<T, 4, D> weight;  // [in_channels, out_channels / groups, kh, kw]
    Tensor<T, 1, D> bias;    // [out_channels]; undefined when bias = false

    ConvTranspose2d(index_t in_channels, index_t out_channels, std::array<index_t, 2> kernel_size,
                    const ConvTranspose2dOptions& options = {}, bool with_bias = true,
                    Generator& gen = default_generator())
        : options_(options) {
        WEFT_CHECK(options.groups >= 1 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
                   "ConvTranspose2d: ", in_channels, " input and ", out_channels,
                   " output channels do not split into ", options.groups, " groups");
        WEFT_CHECK(kernel_size[0] > 0 && kernel_size[1] > 0, "ConvTranspose2d: kernel size [", kernel_size[0], ", ",
                   kernel_size[1], "] must be positive");
        weight = Tensor<T, 4, D>::empty({in_channels, out_channels / options.groups, kernel_size[0], kernel_size[1]});
        init::kaiming_uniform_(weight, {.a = std::sqrt(5.0)}, gen);
        this->register_parameter("weight", weight);
        if (with_bias) {
            bias = Tensor<T, 1, D>::empty({out_channels});
            const double bound = 1.0 / std::sqrt(double(init::calculate_fan_in_and_fan_out(weight).fan_in));
            init::uniform_(bias, -bound, bound, gen);
            this->register_parameter("bias", bias);
        }
    }
    ConvTranspose2d(index_t in_channels, index_t out_channels, index_t kernel_size,
                    const ConvTranspose2dOptions& options = {}, bool with_bias = true,
                    Generator& gen = default_generator())
        : ConvTranspose2d(in_channels, out_channels, {kernel_size, kernel_size}, options, with_bias, gen) {}

    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return conv_transpose2d(x, weight, bias, options_); }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

    const ConvTranspose2dOptions& options() const { return options_; }

private:
    ConvTranspose2dOptions options_;
};

}  // namespace weft::nn
