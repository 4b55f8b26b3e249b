// weft/nn/layer_norm.hpp: `LayerNorm` over the last axis.
//
//   nn::LayerNorm<float> ln(768);            // weight (ones) and bias (zeros), [768]
//   auto y = ln(x);                          // [..., 768] -> [..., 768]
//
// As torch.nn.LayerNorm(C, eps, elementwise_affine) with a one-axis normalized_shape (what
// transformers use); affine = false registers no tensors.
#pragma once

#include "../ops/layer_norm.hpp"
#include "init.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class LayerNorm : public Module<T, D> {
public:
    Tensor<T, 1, D> weight;  // [C], ones; undefined without affine
    Tensor<T, 1, D> bias;    // [C], zeros; undefined without affine

    explicit LayerNorm(index_t channels, double eps = 1e-5, bool affine = true) : channels_(channels), eps_(eps) {
        WEFT_CHECK(channels > 0, "LayerNorm: the normalized axis needs a positive size, got ", channels);
        if (affine) {
            weight = Tensor<T, 1, D>::ones({channels});
            bias = Tensor<T, 1, D>::zeros({channels});
            this->register_parameter("weight", weight);
            this->register_parameter("bias", bias);
        }
    }

    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        WEFT_CHECK(x.size(R - 1) == channels_, "LayerNorm(", channels_, "): input of shape ", x.shape(),
                   " has ", x.size(R - 1), " elements on its last axis");
        return layer_norm(x, weight, bias, eps_);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }

    index_t channels() const { return channels_; }
    double eps() const { return eps_; }

private:
    index_t channels_;
    double eps_;
};

}  // namespace weft::nn
