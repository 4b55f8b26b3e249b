// weft/nn/group_norm.hpp: `GroupNorm`, normalization over groups of channels.
//
//   nn::GroupNorm<float> gn(32, 256);        // 32 groups of 8 channels; weight, bias [256]
//   auto y = gn(x);                          // [N, 256, *spatial] -> same shape
//
// As torch.nn.GroupNorm(num_groups, num_channels, eps, affine): weight ones, bias zeros.
#pragma once

#include "../ops/group_norm.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class GroupNorm : public Module<T, D> {
public:
    Tensor<T, 1, D> weight;  // [C], ones; undefined without affine
    Tensor<T, 1, D> bias;    // [C], zeros; undefined without affine

    GroupNorm(index_t groups, index_t channels, double eps = 1e-5, bool affine = true)
        : groups_(groups), channels_(channels), eps_(eps) {
        WEFT_CHECK(groups > 0 && channels % groups == 0, "GroupNorm: ", channels,
                   " channels do not split into ", groups, " groups");
        if (affine) {
            weight = Tensor<T, 1, D>::ones({channels});
            bias = Tensor<T, 1, D>::zeros({channels});
            this->register_parameter("weight", weight);
            this->register_parameter("bias", bias);
        }
    }

    template <int R>
    Tensor<T, R, D> forward(const Tensor<T, R, D>& x) const {
        static_assert(R >= 2, "weft: GroupNorm takes [N, C, *spatial] inputs (rank 2 or more)");
        WEFT_CHECK(x.size(1) == channels_, "GroupNorm(", groups_, ", ", channels_, "): input of shape ", x.shape(),
                   " has ", x.size(1), " channels");
        return group_norm(x, groups_, weight, bias, eps_);
    }
    template <int R>
    Tensor<T, R, D> operator()(const Tensor<T, R, D>& x) const {
        return forward(x);
    }

    index_t groups() const { return groups_; }
    index_t channels() const { return channels_; }

private:
    index_t groups_, channels_;
    double eps_;
};

}  // namespace weft::nn
