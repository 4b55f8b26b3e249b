// weft/nn/linear.hpp: `Linear`, y = x·weightᵀ + bias over the last axis.
//
//   nn::Linear<float> fc(512, 256);         // weight [256, 512], bias [256]
//   auto y = fc(x);                         // [..., 512] -> [..., 256], any rank >= 1
//
// Initialised as torch.nn.Linear: weight kaiming_uniform_(a = sqrt(5)), which is uniform on
// ±1/sqrt(in_features), and bias uniform on the same bound.
#pragma once

#include <cmath>

#include "../ops/matmul.hpp"
#include "init.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class Linear : public Module<T, D> {
public:
    Tensor<T, 2, D> weight;  // [out_features, in_features]
    Tensor<T, 1, D> bias;    // [out_features]; undefined when bias = false

    Linear(index_t in_features, index_t out_features, bool with_bias = true, Generator& gen = default_generator())
        : in_features_(in_features), out_features_(out_features) {
        WEFT_CHECK(in_features >= 0 && out_features >= 0, "Linear: negative size (", in_features, " -> ",
                   out_features, ")");
        weight = Tensor<T, 2, D>::empty({out_features, in_features});
        if (in_features > 0) init::kaiming_uniform_(weight, {.a = std::sqrt(5.0)}, gen);
        else init::zeros_(weight);
        this->register_parameter("weight", weight);
        if (with_bias) {
            bias = Tensor<T, 1, D>::empty({out_features});
            const double bound = in_features > 0 ? 1.0 / std::sqrt(double(in_features)) : 0.0;
            init::uniform_(bias, -bound, bound, gen);
            this->register_parameter("bias", bias);
        }
    }

    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        return linear(x, weight, bias);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }

    index_t in_features() const { return in_features_; }
    index_t out_features() const { return out_features_; }

private:
    index_t in_features_, out_features_;
};

}  // namespace weft::nn
