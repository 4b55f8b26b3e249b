// examples/denseclip/inference.hpp: DenseCLIP's test-time inference (spec §2.9, §5.3): whole or
// sliding-window logits, resized back to the original image, softmax, and optionally averaged
// over scales and horizontal flips.
//
//   denseclip::Inference<float> infer(model, denseclip::InferenceOptions::from(cfg));
//   auto probs = infer.probabilities(rgb);   // [H, W, 3] uint8 -> [K, H, W]
//   auto pred  = infer.predict(rgb);         // [H, W] class indices (uint8)
//
// A model on the GPU (DenseClip<float, Cuda>) infers there: the image is resized and normalised
// on the host (OpenCV's integer resize rule), copied over once, and only the [H, W] prediction
// comes back.
//
// For each scale (1.0, or the config's aug_ratios with --aug) and flip:
//   resize keep-ratio into (img_scale · ratio) with OpenCV's bilinear (mmcv.rescale_size rule),
//   normalise, flip if asked, then
//     whole: logits = encode_decode(image)                  (bilinear back to the resized size)
//     slide: windows of crop_size every stride; the window rule of mmseg
//            (y1 = i·stride, y2 = min(y1 + crop, H), y1 = max(y2 - crop, 0)); overlapping
//            logits are summed and divided by the count of windows at each pixel
//   bilinear resize to the original size, softmax over classes, unflip;
// probabilities of all scales and flips are averaged (mmseg's aug_test), and the argmax is the
// prediction. The model runs in eval mode without gradients.
#pragma once

#include <algorithm>
#include <vector>

#include <weft/autograd/grad_mode.hpp>
#include <weft/data/resize_cv.hpp>
#include <weft/data/seg_transforms.hpp>
#include <weft/expr.hpp>
#include <weft/ops/gather.hpp>
#include <weft/ops/interpolate.hpp>
#include <weft/ops/softmax.hpp>

#include "model.hpp"

namespace denseclip {

struct InferenceOptions {
    std::string mode = "slide";
    std::array<index_t, 2> crop{512, 512}, stride{341, 341};  // (h, w)
    std::array<index_t, 2> img_scale{2048, 512};              // (long, short)
    std::vector<double> ratios{1.0};
    bool flip = false;
    data::Normalize normalize = data::Normalize::clip();

    // The config's test settings; aug: its multi-scale ratios and flip instead of one scale.
    static InferenceOptions from(const DenseClipConfig& c, bool aug = false) {
        InferenceOptions o;
        o.mode = c.test.mode;
        o.crop = c.test.crop_size;
        o.stride = c.test.stride;
        o.img_scale = c.data.img_scale;
        if (aug) {
            o.ratios = c.test.aug_ratios;
            o.flip = c.test.aug_flip;
        }
        o.normalize = {c.data.mean, c.data.std};
        return o;
    }
};

// x [N, C, H, W] mirrored along W.
template <Element T, Device D>
Tensor<T, 4, D> flip_horizontal(const Tensor<T, 4, D>& x) {
    if constexpr (!std::same_as<D, Cpu>) {  // a gather of the columns in reverse order
        const index_t W = x.size(3);
        auto reversed = Tensor<std::int64_t, 1>::empty({W});
        for (index_t j = 0; j < W; ++j) reversed.data()[j] = W - 1 - j;
        return index_select(x, 3, reversed.template to<D>());
    } else {
        const auto src = x.contiguous();
        auto out = Tensor<T, 4>::empty(src.shape());
        const index_t rows = src.size(0) * src.size(1) * src.size(2), W = src.size(3);
        const T* s = src.data();
        T* d = out.data();
        parallel_for(0, rows, 64, [&](index_t b, index_t e) {
            for (index_t r = b; r < e; ++r)
                for (index_t j = 0; j < W; ++j) d[r * W + j] = s[r * W + W - 1 - j];
        });
        return out;
    }
}

template <Element T = float, Device D = Cpu>
class Inference {
public:
    Inference(DenseClip<T, D>& model, InferenceOptions options) : model_(model), o_(std::move(options)) {
        WEFT_CHECK(o_.mode == "whole" || o_.mode == "slide", "denseclip inference: mode '", o_.mode,
                   "' must be whole or slide");
        WEFT_CHECK(o_.crop[0] > 0 && o_.crop[1] > 0 && o_.stride[0] > 0 && o_.stride[1] > 0,
                   "denseclip inference: crop and stride must be positive");
        WEFT_CHECK(!o_.ratios.empty(), "denseclip inference: no scales");
    }

    // Normalised image [1, 3, H, W] -> logits [1, K, H, W] (at the image's size).
    Tensor<T, 4, D> logits(const Tensor<T, 4, D>& image) const {
        return o_.mode == "whole" ? model_.encode_decode(image) : slide(image);
    }

    // An RGB image [H, W, 3] -> class probabilities [K, H, W], averaged over scales and flips.
    Tensor<T, 3, D> probabilities(const Tensor<std::uint8_t, 3>& rgb) const {
        WEFT_CHECK(rgb.size(2) == 3, "denseclip inference: image of shape ", rgb.shape(), " must be [H, W, 3]");
        model_.eval();
        NoGrad no_grad;
        const index_t H = rgb.size(0), W = rgb.size(1);
        Tensor<T, 3, D> sum;
        int n = 0;
        for (double r : o_.ratios) {
            // mmseg's MultiScaleFlipAug: (int(long · r), int(short · r)), then the keep-ratio rule.
            const auto s = data::rescale_size(W, H, index_t(double(o_.img_scale[0]) * r),
                                              index_t(double(o_.img_scale[1]) * r));
            const auto resized = data::resize_bilinear_cv(rgb, s.h, s.w);
            const Tensor<T, 3> chw = cast<T>(o_.normalize(resized));  // [3, h, w]
            const auto image = chw.reshape(1, 3, s.h, s.w).template to<D>();
            for (int f = 0; f < (o_.flip ? 2 : 1); ++f) {
                auto x = f ? flip_horizontal(image) : image;
                auto l = interpolate(logits(x), std::array<index_t, 2>{H, W}, Interpolation::bilinear, false);
                auto p = softmax(l, 1);                                  // [1, K, H, W]
                if (f) p = flip_horizontal(p);
                const auto p3 = p.reshape(p.size(1), H, W);
                if (n == 0) sum = p3.clone(); else sum = sum + p3;
                ++n;
            }
        }
        if (n > 1) sum = sum / T(n);
        return sum;
    }

    // [H, W, 3] -> [H, W] predicted class indices.
    Tensor<std::uint8_t, 2> predict(const Tensor<std::uint8_t, 3>& rgb) const {
        const auto p = probabilities(rgb);
        WEFT_CHECK(p.size(0) <= 255, "denseclip inference: ", p.size(0), " classes do not fit 8-bit predictions");
        const Tensor<std::uint8_t, 2, D> pred = cast<std::uint8_t>(argmax(p, 0));
        return pred.template to<Cpu>();
    }

    const InferenceOptions& options() const { return o_; }

private:
    Tensor<T, 4, D> slide(const Tensor<T, 4, D>& image) const {
        const index_t H = image.size(2), W = image.size(3);
        const auto [ch, cw] = o_.crop;
        const auto [sh, sw] = o_.stride;
        const index_t rows = std::max<index_t>(H - ch + sh - 1, 0) / sh + 1;
        const index_t cols = std::max<index_t>(W - cw + sw - 1, 0) / sw + 1;
        Tensor<T, 4, D> sum;
        auto count = Tensor<T, 2, D>::zeros({H, W});
        for (index_t i = 0; i < rows; ++i) {
            for (index_t j = 0; j < cols; ++j) {
                index_t y1 = i * sh, x1 = j * sw;
                const index_t y2 = std::min(y1 + ch, H), x2 = std::min(x1 + cw, W);
                y1 = std::max<index_t>(y2 - ch, 0);
                x1 = std::max<index_t>(x2 - cw, 0);
                const auto window = image.narrow(2, y1, y2 - y1).narrow(3, x1, x2 - x1).contiguous();
                const auto l = model_.encode_decode(window);  // [1, K, y2 - y1, x2 - x1]
                if (!sum.defined()) sum = Tensor<T, 4, D>::zeros({1, l.size(1), H, W});
                auto region = sum.narrow(2, y1, y2 - y1).narrow(3, x1, x2 - x1);
                region = region + l;
                auto c = count.narrow(0, y1, y2 - y1).narrow(1, x1, x2 - x1);
                c = c + T(1);
            }
        }
        return eval(sum / count.reshape(1, 1, H, W));
    }

    DenseClip<T, D>& model_;
    InferenceOptions o_;
};

}  // namespace denseclip
