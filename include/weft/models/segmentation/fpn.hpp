// weft/models/segmentation/fpn.hpp: `FPN`, mmseg's feature pyramid neck (Lin et al. 2017) as
// DenseCLIP configures it: no norm, no activation, no extra convolutions.
//
//   seg::FPN<float> neck({768, 768, 918, 768}, 256);                  // DenseCLIP ViT-B/16
//   auto outs = neck({c2, c3, c4, c5});   // strides 4..32, any channels -> 4 x [N, 256, H_i, W_i]
//
// For levels i = 0..L-1:
//   lateral_i = Conv1x1(in_i -> out, bias)(x_i)
//   for i = L-1 .. 1:  lateral_{i-1} += interpolate(lateral_i, size of lateral_{i-1}, nearest)
//   out_i = Conv3x3 pad 1(out -> out, bias)(lateral_i)
// The top-down sum is cumulative (level i-1 receives level i after level i received i+1), and
// the nearest resize is PyTorch's (floor of d * in / out). With num_outs > L the extra outputs
// are max_pool2d(kernel 1, stride 2) of the last one, as mmseg does without add_extra_convs.
//
// Names as mmseg's: lateral_convs.{i}.conv.{weight,bias}, then fpn_convs.{i}.conv.{weight,bias}
// (both ModuleLists are created before either is filled). All convolutions are mmcv
// ConvModules, so they are initialised at construction with kaiming_normal_ (fan_out, relu) and
// zero bias; mmseg's Xavier init_cfg for FPN only applies when init_weights() is called, which
// DenseCLIP's training script never does.
#pragma once

#include <utility>
#include <vector>

#include "../../nn/module_list.hpp"
#include "../../ops/interpolate.hpp"
#include "../../ops/pool.hpp"
#include "conv_module.hpp"

namespace weft::seg {

template <Element T = float, Device D = Cpu>
class FPN : public nn::Module<T, D> {
public:
    nn::ModuleList<ConvModule<T, D>> lateral_convs;
    nn::ModuleList<ConvModule<T, D>> fpn_convs;

    FPN(std::vector<index_t> in_channels, index_t out_channels = 256, index_t num_outs = -1 /* -1: one per input */,
        Generator& gen = default_generator())
        : in_channels_(std::move(in_channels)), out_channels_(out_channels),
          num_outs_(num_outs < 0 ? index_t(in_channels_.size()) : num_outs) {
        WEFT_CHECK(!in_channels_.empty(), "FPN: needs at least one input level");
        WEFT_CHECK(num_outs_ >= index_t(in_channels_.size()), "FPN: num_outs ", num_outs_, " is less than the ",
                   in_channels_.size(), " input levels");
        this->register_module("lateral_convs", lateral_convs);
        this->register_module("fpn_convs", fpn_convs);
        for (const index_t c : in_channels_) {
            lateral_convs.emplace_back(c, out_channels, ConvModuleOptions{.kernel_size = 1}, gen);
            fpn_convs.emplace_back(out_channels, out_channels, ConvModuleOptions{.kernel_size = 3, .padding = 1}, gen);
        }
    }

    // L x [N, in_i, H_i, W_i] (finest first) -> num_outs x [N, out, H_i, W_i]
    std::vector<Tensor<T, 4, D>> forward(const std::vector<Tensor<T, 4, D>>& inputs) const {
        const std::size_t levels = in_channels_.size();
        WEFT_CHECK(inputs.size() == levels, "FPN: expected ", levels, " input levels, got ", inputs.size());
        std::vector<Tensor<T, 4, D>> laterals;
        laterals.reserve(levels);
        for (std::size_t i = 0; i < levels; ++i) {
            WEFT_CHECK(inputs[i].size(1) == in_channels_[i], "FPN: level ", i, " input of shape ", inputs[i].shape(),
                       " should have ", in_channels_[i], " channels");
            WEFT_CHECK(i == 0 || inputs[i].size(0) == inputs[0].size(0), "FPN: level ", i, " input of shape ",
                       inputs[i].shape(), " has another batch size than level 0 ", inputs[0].shape());
            laterals.push_back(lateral_convs[i](inputs[i]));  // [N, out, H_i, W_i]
        }
        for (std::size_t i = levels - 1; i > 0; --i) {
            const auto& below = laterals[i - 1];
            auto up = interpolate(laterals[i], std::array<index_t, 2>{below.size(2), below.size(3)},
                                  Interpolation::nearest);
            laterals[i - 1] = Tensor<T, 4, D>(below + up);  // a new tensor: the old one stays on the tape
        }
        std::vector<Tensor<T, 4, D>> outs;
        outs.reserve(std::size_t(num_outs_));
        for (std::size_t i = 0; i < levels; ++i) outs.push_back(fpn_convs[i](laterals[i]));
        while (outs.size() < std::size_t(num_outs_))
            outs.push_back(max_pool2d(outs.back(), Pool2dOptions{.kernel = {1, 1}, .stride = {2, 2}}));
        return outs;
    }
    std::vector<Tensor<T, 4, D>> operator()(const std::vector<Tensor<T, 4, D>>& inputs) const {
        return forward(inputs);
    }

    const std::vector<index_t>& in_channels() const { return in_channels_; }
    index_t out_channels() const { return out_channels_; }
    index_t num_outs() const { return num_outs_; }

private:
    std::vector<index_t> in_channels_;
    index_t out_channels_;
    index_t num_outs_;
};

}  // namespace weft::seg
