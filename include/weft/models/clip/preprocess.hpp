// weft/models/clip/preprocess.hpp: CLIP's image transform, as OpenAI's clip.load returns it.
//
//   auto rgb = weft::data::read_image("dog.jpg");              // [H, W, 3] uint8
//   Tensor<float, 3> x = weft::clip::preprocess(rgb, 224);     // [3, 224, 224]
//   Tensor<float, 4> b = weft::clip::preprocess_batch(images, 224);  // [B, 3, 224, 224]
//
// OpenAI's transform is torchvision 0.14 applied to a PIL image:
//   Resize(n, BICUBIC) -> CenterCrop(n) -> convert("RGB") -> ToTensor -> Normalize(mean, std)
// and weft follows each step as torchvision computes it (docs/image.md):
//   * Resize(n): the shorter side becomes n, the longer int(n * long / short) (Python's float
//     division, truncated); an image whose size already is that is left alone; otherwise
//     PIL's bicubic resize (weft::data::resize_bicubic_pil, byte-exact).
//   * CenterCrop(n): if the image is smaller than n in a direction, it is first padded with
//     zeros, (n - size) / 2 before and the rest after (floor division); then the crop starts
//     at int(round((size - n) / 2)), round() being Python's (half to even). After Resize(n) no
//     padding happens; center_crop on its own pads.
//   * ToTensor: byte / 255 in float; Normalize: (x - mean) / std, each step rounded to float as
//     PyTorch does, so preprocess<float> equals torchvision's tensor bit for bit.
// preprocess<double> computes the same in double (no float rounding in between); bf16 and half
// round the float result once.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <utility>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../data/resize_pil.hpp"
#include "../../exec/cpu/thread_pool.hpp"

namespace weft::clip {

// The mean and standard deviation of CLIP's training images, per RGB channel.
inline constexpr std::array<double, 3> image_mean{0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> image_std{0.26862954, 0.26130258, 0.27577711};

// torchvision's Resize(n) output size for an h x w image: {new_h, new_w}.
inline std::pair<index_t, index_t> resized_size(index_t h, index_t w, index_t n) {
    WEFT_CHECK(h > 0 && w > 0 && n > 0, "clip::resized_size: image ", h, " x ", w, " (H x W) and size ", n,
               " must all be positive");
    const index_t shorter = std::min(h, w), longer = std::max(h, w);
    // Python's int(n * long / short): exact integer product, then one correctly rounded float
    // division, then truncation.
    const auto new_long = index_t(double(n * longer) / double(shorter));
    return w <= h ? std::pair{new_long, n} : std::pair{n, new_long};
}

// torchvision's Resize(n, BICUBIC) on a PIL image: [H, W, C] -> [new_h, new_w, C] (the input
// itself when the size does not change).
inline Tensor<std::uint8_t, 3> resize_shorter_side(const Tensor<std::uint8_t, 3>& hwc, index_t n) {
    WEFT_CHECK(hwc.defined(), "clip::resize_shorter_side: the image tensor is undefined");
    const auto [new_h, new_w] = resized_size(hwc.size(0), hwc.size(1), n);
    if (new_h == hwc.size(0) && new_w == hwc.size(1)) return hwc;
    return data::resize_bicubic_pil(hwc, new_h, new_w);
}

namespace detail {

// Python's int(round(d / 2.0)) for an integer d >= 0: halves go to the even neighbour.
inline index_t half_rounded_even(index_t d) {
    const index_t q = d / 2;
    return (d % 2 != 0 && q % 2 != 0) ? q + 1 : q;
}

}  // namespace detail

// torchvision's CenterCrop(n) on a PIL image: [H, W, C] -> [n, n, C]. A view of the input when
// it is at least n x n; otherwise a new tensor, zero-padded first as torchvision does.
inline Tensor<std::uint8_t, 3> center_crop(const Tensor<std::uint8_t, 3>& hwc, index_t n) {
    WEFT_CHECK(hwc.defined(), "clip::center_crop: the image tensor is undefined");
    WEFT_CHECK(n > 0, "clip::center_crop: crop size ", n, " must be positive");
    const index_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
    if (h >= n && w >= n)
        return hwc.narrow(0, detail::half_rounded_even(h - n), n).narrow(1, detail::half_rounded_even(w - n), n);
    // Pad (left, top) = floor(missing / 2), the rest right and bottom; then crop what is larger.
    const index_t top = h < n ? (n - h) / 2 : 0, left = w < n ? (n - w) / 2 : 0;
    const index_t ph = std::max(h, n), pw = std::max(w, n);
    const index_t y0 = detail::half_rounded_even(ph - n), x0 = detail::half_rounded_even(pw - n);
    auto out = Tensor<std::uint8_t, 3>::zeros(Shape<3>{n, n, c});  // [n, n, C]
    for (index_t y = 0; y < n; ++y) {
        const index_t sy = y + y0 - top;  // row in the input
        if (sy < 0 || sy >= h) continue;
        for (index_t x = 0; x < n; ++x) {
            const index_t sx = x + x0 - left;
            if (sx < 0 || sx >= w) continue;
            for (index_t k = 0; k < c; ++k) out(y, x, k) = hwc(sy, sx, k);
        }
    }
    return out;
}

namespace detail {

// ToTensor + Normalize of one RGB [n, n, 3] uint8 view into dense [3, n, n] at `out`, through a
// table of the 3 x 256 possible values.
template <Element T>
void normalize_into(const Tensor<std::uint8_t, 3>& crop, T* out) {
    std::array<std::array<T, 256>, 3> table;
    for (int c = 0; c < 3; ++c)
        for (int v = 0; v < 256; ++v) {
            if constexpr (std::same_as<T, double>) {
                table[c][v] = (double(v) / 255.0 - image_mean[c]) / image_std[c];
            } else {
                // PyTorch: uint8 -> float, div(255), sub_(mean), div_(std), each rounded to float.
                const float x = float(v) / 255.0f;
                const float y = x - float(image_mean[c]);
                table[c][v] = T(y / float(image_std[c]));
            }
        }
    const index_t h = crop.size(0), w = crop.size(1);
    const index_t sy = crop.stride(0), sx = crop.stride(1), sc = crop.stride(2);
    const std::uint8_t* base = crop.data();
    for (int c = 0; c < 3; ++c)
        for (index_t y = 0; y < h; ++y) {
            const std::uint8_t* row = base + y * sy + c * sc;
            T* dst = out + (c * h + y) * w;
            for (index_t x = 0; x < w; ++x) dst[x] = table[c][row[x * sx]];
        }
}

inline Tensor<std::uint8_t, 3> resized_and_cropped(const Tensor<std::uint8_t, 3>& rgb_hwc, index_t resolution,
                                                   const char* op) {
    WEFT_CHECK(rgb_hwc.defined(), op, ": the image tensor is undefined");
    WEFT_CHECK(rgb_hwc.size(2) == 3, op, ": expects an [H, W, 3] RGB image, got shape ", rgb_hwc.shape(),
               " (decode with weft::data::read_image, which converts to RGB)");
    WEFT_CHECK(rgb_hwc.size(0) > 0 && rgb_hwc.size(1) > 0, op, ": empty image of shape ", rgb_hwc.shape());
    WEFT_CHECK(resolution > 0, op, ": resolution ", resolution, " must be positive");
    return center_crop(resize_shorter_side(rgb_hwc.detach(), resolution), resolution);
}

}  // namespace detail

// CLIP's preprocessing of one [H, W, 3] RGB image: [3, n, n], n = `resolution` (224 for
// RN50/RN101/ViT-B/16; the model's input_resolution).
template <Element T = float>
Tensor<T, 3> preprocess(const Tensor<std::uint8_t, 3>& rgb_hwc, index_t resolution) {
    static_assert(FloatingElement<T>, "weft: clip::preprocess makes floating-point tensors (float by default)");
    const auto crop = detail::resized_and_cropped(rgb_hwc, resolution, "clip::preprocess");
    auto out = Tensor<T, 3>::empty(Shape<3>{index_t(3), resolution, resolution});  // [3, n, n]
    detail::normalize_into(crop, out.data());
    return out;
}

// preprocess of each image, stacked: [B, 3, n, n]. Images may differ in size.
template <Element T = float>
Tensor<T, 4> preprocess_batch(const std::vector<Tensor<std::uint8_t, 3>>& images, index_t resolution) {
    static_assert(FloatingElement<T>, "weft: clip::preprocess_batch makes floating-point tensors (float by default)");
    WEFT_CHECK(!images.empty(), "clip::preprocess_batch: no images");
    WEFT_CHECK(resolution > 0, "clip::preprocess_batch: resolution ", resolution, " must be positive");
    const index_t b = index_t(images.size());
    auto out = Tensor<T, 4>::empty(Shape<4>{b, index_t(3), resolution, resolution});  // [B, 3, n, n]
    const index_t per_image = 3 * resolution * resolution;
    auto one = [&](index_t i) {
        const auto crop = detail::resized_and_cropped(images[std::size_t(i)], resolution, "clip::preprocess_batch");
        detail::normalize_into(crop, out.data() + i * per_image);
    };
    // Many images: one per thread (each resize then runs on its thread). Few: one after the
    // other, each resize using all threads.
    if (b >= num_threads())
        parallel_for(0, b, 1, [&](index_t i0, index_t i1) {
            for (index_t i = i0; i < i1; ++i) one(i);
        });
    else
        for (index_t i = 0; i < b; ++i) one(i);
    return out;
}

}  // namespace weft::clip
