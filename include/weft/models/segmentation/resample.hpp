// weft/models/segmentation/resample.hpp: the parameter-free resampling stages that sit inside
// the Sequentials of the segmentation modules: `Upsample` (mmseg's) and `MaxPool2d`.
//
//   nn::Sequential<float, 4> head;
//   head.emplace_back<seg::ConvModule<float>>(256, 128, opts);   // "0.conv.weight", ...
//   head.emplace_back<seg::Upsample<float>>(2);                   // "1" (no tensors, but an index)
//
// They are modules only so that they occupy an index of a Sequential as their PyTorch
// counterparts do; the names of the stages after them then match the checkpoints.
//
// Upsample is mmseg.ops.Upsample with a scale factor: the output size is computed first,
// floor(H * scale) x floor(W * scale), and the image resized to that size (bilinear by default,
// align_corners false), so the source step is in / out, as mmseg's resize(size=...) does.
// MaxPool2d is torch.nn.MaxPool2d(kernel, stride) without padding.
#pragma once

#include <array>
#include <cmath>

#include "../../nn/module.hpp"
#include "../../ops/interpolate.hpp"
#include "../../ops/pool.hpp"

namespace weft::seg {

template <Element T = float, Device D = Cpu>
class Upsample : public nn::Module<T, D> {
public:
    explicit Upsample(double scale_factor = 2.0, Interpolation mode = Interpolation::bilinear,
                      bool align_corners = false)
        : scale_(scale_factor), mode_(mode), align_corners_(align_corners) {
        WEFT_CHECK(scale_factor > 0 && std::isfinite(scale_factor), "Upsample: scale factor ", scale_factor,
                   " must be positive and finite");
    }

    // [N, C, H, W] -> [N, C, floor(H * scale), floor(W * scale)]
    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
        const std::array<index_t, 2> size{index_t(std::floor(double(x.size(2)) * scale_)),
                                          index_t(std::floor(double(x.size(3)) * scale_))};
        return interpolate(x, size, mode_, align_corners_);
    }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

    double scale_factor() const { return scale_; }

private:
    double scale_;
    Interpolation mode_;
    bool align_corners_;
};

template <Element T = float, Device D = Cpu>
class MaxPool2d : public nn::Module<T, D> {
public:
    explicit MaxPool2d(index_t kernel_size, index_t stride = 0 /* 0: the kernel size */)
        : opts_{.kernel = {kernel_size, kernel_size}, .stride = {stride, stride}} {
        WEFT_CHECK(kernel_size > 0 && stride >= 0, "MaxPool2d: kernel ", kernel_size, " and stride ", stride,
                   " must be positive");
    }

    // [N, C, H, W] -> [N, C, (H - k) / s + 1, (W - k) / s + 1]
    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return max_pool2d(x, opts_); }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

private:
    Pool2dOptions opts_;
};

}  // namespace weft::seg
