// weft/nn/dropout.hpp: `Dropout`, which zeroes elements at random while training.
//
//   nn::Dropout<float> drop(0.1);
//   auto y = drop(x);             // training: each element kept with probability 0.9, scaled by 1/0.9
//   drop.eval();                  // evaluation: the identity
//
// The decisions come from a Generator the module refers to (default: the process-wide one;
// set_generator changes it, and the generator must outlive the module's use). sample_axis (0,
// batch-first) names the batch axis of the inputs: data-parallel replicas draw their slice of
// the global batch's mask along it (ops/dropout.hpp); sequence-first layers set 1.
#pragma once

#include "../ops/dropout.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class Dropout : public Module<T, D> {
public:
    explicit Dropout(double p = 0.5, Generator& gen = default_generator()) : p_(p), gen_(&gen) {
        WEFT_CHECK(p >= 0 && p <= 1, "Dropout: probability ", p, " is outside [0, 1]");
    }

    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        return dropout(x, p_, this->is_training(), *gen_, sample_axis_);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }

    double p() const { return p_; }
    void set_generator(Generator& gen) { gen_ = &gen; }
    int sample_axis() const { return sample_axis_; }
    void set_sample_axis(int axis) { sample_axis_ = axis; }

private:
    double p_;
    int sample_axis_ = 0;
    Generator* gen_;
};

}  // namespace weft::nn
