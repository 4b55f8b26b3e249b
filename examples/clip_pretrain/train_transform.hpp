// examples/clip_pretrain/train_transform.hpp: CLIP's training-time image transform, as
// OpenCLIP's image_transform(is_train=True) builds it.
//
//   weft::data::SampleRandom rng(seed, epoch, sample_index);
//   Tensor<float, 3> x = clip_pretrain::clip_train_transform(rgb, 32, rng);   // [3, 32, 32]
//   Tensor<float, 4> b = clip_pretrain::clip_train_batch(images, 32, seed, epoch, sample_ids);
//
// OpenCLIP trains with torchvision's
//   RandomResizedCrop(n, scale=(0.9, 1.0), ratio=(3/4, 4/3), interpolation=BICUBIC)
//   -> convert("RGB") -> ToTensor -> Normalize(CLIP's mean, std)
// and weft follows each step:
//   * the crop box comes from torchvision's RandomResizedCrop.get_params: up to 10 attempts of
//     area = H*W * U(scale), aspect = exp(U(log ratio)), w = round(sqrt(area * aspect)),
//     h = round(sqrt(area / aspect)) (Python's round: half to even), accepted when it fits, at
//     top = randint(0, H - h + 1), left = randint(0, W - w + 1); after 10 misses, a centred crop
//     of the whole image clamped to the ratio range;
//   * the box is resized to n x n by PIL's bicubic resize (weft::data::resize_bicubic_pil,
//     byte-exact), which is what resized_crop does to a PIL image;
//   * ToTensor and Normalize as clip::preprocess computes them (float, torchvision's roundings).
// The random numbers come from a SampleRandom, not torch's generator, so the boxes are not
// torchvision's own, but their distribution is; and they depend only on (seed, epoch, sample):
// a run is reproducible with any number of threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include <weft/core/error.hpp>
#include <weft/core/tensor.hpp>
#include <weft/data/resize_pil.hpp>
#include <weft/data/sample_random.hpp>
#include <weft/exec/cpu/thread_pool.hpp>
#include <weft/models/clip/preprocess.hpp>

namespace clip_pretrain {

using weft::index_t;

// RandomResizedCrop's ranges; OpenCLIP's defaults for CLIP training.
struct RandomResizedCropOptions {
    double scale_min = 0.9, scale_max = 1.0;            // fraction of the image's area
    double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // width / height
};

// A crop box in pixels.
struct CropBox {
    index_t top = 0, left = 0, height = 0, width = 0;
};

// torchvision's RandomResizedCrop.get_params for an h x w image.
inline CropBox random_resized_crop_box(index_t h, index_t w, const RandomResizedCropOptions& opt,
                                       weft::data::SampleRandom& rng) {
    WEFT_CHECK(h > 0 && w > 0, "random_resized_crop_box: empty image (", h, " x ", w, ")");
    WEFT_CHECK(opt.scale_min > 0 && opt.scale_min <= opt.scale_max && opt.scale_max <= 1,
               "random_resized_crop_box: scale range (", opt.scale_min, ", ", opt.scale_max,
               ") must satisfy 0 < min <= max <= 1");
    WEFT_CHECK(opt.ratio_min > 0 && opt.ratio_min <= opt.ratio_max, "random_resized_crop_box: ratio range (",
               opt.ratio_min, ", ", opt.ratio_max, ") must satisfy 0 < min <= max");
    const double area = double(h) * double(w);
    const double log_lo = std::log(opt.ratio_min), log_hi = std::log(opt.ratio_max);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target_area = area * rng.uniform(opt.scale_min, opt.scale_max);
        const double aspect = std::exp(rng.uniform(log_lo, log_hi));
        // std::nearbyint rounds half to even in the default rounding mode, as Python's round.
        const auto cw = index_t(std::nearbyint(std::sqrt(target_area * aspect)));
        const auto ch = index_t(std::nearbyint(std::sqrt(target_area / aspect)));
        if (0 < cw && cw <= w && 0 < ch && ch <= h) {
            const index_t top = rng.randint(0, h - ch + 1);
            const index_t left = rng.randint(0, w - cw + 1);
            return {top, left, ch, cw};
        }
    }
    // Fallback: the whole image, cut to the nearest allowed ratio, centred.
    const double in_ratio = double(w) / double(h);
    index_t cw = w, ch = h;
    if (in_ratio < opt.ratio_min)
        ch = index_t(std::nearbyint(double(w) / opt.ratio_min));
    else if (in_ratio > opt.ratio_max)
        cw = index_t(std::nearbyint(double(h) * opt.ratio_max));
    return {(h - ch) / 2, (w - cw) / 2, ch, cw};
}

// RandomResizedCrop -> ToTensor -> Normalize of one [H, W, 3] RGB image: [3, n, n] float,
// n = `resolution`, normalised with CLIP's mean and std.
inline weft::Tensor<float, 3> clip_train_transform(const weft::Tensor<std::uint8_t, 3>& rgb_hwc, index_t resolution,
                                                   weft::data::SampleRandom& rng,
                                                   const RandomResizedCropOptions& opt = {}) {
    WEFT_CHECK(rgb_hwc.defined(), "clip_train_transform: the image tensor is undefined");
    WEFT_CHECK(rgb_hwc.size(2) == 3, "clip_train_transform: expects an [H, W, 3] RGB image, got shape ",
               rgb_hwc.shape());
    WEFT_CHECK(resolution > 0, "clip_train_transform: resolution ", resolution, " must be positive");
    const CropBox box = random_resized_crop_box(rgb_hwc.size(0), rgb_hwc.size(1), opt, rng);
    const auto crop = rgb_hwc.detach().narrow(0, box.top, box.height).narrow(1, box.left, box.width);  // [h, w, 3]
    const auto resized = weft::data::resize_bicubic_pil(crop, resolution, resolution);                // [n, n, 3]
    auto out = weft::Tensor<float, 3>::empty(weft::Shape<3>{index_t(3), resolution, resolution});     // [3, n, n]
    // clip::preprocess's ToTensor + Normalize, so training and evaluation see identical values.
    weft::clip::detail::normalize_into(resized, out.data());
    return out;
}

// clip_train_transform of each image with its own stream SampleRandom(seed, epoch,
// sample_ids[i]), stacked: [B, 3, n, n]. Images may differ in size. sample_ids are the samples'
// indices in the data set (not in the batch), so a sample is augmented the same way whatever
// batch it lands in.
inline weft::Tensor<float, 4> clip_train_batch(const std::vector<weft::Tensor<std::uint8_t, 3>>& images,
                                               index_t resolution, std::uint64_t seed, std::uint64_t epoch,
                                               const std::vector<index_t>& sample_ids,
                                               const RandomResizedCropOptions& opt = {}) {
    WEFT_CHECK(!images.empty(), "clip_train_batch: no images");
    WEFT_CHECK(images.size() == sample_ids.size(), "clip_train_batch: ", images.size(), " images but ",
               sample_ids.size(), " sample ids");
    WEFT_CHECK(resolution > 0, "clip_train_batch: resolution ", resolution, " must be positive");
    const index_t b = index_t(images.size());
    auto out = weft::Tensor<float, 4>::empty(weft::Shape<4>{b, index_t(3), resolution, resolution});  // [B, 3, n, n]
    const index_t per_image = 3 * resolution * resolution;
    weft::parallel_for(0, b, 1, [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) {
            weft::data::SampleRandom rng(seed, epoch, std::uint64_t(sample_ids[std::size_t(i)]));
            const auto x = clip_train_transform(images[std::size_t(i)], resolution, rng, opt);  // [3, n, n]
            std::copy(x.data(), x.data() + per_image, out.data() + i * per_image);
        }
    });
    return out;
}

}  // namespace clip_pretrain
