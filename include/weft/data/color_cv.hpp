// weft/data/color_cv.hpp: OpenCV's 8-bit RGB <-> HSV conversions (cv2.COLOR_BGR2HSV and
// COLOR_HSV2BGR), byte for byte.
//
//   auto hsv = weft::data::to_hsv_cv(rgb, ChannelOrder::rgb);   // [H, W, 3]: H 0..180, S, V 0..255
//   auto back = weft::data::from_hsv_cv(hsv, ChannelOrder::rgb);
//
// mmseg's PhotoMetricDistortion changes saturation and hue in this space (mmcv.bgr2hsv /
// hsv2bgr are cvtColor), and its 8-bit form is OpenCV's own: H is halved to fit a byte
// (0..179, and 180 for a few reds that round up), S and V are 0..255. The conversions lose
// information, so reproducing the training data needs OpenCV's exact arithmetic:
//   * to HSV (integer): V = max, diff = max - min, S = (diff * round(255 * 2^12 / V) + 2^11) >> 12,
//     H from the max channel's sector ((g - b), (b - r) + 2 diff, (r - g) + 4 diff) times
//     round(180 * 2^12 / (6 diff)), rounded by 2^11 and shifted by 12, plus 180 if negative;
//     ties of the max go to R, then G (OpenCV's order).
//   * from HSV (float): h * (6 / 180), sector = floor, fraction f; s and v times the float 1/255;
//     the candidates v, v(1 - s), v(1 - s f), v(1 - s (1 - f)) with 1 - s f fused (FMA); each
//     channel times 255, then, per row, truncated to uint8 for whole blocks of 32 pixels and
//     rounded to nearest even for the rest (OpenCV's AVX2 loop and its scalar tail).
// Measured against Debian's OpenCV 4.6 on an AVX2 x86-64 machine (tests/data;
// docs/data.md): to HSV exact on all 2^24 colours; from HSV exact on all 11.8 million (H < 180,
// S, V) triples in the vector part, and off by one level on 172 of them in the scalar tail (a
// fusion the scalar code's compiler made that weft does not know). OpenCV without AVX2 (older
// x86, ARM) rounds everywhere and gives other bytes: the truncation is OpenCV's quirk, kept
// because mmseg's training data went through it.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"

namespace weft::data {

// Channel order of an [H, W, 3] colour image: weft decodes RGB, OpenCV/mmseg hold BGR.
enum class ChannelOrder { rgb, bgr };

namespace detail::hsv {

inline constexpr int shift = 12;

struct Tables {
    std::array<int, 256> sdiv{}, hdiv{};
};

inline const Tables& tables() {
    static const Tables t = [] {
        Tables r;
        for (int i = 1; i < 256; ++i) {
            r.sdiv[std::size_t(i)] = int(std::nearbyint(double(255 << shift) / (1. * i)));
            r.hdiv[std::size_t(i)] = int(std::nearbyint(double(180 << shift) / (6. * i)));
        }
        return r;
    }();
    return t;
}

// One pixel, r g b in, h s v out.
inline void to_hsv(int r, int g, int b, std::uint8_t* out) {
    const Tables& t = tables();
    const int v = std::max({r, g, b}), vmin = std::min({r, g, b});
    const int diff = v - vmin;
    const int s = (diff * t.sdiv[std::size_t(v)] + (1 << (shift - 1))) >> shift;
    int h = v == r ? g - b : v == g ? b - r + 2 * diff : r - g + 4 * diff;
    h = (h * t.hdiv[std::size_t(diff)] + (1 << (shift - 1))) >> shift;
    if (h < 0) h += 180;
    out[0] = std::uint8_t(std::clamp(h, 0, 255));
    out[1] = std::uint8_t(s);
    out[2] = std::uint8_t(v);
}

inline float stored(float v) {  // no FMA contraction: OpenCV rounds every product
    volatile float r = v;
    return r;
}

inline std::uint8_t to_byte(float v) { return std::uint8_t(std::clamp(std::nearbyint(v), 0.f, 255.f)); }

// One pixel, h s v in, r g b out. OpenCV 4.x on x86-64 runs this conversion in an AVX2-dispatched
// file whose compiler fuses 1 - s * f into one FMA, in its vector loop and its scalar tail
// alike; the vector loop (`simd`, blocks of 32 pixels) then truncates to uint8, the scalar tail
// rounds to nearest even.
inline void from_hsv(int hb, int sb, int vb, std::uint8_t* rgb, bool simd) {
    float h = float(hb), s = float(sb) * (1.f / 255.f), v = float(vb) * (1.f / 255.f);
    float r, g, b;
    if (s == 0) {
        r = g = b = v;
    } else {
        static constexpr int sector_data[6][3] = {{1, 3, 0}, {1, 0, 2}, {3, 0, 1}, {0, 2, 1}, {0, 1, 3}, {2, 1, 0}};
        h = stored(h * (6.f / 180.f));
        if (h >= 6.f) h -= 6.f;  // fmod(h, 6) for h < 12 (H <= 255), exactly
        int sector = int(std::floor(h));
        h -= float(sector);
        if (unsigned(sector) >= 6u) sector = 0, h = 0.f;
        float tab[4];
        tab[0] = v;
        tab[1] = v * stored(1.f - s);
        tab[2] = v * std::fma(-s, h, 1.f);
        tab[3] = v * std::fma(-s, stored(1.f - h), 1.f);
        b = tab[sector_data[sector][0]];
        g = tab[sector_data[sector][1]];
        r = tab[sector_data[sector][2]];
    }
    const float c[3] = {stored(r * 255.f), stored(g * 255.f), stored(b * 255.f)};
    for (int k = 0; k < 3; ++k)
        rgb[k] = simd ? std::uint8_t(std::clamp(std::trunc(c[k]), 0.f, 255.f)) : to_byte(c[k]);
}

// Pixels of a row that OpenCV's AVX2 loop converts: whole blocks of 32.
inline index_t vector_pixels(index_t width) { return width / 32 * 32; }

inline Tensor<std::uint8_t, 3> checked(const Tensor<std::uint8_t, 3>& img, const char* op) {
    WEFT_CHECK(img.defined() && img.size(2) == 3, op, ": expects an [H, W, 3] image, got ", img.shape());
    return img.contiguous();
}

}  // namespace detail::hsv

// cv2.cvtColor(.., COLOR_BGR2HSV) (order bgr) or COLOR_RGB2HSV (order rgb): [H, W, 3] H S V.
inline Tensor<std::uint8_t, 3> to_hsv_cv(const Tensor<std::uint8_t, 3>& img, ChannelOrder order) {
    const auto in = detail::hsv::checked(img, "to_hsv_cv");
    auto out = Tensor<std::uint8_t, 3>::empty(in.shape());
    const std::uint8_t* s = in.data();
    std::uint8_t* o = out.data();
    const int ri = order == ChannelOrder::rgb ? 0 : 2, bi = 2 - ri;
    parallel_for(0, in.numel() / 3, 4096, [&](index_t b, index_t e) {
        for (index_t i = b; i < e; ++i) detail::hsv::to_hsv(s[3 * i + ri], s[3 * i + 1], s[3 * i + bi], o + 3 * i);
    });
    return out;
}

// cv2.cvtColor(.., COLOR_HSV2BGR) (order bgr) or COLOR_HSV2RGB (order rgb) of 8-bit H S V.
inline Tensor<std::uint8_t, 3> from_hsv_cv(const Tensor<std::uint8_t, 3>& hsv, ChannelOrder order) {
    const auto in = detail::hsv::checked(hsv, "from_hsv_cv");
    auto out = Tensor<std::uint8_t, 3>::empty(in.shape());
    const std::uint8_t* s = in.data();
    std::uint8_t* o = out.data();
    const bool rgb = order == ChannelOrder::rgb;
    const index_t w = in.size(1), vec = detail::hsv::vector_pixels(w);
    parallel_for(0, in.size(0), 16, [&](index_t b, index_t e) {
        for (index_t y = b; y < e; ++y)
            for (index_t x = 0; x < w; ++x) {
                const index_t i = y * w + x;
                std::uint8_t px[3];
                detail::hsv::from_hsv(s[3 * i], s[3 * i + 1], s[3 * i + 2], px, x < vec);
                o[3 * i] = rgb ? px[0] : px[2];
                o[3 * i + 1] = px[1];
                o[3 * i + 2] = rgb ? px[2] : px[0];
            }
    });
    return out;
}

}  // namespace weft::data
