// weft/data/seg_transforms.hpp: mmseg's segmentation transforms and the DenseCLIP ADE20K
// pipelines built from them.
//
//   SegTrainPipeline train;                          // ADE20K 512x512 (ViT: SegTrainPipeline::vit640())
//   SegTensors t = train(ade.get(i), rng);          // image [3, 512, 512] float, label [512, 512]
//   SegTensors v = SegTestPipeline{}(ade.get(i));   // resized to fit (2048, 512), label untouched
//
// Training (mmseg 0.x, DenseCLIP's configs/_base_/datasets/ade20k_clip.py):
//   1. RatioResize: r = U[0.5, 2.0); scale (int(2048 r), int(512 r)); keep-ratio size by
//      mmcv.rescale_size (resize_cv.hpp); image bilinear, label nearest, both OpenCV-exact.
//   2. RandomCrop 512x512, cat_max_ratio 0.75: offsets U{0..H-512} x U{0..W-512} (0 when the
//      image is smaller, and the crop is then the whole extent); up to 10 times a box is rejected
//      while its labels (255 excluded) hold fewer than two classes or one class covers 75% or
//      more, and a new one drawn; after 10 rejections the 11th box is used unchecked.
//   3. RandomFlip: horizontal with probability 0.5.
//   4. PhotoMetricDistortion (photometric.hpp).
//   5. Normalize: (x - mean) * (1 / std) per channel as cv2 rounds it, RGB order, to [3, H, W].
//   6. Pad at the bottom and right to 512x512: image with 0 (after normalising: the mean
//      colour), label with 255.
// Images stay RGB throughout (mmseg: BGR until Normalize's to_rgb); every step is either
// per-channel or told the order, so the numbers are the same. Randomness comes from the
// sample's SampleRandom, drawn in mmseg's order.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"
#include "ade20k.hpp"
#include "photometric.hpp"
#include "resize_cv.hpp"
#include "sample_random.hpp"

namespace weft::data {

// A transformed sample, ready to batch.
struct SegTensors {
    Tensor<float, 3> image;         // [3, H, W] normalised RGB
    Tensor<std::uint8_t, 2> label;  // [H, W] class indices, 255 = ignore
    std::string name;
};

// mmcv.imrescale of image (bilinear) and label (nearest) to fit the (long, short) scale pair.
inline SegSample rescale_keep_ratio(const SegSample& s, index_t scale_long, index_t scale_short) {
    WEFT_CHECK(s.image.defined(), "rescale_keep_ratio: the sample '", s.name, "' has no image");
    const Rescaled r = rescale_size(s.image.size(1), s.image.size(0), scale_long, scale_short);
    SegSample out;
    out.name = s.name;
    out.image = resize_bilinear_cv(s.image, r.h, r.w);
    if (s.label.defined()) out.label = resize_nearest_cv(s.label, r.h, r.w);
    return out;
}

// mmseg Resize(img_scale=(long, short), ratio_range=(min, max), keep_ratio=True).
struct RatioResize {
    index_t scale_long = 2048, scale_short = 512;
    double ratio_min = 0.5, ratio_max = 2.0;

    SegSample operator()(const SegSample& s, SampleRandom& rng) const {
        const double ratio = rng.uniform() * (ratio_max - ratio_min) + ratio_min;
        return rescale_keep_ratio(s, index_t(double(scale_long) * ratio), index_t(double(scale_short) * ratio));
    }
};

// Rows [y0, y1) and columns [x0, x1) of a crop.
struct CropBox {
    index_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};

// The crop of both image and label (copied, contiguous). The box is clipped to the image, as a
// numpy slice is.
inline SegSample crop(const SegSample& s, CropBox b) {
    const index_t h = s.image.size(0), w = s.image.size(1);
    const index_t y1 = std::min(b.y1, h), x1 = std::min(b.x1, w);
    WEFT_CHECK(b.y0 >= 0 && b.x0 >= 0 && b.y0 < y1 && b.x0 < x1, "crop: box rows [", b.y0, ", ", b.y1, ") columns [",
               b.x0, ", ", b.x1, ") is empty or outside the image of shape ", s.image.shape(), " ('", s.name, "')");
    SegSample out;
    out.name = s.name;
    out.image = s.image.narrow(0, b.y0, y1 - b.y0).narrow(1, b.x0, x1 - b.x0).clone();
    if (s.label.defined()) out.label = s.label.narrow(0, b.y0, y1 - b.y0).narrow(1, b.x0, x1 - b.x0).clone();
    return out;
}

// mmseg RandomCrop(crop_size, cat_max_ratio).
struct RandomCrop {
    index_t crop_h = 512, crop_w = 512;
    double cat_max_ratio = 0.75;
    int ignore_index = 255;

    CropBox random_box(index_t h, index_t w, SampleRandom& rng) const {
        const index_t margin_h = std::max<index_t>(h - crop_h, 0), margin_w = std::max<index_t>(w - crop_w, 0);
        const index_t oy = rng.randint(0, margin_h + 1), ox = rng.randint(0, margin_w + 1);
        return {oy, oy + crop_h, ox, ox + crop_w};
    }

    // Whether a box passes the category-ratio test: two or more classes, none with a share of
    // cat_max_ratio or more (ignored pixels not counted).
    bool accepts(const Tensor<std::uint8_t, 2>& label, CropBox b) const {
        const index_t y1 = std::min(b.y1, label.size(0)), x1 = std::min(b.x1, label.size(1));
        std::array<index_t, 256> count{};
        for (index_t y = b.y0; y < y1; ++y)
            for (index_t x = b.x0; x < x1; ++x) ++count[label(y, x)];
        index_t classes = 0, total = 0, most = 0;
        for (int v = 0; v < 256; ++v) {
            if (v == ignore_index || count[std::size_t(v)] == 0) continue;
            ++classes;
            total += count[std::size_t(v)];
            most = std::max(most, count[std::size_t(v)]);
        }
        return classes > 1 && double(most) / double(total) < cat_max_ratio;
    }

    CropBox choose(const SegSample& s, SampleRandom& rng) const {
        const index_t h = s.image.size(0), w = s.image.size(1);
        CropBox b = random_box(h, w, rng);
        if (cat_max_ratio < 1.0 && s.label.defined()) {
            const auto label = s.label.contiguous();
            for (int attempt = 0; attempt < 10; ++attempt) {
                if (accepts(label, b)) break;
                b = random_box(h, w, rng);
            }
        }
        return b;
    }

    SegSample operator()(const SegSample& s, SampleRandom& rng) const { return crop(s, choose(s, rng)); }
};

// Mirror left-right (image and label), copied.
inline SegSample flip_horizontal(const SegSample& s) {
    SegSample out;
    out.name = s.name;
    const auto img = s.image.contiguous();
    const index_t h = img.size(0), w = img.size(1), c = img.size(2);
    out.image = Tensor<std::uint8_t, 3>::empty(img.shape());
    const std::uint8_t* src = img.data();
    std::uint8_t* dst = out.image.data();
    parallel_for(0, h, 64, [&](index_t b, index_t e) {
        for (index_t y = b; y < e; ++y) {
            const std::uint8_t* r = src + y * w * c;
            std::uint8_t* o = dst + y * w * c;
            for (index_t x = 0; x < w; ++x) std::copy_n(r + (w - 1 - x) * c, c, o + x * c);
        }
    });
    if (s.label.defined()) {
        const auto lab = s.label.contiguous();
        out.label = Tensor<std::uint8_t, 2>::empty(lab.shape());
        for (index_t y = 0; y < h; ++y) std::reverse_copy(lab.data() + y * w, lab.data() + (y + 1) * w, out.label.data() + y * w);
    }
    return out;
}

// mmseg RandomFlip(prob): flips when U[0, 1) < prob (numpy rand() < prob).
struct RandomFlip {
    double prob = 0.5;
    SegSample operator()(const SegSample& s, SampleRandom& rng) const {
        return rng.uniform() < prob ? flip_horizontal(s) : s;
    }
};

// mmcv.imnormalize: cv2.subtract(float32 image, double mean) computes float32(x) - float32(mean);
// cv2.multiply(.., double 1/std) multiplies in double and rounds to float (both measured against
// cv2 4.6: any other order differs in the last bit on ~10% of the values). Per RGB channel;
// [H, W, 3] uint8 -> [3, H, W] float.
struct Normalize {
    std::array<double, 3> mean{122.7709383, 116.7460125, 104.09373615};  // RGB
    std::array<double, 3> std{68.5005327, 66.6321579, 70.32316305};

    // CLIP's statistics times 255: what DenseCLIP's ADE20K configs use.
    static Normalize clip() { return {}; }
    // ImageNet statistics: mmseg's default img_norm_cfg.
    static Normalize imagenet() { return {{123.675, 116.28, 103.53}, {58.395, 57.12, 57.375}}; }

    Tensor<float, 3> operator()(const Tensor<std::uint8_t, 3>& rgb) const {
        WEFT_CHECK(rgb.defined() && rgb.size(2) == 3, "Normalize: expects an [H, W, 3] RGB image, got ", rgb.shape());
        const auto in = rgb.contiguous();
        const index_t h = in.size(0), w = in.size(1);
        auto out = Tensor<float, 3>::empty(Shape<3>{3, h, w});  // [3, H, W]
        const std::uint8_t* s = in.data();
        float* o = out.data();
        const float m[3] = {float(mean[0]), float(mean[1]), float(mean[2])};
        const double inv[3] = {1.0 / std[0], 1.0 / std[1], 1.0 / std[2]};
        parallel_for(0, h, 16, [&](index_t b, index_t e) {
            for (index_t y = b; y < e; ++y)
                for (index_t k = 0; k < 3; ++k) {
                    float* row = o + (k * h + y) * w;
                    const std::uint8_t* src = s + y * w * 3 + k;
                    for (index_t x = 0; x < w; ++x) {
                        const float d = float(src[3 * x]) - m[k];
                        row[x] = float(double(d) * inv[k]);
                    }
                }
        });
        return out;
    }
};

// mmcv.impad at the bottom and right to [h, w]: image channels with `value`, label with
// `label_value`. Larger inputs are an error (mmseg's Pad asserts the same).
inline SegTensors pad_to(const SegTensors& t, index_t h, index_t w, float value = 0.f, std::uint8_t label_value = 255) {
    const index_t ih = t.image.size(1), iw = t.image.size(2);
    WEFT_CHECK(ih <= h && iw <= w, "pad_to: the image of shape ", t.image.shape(), " ('", t.name,
               "') is larger than the padded size ", h, "x", w);
    SegTensors out;
    out.name = t.name;
    const index_t c = t.image.size(0);
    out.image = Tensor<float, 3>::full(Shape<3>{c, h, w}, value);  // [C, h, w]
    const auto src = t.image.contiguous();
    for (index_t k = 0; k < c; ++k)
        for (index_t y = 0; y < ih; ++y)
            std::copy_n(src.data() + (k * ih + y) * iw, iw, out.image.data() + (k * h + y) * w);
    if (t.label.defined()) {
        WEFT_CHECK(t.label.size(0) == ih && t.label.size(1) == iw, "pad_to: label of shape ", t.label.shape(),
                   " and image of shape ", t.image.shape(), " differ ('", t.name, "')");
        out.label = Tensor<std::uint8_t, 2>::full(Shape<2>{h, w}, label_value);
        const auto lab = t.label.contiguous();
        for (index_t y = 0; y < ih; ++y) std::copy_n(lab.data() + y * iw, iw, out.label.data() + y * w);
    }
    return out;
}

// The DenseCLIP ADE20K training pipeline (default 512; vit640() for ViT-B/16's 640).
struct SegTrainPipeline {
    RatioResize resize{};
    RandomCrop crop{};
    RandomFlip flip{};
    PhotoMetricDistortion photometric{};
    Normalize normalize = Normalize::clip();

    static SegTrainPipeline vit640() {
        SegTrainPipeline p;
        p.resize.scale_short = 640;
        p.crop.crop_h = p.crop.crop_w = 640;
        return p;
    }

    SegTensors operator()(const SegSample& s, SampleRandom& rng) const {
        WEFT_CHECK(s.image.defined() && s.label.defined(), "SegTrainPipeline: the sample '", s.name,
                   "' needs an image and a label");
        SegSample x = resize(s, rng);
        x = crop(x, rng);
        x = flip(x, rng);
        x.image = photometric(x.image, rng);
        SegTensors t{normalize(x.image), x.label, x.name};
        return pad_to(t, crop.crop_h, crop.crop_w, 0.f, std::uint8_t(crop.ignore_index));
    }
};

// Single-scale test: keep-ratio resize to fit (2048, 512), normalise; the label keeps the
// original size (predictions are resized back to it for evaluation).
struct SegTestPipeline {
    index_t scale_long = 2048, scale_short = 512;
    Normalize normalize = Normalize::clip();

    SegTensors operator()(const SegSample& s) const {
        const Rescaled r = rescale_size(s.image.size(1), s.image.size(0), scale_long, scale_short);
        return {normalize(resize_bilinear_cv(s.image, r.h, r.w)), s.label, s.name};
    }
    SegTensors operator()(const SegSample& s, SampleRandom&) const { return (*this)(s); }
};

}  // namespace weft::data
