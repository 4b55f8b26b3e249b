// weft/data/resize_cv.hpp: OpenCV's cv::resize for 8-bit images, INTER_LINEAR and INTER_NEAREST,
// byte for byte, and mmcv's keep-ratio size rule.
//
//   auto img = weft::data::resize_bilinear_cv(rgb, 384, 512);    // [H, W, C] -> [384, 512, C]
//   auto lab = weft::data::resize_nearest_cv(label, 384, 512);   // [H, W] -> [384, 512]
//   auto [w, h] = weft::data::rescale_size(683, 512, 2048, 512);  // mmcv.rescale_size
//
// mmseg resizes training images with cv2.resize(INTER_LINEAR) and labels with INTER_NEAREST.
// OpenCV's bilinear resize is not PyTorch's interpolate and not PIL's: it never antialiases and
// computes in fixed point. What weft reproduces (OpenCV 4.x, x86-64 build with 128-bit SIMD,
// measured against Debian's python3-opencv 4.6 by tests/data; docs/data.md):
//   * output x maps to source fx = float((x + 0.5) * scale - 0.5), scale = 1 / (out / in) in
//     double; sx = floor(fx), weights (1 - f, f) of the float fraction, each times 2048 and
//     rounded to nearest even (11 fraction bits). Columns left of the image (sx < 0) and at or
//     past the last one take source column 0 / W - 1 with weights (2048, 0). Rows use the same
//     formula, but their weights are not reset at the borders; the row index is clamped instead.
//   * horizontal pass: each output column, per channel, sum of two source bytes times weights in
//     int (exact); vertical pass: (((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16) + 2) >> 2 for
//     every element (OpenCV's int16 SIMD form, which its scalar tail copies). The textbook
//     (b0 * S0 + b1 * S1 + 2^21) >> 22 differs by one level on ~1% of the elements; measured.
//   * an exact 2x reduction in both directions is an area average ((a + b + c + d + 2) >> 2),
//     as OpenCV switches to INTER_AREA there; the same size is a copy.
// Nearest: source index floor(x * (1 / (out / in))) clamped to the last row/column.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"

namespace weft::data {

namespace detail::cv {

// Values that have been stored: a product cannot be fused with the following add (-march=native
// gives GCC FMA; OpenCV's own build rounds each step).
inline double stored(double v) {
    volatile double r = v;
    return r;
}
inline float stored(float v) {
    volatile float r = v;
    return r;
}

inline constexpr int coef_bits = 11;
inline constexpr int coef_scale = 1 << coef_bits;

// saturate_cast<short>(float): round half to even (lrintf under the default rounding mode).
inline int round_even(float v) { return int(std::nearbyint(v)); }

struct Taps {
    std::vector<int> index;   // source index of the first tap (second is index + 1, clamped)
    std::vector<int> weight;  // 2 per output: 11-bit fixed point
};

// OpenCV's coefficient table for one axis. `clamp_weights`: the horizontal axis resets the
// fraction at the borders, the vertical one does not.
inline Taps taps(index_t in, index_t out, bool clamp_weights) {
    Taps t;
    t.index.resize(std::size_t(out));
    t.weight.resize(std::size_t(2 * out));
    const double inv_scale = double(out) / double(in);
    const double scale = 1.0 / inv_scale;
    for (index_t d = 0; d < out; ++d) {
        float f = float(stored(stored((double(d) + 0.5) * scale) - 0.5));
        int s = int(std::floor(f));
        f -= float(s);
        if (clamp_weights) {
            if (s < 0) f = 0.f, s = 0;
            if (s >= in - 1) f = 0.f, s = int(in - 1);
        }
        t.index[std::size_t(d)] = s;
        t.weight[std::size_t(2 * d)] = round_even(stored(1.f - f) * float(coef_scale));
        t.weight[std::size_t(2 * d + 1)] = round_even(f * float(coef_scale));
    }
    return t;
}

}  // namespace detail::cv

// cv2.resize(src, (out_w, out_h), interpolation=INTER_LINEAR) of an [H, W, C] uint8 image.
inline Tensor<std::uint8_t, 3> resize_bilinear_cv(const Tensor<std::uint8_t, 3>& src, index_t out_h, index_t out_w) {
    namespace d = detail::cv;
    WEFT_CHECK(src.defined() && src.size(0) > 0 && src.size(1) > 0 && src.size(2) > 0,
               "resize_bilinear_cv: cannot resize an empty image of shape ", src.shape());
    WEFT_CHECK(out_h > 0 && out_w > 0, "resize_bilinear_cv: output size ", out_h, "x", out_w,
               " (HxW) must be positive; input ", src.shape());
    const auto in = src.contiguous();
    const index_t ih = in.size(0), iw = in.size(1), c = in.size(2);
    auto out = Tensor<std::uint8_t, 3>::empty(Shape<3>{out_h, out_w, c});
    const std::uint8_t* s = in.data();
    std::uint8_t* o = out.data();
    if (ih == out_h && iw == out_w) {
        std::copy(s, s + in.numel(), o);
        return out;
    }
    if (ih == 2 * out_h && iw == 2 * out_w) {  // OpenCV turns an exact halving into INTER_AREA
        parallel_for(0, out_h, 16, [&](index_t b, index_t e) {
            for (index_t y = b; y < e; ++y) {
                const std::uint8_t* r0 = s + (2 * y) * iw * c;
                const std::uint8_t* r1 = r0 + iw * c;
                for (index_t x = 0; x < out_w; ++x)
                    for (index_t k = 0; k < c; ++k) {
                        const index_t a = 2 * x * c + k;
                        o[(y * out_w + x) * c + k] = std::uint8_t((r0[a] + r0[a + c] + r1[a] + r1[a + c] + 2) >> 2);
                    }
            }
        });
        return out;
    }
    const d::Taps tx = d::taps(iw, out_w, true), ty = d::taps(ih, out_h, false);
    const index_t row = out_w * c;  // elements of one output row
    // Per output element (column x, channel k): the two source offsets in a row and weights, so
    // the horizontal pass is one flat loop over the row.
    std::vector<int> off0(static_cast<std::size_t>(row)), off1(static_cast<std::size_t>(row));
    std::vector<int> w0(static_cast<std::size_t>(row)), w1(static_cast<std::size_t>(row));
    for (index_t x = 0; x < out_w; ++x) {
        const index_t sx = tx.index[std::size_t(x)], sx1 = std::min(sx + 1, iw - 1);
        for (index_t k = 0; k < c; ++k) {
            const std::size_t i = std::size_t(x * c + k);
            off0[i] = int(sx * c + k);
            off1[i] = int(sx1 * c + k);
            w0[i] = tx.weight[std::size_t(2 * x)];
            w1[i] = tx.weight[std::size_t(2 * x + 1)];
        }
    }
    parallel_for(0, out_h, 8, [&](index_t b, index_t e) {
        std::vector<int> h0(static_cast<std::size_t>(row)), h1(static_cast<std::size_t>(row));
        index_t have0 = -1, have1 = -1;  // source rows held in h0 / h1
        auto hresize = [&](index_t sy, std::vector<int>& buf) {
            const std::uint8_t* r = s + sy * iw * c;
            int* out_row = buf.data();
            const int *o0 = off0.data(), *o1 = off1.data(), *a0 = w0.data(), *a1 = w1.data();
            for (index_t i = 0; i < row; ++i) out_row[i] = int(r[o0[i]]) * a0[i] + int(r[o1[i]]) * a1[i];
        };
        for (index_t y = b; y < e; ++y) {
            const index_t sy = ty.index[std::size_t(y)];
            const index_t y0 = std::clamp<index_t>(sy, 0, ih - 1), y1 = std::clamp<index_t>(sy + 1, 0, ih - 1);
            if (have0 != y0) {
                if (have1 == y0) std::swap(h0, h1), std::swap(have0, have1);
                else hresize(y0, h0), have0 = y0;
            }
            if (have1 != y1) hresize(y1, h1), have1 = y1;
            const int b0 = ty.weight[std::size_t(2 * y)], b1 = ty.weight[std::size_t(2 * y + 1)];
            std::uint8_t* dst = o + y * row;
            const int* p0 = h0.data();
            const int* p1 = h1.data();
            for (index_t x = 0; x < row; ++x) {
                // OpenCV's formula (its SIMD loop and its scalar tail agree): the 32-bit row sums
                // lose 4 bits to fit int16 lanes, each product keeps its high 16 bits, and the
                // sum is rounded by 2 bits.
                const int v = (((p0[x] >> 4) * b0) >> 16) + (((p1[x] >> 4) * b1) >> 16);
                dst[x] = std::uint8_t(std::clamp((v + 2) >> 2, 0, 255));
            }
        }
    });
    return out;
}

namespace detail::cv {

inline std::vector<index_t> nearest_index(index_t in, index_t out) {
    std::vector<index_t> idx(static_cast<std::size_t>(out));
    const double inv = 1.0 / (double(out) / double(in));
    for (index_t d = 0; d < out; ++d) idx[std::size_t(d)] = std::min<index_t>(index_t(std::floor(double(d) * inv)), in - 1);
    return idx;
}

}  // namespace detail::cv

// cv2.resize(src, (out_w, out_h), interpolation=INTER_NEAREST) of an [H, W, C] uint8 image.
inline Tensor<std::uint8_t, 3> resize_nearest_cv(const Tensor<std::uint8_t, 3>& src, index_t out_h, index_t out_w) {
    WEFT_CHECK(src.defined() && src.numel() > 0, "resize_nearest_cv: cannot resize an empty image of shape ",
               src.shape());
    WEFT_CHECK(out_h > 0 && out_w > 0, "resize_nearest_cv: output size ", out_h, "x", out_w,
               " (HxW) must be positive; input ", src.shape());
    const auto in = src.contiguous();
    const index_t iw = in.size(1), c = in.size(2);
    const auto xi = detail::cv::nearest_index(iw, out_w), yi = detail::cv::nearest_index(in.size(0), out_h);
    auto out = Tensor<std::uint8_t, 3>::empty(Shape<3>{out_h, out_w, c});
    const std::uint8_t* s = in.data();
    std::uint8_t* o = out.data();
    parallel_for(0, out_h, 32, [&](index_t b, index_t e) {
        for (index_t y = b; y < e; ++y) {
            const std::uint8_t* r = s + yi[std::size_t(y)] * iw * c;
            for (index_t x = 0; x < out_w; ++x)
                for (index_t k = 0; k < c; ++k) o[(y * out_w + x) * c + k] = r[xi[std::size_t(x)] * c + k];
        }
    });
    return out;
}

// The same for an [H, W] label map.
inline Tensor<std::uint8_t, 2> resize_nearest_cv(const Tensor<std::uint8_t, 2>& src, index_t out_h, index_t out_w) {
    WEFT_CHECK(src.defined(), "resize_nearest_cv: the label tensor is undefined");
    auto r = resize_nearest_cv(src.unsqueeze(2), out_h, out_w);  // [H', W', 1]
    return r.squeeze(2);
}

// mmcv.rescale_size with a (long, short) scale pair: the factor that fits the image's long side
// into max(scale) and its short side into min(scale), then (int(w * f + 0.5), int(h * f + 0.5)).
// Returns {new_w, new_h} (mmcv's order) and the factor.
struct Rescaled {
    index_t w = 0, h = 0;
    double factor = 1.0;
};
inline Rescaled rescale_size(index_t w, index_t h, index_t scale_a, index_t scale_b) {
    WEFT_CHECK(w > 0 && h > 0, "rescale_size: image size ", w, "x", h, " (WxH) must be positive");
    WEFT_CHECK(scale_a > 0 && scale_b > 0, "rescale_size: scale (", scale_a, ", ", scale_b, ") must be positive");
    const double long_max = double(std::max(scale_a, scale_b)), short_max = double(std::min(scale_a, scale_b));
    const double f = std::min(long_max / double(std::max(h, w)), short_max / double(std::min(h, w)));
    Rescaled r;
    r.factor = f;
    r.w = index_t(detail::cv::stored(double(w) * f) + 0.5);
    r.h = index_t(detail::cv::stored(double(h) * f) + 0.5);
    return r;
}

}  // namespace weft::data
