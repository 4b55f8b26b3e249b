// weft/nn/activation.hpp: element-wise activations as modules (ReLU, GELU, QuickGELU), for
// Sequential and for layers that choose their activation by name.
//
//   nn::Sequential<float, 2> mlp;
//   mlp.emplace_back<nn::Linear<float>>(64, 256);
//   mlp.emplace_back<nn::GELU<float>>();
//
// Each forward is one fused element-wise loop (weft's expressions) that differentiates itself.
// GELU is exact (x·Φ(x)) by default, as torch.nn.GELU(); GeluApproximation::tanh gives
// torch.nn.GELU(approximate='tanh'). QuickGELU is x·sigmoid(1.702·x), the activation of
// OpenAI's CLIP.
#pragma once

#include <numbers>

#include "../expr.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class ReLU : public Module<T, D> {
public:
    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        return relu(x);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }
};

enum class GeluApproximation { none, tanh };

template <Element T = float, Device D = Cpu>
class GELU : public Module<T, D> {
public:
    explicit GELU(GeluApproximation approximate = GeluApproximation::none) : approximate_(approximate) {}

    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        if (approximate_ == GeluApproximation::none) return gelu(x);
        // 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))
        const double k = std::sqrt(2.0 / std::numbers::pi);
        return x * 0.5 * (tanh((x + x * x * x * 0.044715) * k) + 1.0);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }

    GeluApproximation approximate() const { return approximate_; }

private:
    GeluApproximation approximate_;
};

template <Element T = float, Device D = Cpu>
class QuickGELU : public Module<T, D> {
public:
    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        return quick_gelu(x);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }
};

}  // namespace weft::nn
