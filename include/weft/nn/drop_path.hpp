// weft/nn/drop_path.hpp: `DropPath` (stochastic depth), which drops whole samples of a
// residual branch while training.
//
//   nn::DropPath<float> dp(0.1);          // x [N, ...]: one decision per sample
//   nn::DropPath<float> dp_seq(0.1, 1);   // x [L, N, C] (sequence first): samples on axis 1
//   nn::DropPath<float> dp_tok(0.1, 1, gen, 0);  // x [N, L, C]: one decision per token, shared by the batch
//   x = x + dp(branch(x));
//
// As timm's DropPath: kept samples are scaled by 1 / (1 - p); evaluation is the identity. The
// Generator is referred to as Dropout's is. `batch_axis` (default: the sample axis) names the
// batch when the decisions are not per sample; it matters only to data-parallel replicas, which
// split the batch (ops/dropout.hpp).
#pragma once

#include <optional>

#include "../ops/dropout.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class DropPath : public Module<T, D> {
public:
    explicit DropPath(double p = 0.0, int sample_axis = 0, Generator& gen = default_generator(),
                      std::optional<int> batch_axis = std::nullopt)
        : p_(p), sample_axis_(sample_axis), batch_axis_(batch_axis), gen_(&gen) {
        WEFT_CHECK(p >= 0 && p <= 1, "DropPath: probability ", p, " is outside [0, 1]");
    }

    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        return drop_path(x, p_, this->is_training(), *gen_, sample_axis_, batch_axis_);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }

    double p() const { return p_; }
    int sample_axis() const { return sample_axis_; }
    void set_generator(Generator& gen) { gen_ = &gen; }

private:
    double p_;
    int sample_axis_;
    std::optional<int> batch_axis_;
    Generator* gen_;
};

}  // namespace weft::nn
