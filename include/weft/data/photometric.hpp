// weft/data/photometric.hpp: mmseg's PhotoMetricDistortion on 8-bit images, step by step.
//
//   PhotoMetricDistortion pmd;                        // brightness 32, contrast/saturation 0.5..1.5, hue 18
//   auto out = pmd(rgb, rng);                         // rng: the sample's SampleRandom
//   auto brighter = adjust_brightness(rgb, 12.5f);    // the deterministic steps, for tests and tools
//
// mmseg (0.x, transforms.py) applies, each with probability 1/2 (numpy randint(2) == 1):
// brightness += U(-32, 32); then, with the mode drawn as randint(2), contrast *= U(0.5, 1.5)
// first (mode 1) or last (mode 0); saturation: S *= U(0.5, 1.5) in OpenCV's 8-bit HSV; hue:
// H = (H + randint(-18, 18)) mod 180 (high exclusive, so -18..17). Every step computes in
// float32 (x * alpha or x + beta, the parameter rounded to float), clips to [0, 255] and
// truncates to uint8 (numpy's astype). The random draws happen in that order and only when a
// step runs, as in mmseg; the numbers come from weft's SampleRandom, not numpy's generator.
// The image may be RGB or BGR (`order`): the HSV conversions take the channel order into account,
// so the result is the same image as mmseg's in either order.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"
#include "color_cv.hpp"
#include "sample_random.hpp"

namespace weft::data {

namespace detail::photometric {

// numpy's clip then astype(uint8): truncation toward zero of a value already in [0, 255].
inline std::uint8_t clip_truncate(float v) { return std::uint8_t(std::clamp(v, 0.f, 255.f)); }

template <class F>
Tensor<std::uint8_t, 3> map_bytes(const Tensor<std::uint8_t, 3>& img, const char* op, F f) {
    WEFT_CHECK(img.defined() && img.size(2) == 3, op, ": expects an [H, W, 3] image, got ", img.shape());
    const auto in = img.contiguous();
    auto out = Tensor<std::uint8_t, 3>::empty(in.shape());
    // The whole map is 256 entries: compute it once, then look every byte up.
    std::uint8_t table[256];
    for (int v = 0; v < 256; ++v) table[v] = f(v);
    const std::uint8_t* s = in.data();
    std::uint8_t* o = out.data();
    parallel_for(0, in.numel(), 1 << 16, [&](index_t b, index_t e) {
        for (index_t i = b; i < e; ++i) o[i] = table[s[i]];
    });
    return out;
}

}  // namespace detail::photometric

// uint8(clip(float32(x) + float32(beta), 0, 255)) on every channel.
inline Tensor<std::uint8_t, 3> adjust_brightness(const Tensor<std::uint8_t, 3>& img, float beta) {
    return detail::photometric::map_bytes(img, "adjust_brightness",
                                          [&](int v) { return detail::photometric::clip_truncate(float(v) + beta); });
}

// uint8(clip(float32(x) * float32(alpha), 0, 255)) on every channel.
inline Tensor<std::uint8_t, 3> adjust_contrast(const Tensor<std::uint8_t, 3>& img, float alpha) {
    return detail::photometric::map_bytes(img, "adjust_contrast",
                                          [&](int v) { return detail::photometric::clip_truncate(float(v) * alpha); });
}

// To OpenCV HSV, S = uint8(clip(S * alpha, 0, 255)), back.
inline Tensor<std::uint8_t, 3> adjust_saturation(const Tensor<std::uint8_t, 3>& img, float alpha, ChannelOrder order) {
    auto hsv = to_hsv_cv(img, order);
    std::uint8_t* p = hsv.data();
    for (index_t i = 0, n = hsv.numel(); i < n; i += 3)
        p[i + 1] = detail::photometric::clip_truncate(float(p[i + 1]) * alpha);
    return from_hsv_cv(hsv, order);
}

// To OpenCV HSV, H = (H + delta) mod 180 (non-negative, as Python's %), back.
inline Tensor<std::uint8_t, 3> shift_hue(const Tensor<std::uint8_t, 3>& img, int delta, ChannelOrder order) {
    auto hsv = to_hsv_cv(img, order);
    std::uint8_t* p = hsv.data();
    for (index_t i = 0, n = hsv.numel(); i < n; i += 3) p[i] = std::uint8_t(((int(p[i]) + delta) % 180 + 180) % 180);
    return from_hsv_cv(hsv, order);
}

struct PhotoMetricDistortion {
    int brightness_delta = 32;
    double contrast_lower = 0.5, contrast_upper = 1.5;
    double saturation_lower = 0.5, saturation_upper = 1.5;
    int hue_delta = 18;
    ChannelOrder order = ChannelOrder::rgb;

    Tensor<std::uint8_t, 3> operator()(Tensor<std::uint8_t, 3> img, SampleRandom& rng) const {
        WEFT_CHECK(img.defined() && img.size(2) == 3, "PhotoMetricDistortion: expects an [H, W, 3] image, got ",
                   img.shape());
        if (rng.randint(0, 2)) img = adjust_brightness(img, float(rng.uniform(-brightness_delta, brightness_delta)));
        const bool contrast_first = rng.randint(0, 2) == 1;
        auto contrast = [&] {
            if (rng.randint(0, 2)) img = adjust_contrast(img, float(rng.uniform(contrast_lower, contrast_upper)));
        };
        if (contrast_first) contrast();
        if (rng.randint(0, 2)) img = adjust_saturation(img, float(rng.uniform(saturation_lower, saturation_upper)), order);
        if (rng.randint(0, 2)) img = shift_hue(img, int(rng.randint(-hue_delta, hue_delta)), order);
        if (!contrast_first) contrast();
        return img;
    }
};

}  // namespace weft::data
