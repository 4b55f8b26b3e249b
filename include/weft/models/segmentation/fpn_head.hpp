// weft/models/segmentation/fpn_head.hpp: `FPNHead`, mmseg's Semantic FPN decode head
// (Kirillov et al. 2019), which turns the FPN pyramid into per-class logits at stride 4.
//
//   seg::FPNHead<float> head({.num_classes = 150});
//   auto logits = head(neck(features));   // 4 x [N, 256, H/s, W/s] -> [N, 150, H/4, W/4]
//
// scale_heads[i] brings level i to the finest stride with max(1, log2(stride_i / stride_0))
// blocks of ConvModule(3x3, pad 1, no bias, BN, ReLU), each followed, for i > 0, by an
// Upsample(x2, bilinear). Then
//   out = scale_heads[0](x_0) + sum_{i>0} resize(scale_heads[i](x_i), size of out, bilinear)
//   logits = conv_seg(dropout2d(out, dropout_ratio))      (conv_seg: Conv1x1 channels -> classes)
// Dropout2d acts in training only. The inputs are picked from the given list by `in_index`
// (mmseg's 'multiple_select'; empty: the first L inputs in order).
//
// Names as mmseg's: conv_seg.{weight,bias} first (BaseDecodeHead creates it before FPNHead adds
// scale_heads), then scale_heads.{i}.{j}.conv.weight and scale_heads.{i}.{j}.bn.* where the
// Upsample stages take the odd indices j (they hold no tensors but occupy a Sequential slot):
// level 3 has blocks at 0, 2, 4. The ConvModules are initialised as mmcv does at construction
// (kaiming_normal_ fan_out relu, BN 1/0); conv_seg keeps PyTorch's default Conv2d init, because
// mmseg's normal(0.01) init_cfg only applies through init_weights(), which DenseCLIP never calls.
//
// Dropout draws from a Generator the head refers to (default: the process-wide one;
// set_generator changes it; it must outlive the head's use).
#pragma once

#include <array>
#include <cmath>
#include <vector>

#include "../../nn/conv2d.hpp"
#include "../../nn/module_list.hpp"
#include "../../nn/sequential.hpp"
#include "../../ops/interpolate.hpp"
#include "conv_module.hpp"
#include "dropout2d.hpp"
#include "resample.hpp"

namespace weft::seg {

struct FPNHeadOptions {
    std::vector<index_t> in_channels{256, 256, 256, 256};
    std::vector<index_t> in_index{};  // empty: inputs 0, 1, ..., one per feature stride
    std::vector<index_t> feature_strides{4, 8, 16, 32};
    index_t channels = 256;
    index_t num_classes = 150;
    double dropout_ratio = 0.1;
    bool align_corners = false;
};

template <Element T = float, Device D = Cpu>
class FPNHead : public nn::Module<T, D> {
public:
    nn::Conv2d<T, D> conv_seg;
    nn::ModuleList<nn::Sequential<T, 4, D>> scale_heads;

    explicit FPNHead(const FPNHeadOptions& options = {}, Generator& gen = default_generator())
        : conv_seg(checked(options).channels, options.num_classes, 1, {}, true, gen), options_(options),
          gen_(&default_generator()) {
        this->register_module("conv_seg", conv_seg);
        this->register_module("scale_heads", scale_heads);
        const auto& strides = options.feature_strides;
        for (std::size_t i = 0; i < strides.size(); ++i) {
            const auto length = std::max<index_t>(
                1, index_t(std::log2(double(strides[i])) - std::log2(double(strides[0]))));
            auto& head = scale_heads.emplace_back();
            for (index_t k = 0; k < length; ++k) {
                head.template emplace_back<ConvModule<T, D>>(
                    k == 0 ? options.in_channels[i] : options.channels, options.channels,
                    ConvModuleOptions{.kernel_size = 3, .padding = 1, .norm = true, .relu = true}, gen);
                if (strides[i] != strides[0])
                    head.template emplace_back<Upsample<T, D>>(2.0, Interpolation::bilinear, options.align_corners);
            }
        }
    }

    // inputs[in_index[i]] : [N, in_channels[i], H / stride_i, W / stride_i]
    //   -> [N, num_classes, H / stride_0, W / stride_0]
    Tensor<T, 4, D> forward(const std::vector<Tensor<T, 4, D>>& inputs) const {
        const auto& o = options_;
        std::vector<Tensor<T, 4, D>> x;
        for (std::size_t i = 0; i < o.feature_strides.size(); ++i) {
            const index_t k = o.in_index.empty() ? index_t(i) : o.in_index[i];
            WEFT_CHECK(k >= 0 && k < index_t(inputs.size()), "FPNHead: in_index ", k, " is out of range for ",
                       inputs.size(), " inputs");
            WEFT_CHECK(inputs[k].size(1) == o.in_channels[i], "FPNHead: input ", k, " of shape ", inputs[k].shape(),
                       " should have ", o.in_channels[i], " channels");
            x.push_back(inputs[k]);
        }
        Tensor<T, 4, D> out = scale_heads[0](x[0]);  // [N, channels, H0, W0]
        const std::array<index_t, 2> size{out.size(2), out.size(3)};
        for (std::size_t i = 1; i < x.size(); ++i) {
            auto level = interpolate(scale_heads[i](x[i]), size, Interpolation::bilinear, o.align_corners);
            WEFT_CHECK(level.size(0) == out.size(0), "FPNHead: input ", i, " of shape ",
                       x[i].shape(), " has another batch size than the first ", x[0].shape());
            out = Tensor<T, 4, D>(out + level);
        }
        out = dropout2d(out, o.dropout_ratio, this->is_training(), *gen_);
        return conv_seg(out);  // [N, num_classes, H0, W0]
    }
    Tensor<T, 4, D> operator()(const std::vector<Tensor<T, 4, D>>& inputs) const { return forward(inputs); }

    const FPNHeadOptions& options() const { return options_; }
    void set_generator(Generator& gen) { gen_ = &gen; }

private:
    static const FPNHeadOptions& checked(const FPNHeadOptions& o) {
        WEFT_CHECK(!o.feature_strides.empty(), "FPNHead: needs at least one feature stride");
        WEFT_CHECK(o.in_channels.size() == o.feature_strides.size() &&
                       (o.in_index.empty() || o.in_index.size() == o.feature_strides.size()),
                   "FPNHead: ", o.in_channels.size(), " in_channels, ", o.in_index.size(), " in_index and ",
                   o.feature_strides.size(), " feature_strides must have the same length");
        for (const index_t s : o.feature_strides)
            WEFT_CHECK(s >= o.feature_strides[0], "FPNHead: the first feature stride (", o.feature_strides[0],
                       ") must be the smallest; got ", s);
        WEFT_CHECK(o.dropout_ratio >= 0 && o.dropout_ratio <= 1, "FPNHead: dropout_ratio ", o.dropout_ratio,
                   " is outside [0, 1]");
        return o;
    }

    FPNHeadOptions options_;
    Generator* gen_;
};

}  // namespace weft::seg
