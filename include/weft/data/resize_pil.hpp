// weft/data/resize_pil.hpp: Pillow's Image.resize for 8-bit images, byte for byte.
//
//   auto small = weft::data::resize_bicubic_pil(rgb, 224, 298);   // [H, W, C] -> [224, 298, C]
//   // = np.array(Image.fromarray(rgb).resize((298, 224), Image.BICUBIC))
//
// CLIP and many vision models were trained on images resized by PIL (torchvision's Resize on a
// PIL image), and PIL's resize is not what interpolate() computes: it antialiases. Reproducing
// it exactly removes one source of train/serve skew. The algorithm of Pillow 9's
// libImaging/Resample.c, re-implemented (docs/image.md walks through it):
//   * separable: a horizontal pass, then a vertical one; a pass whose size does not change is
//     skipped, and the horizontal pass only produces the rows the vertical one reads;
//   * output pixel i (0-based) is centred at input coordinate (i + 0.5) * scale, scale = in / out;
//     when shrinking, the kernel is stretched by `scale` (support 2 * scale for bicubic, with
//     a = -0.5; 1 * scale for bilinear), which is the antialiasing;
//   * the taps run from trunc(center - support + 0.5) to trunc(center + support + 0.5), clamped
//     to the image; their weights are normalised to sum 1 in double precision, then turned into
//     signed fixed point with 22 fraction bits (rounded half away from zero);
//   * each pass sums uint8 * weight in 32-bit integers starting from 2^21 (rounding), shifts by
//     22 and clamps to 0..255, so the intermediate image is uint8 too.
// Integer arithmetic makes the passes exact; the weights match Pillow's bit for bit because
// every floating-point step is the same operation in the same order. One compiler detail: with
// -ffp-contract=fast (GCC's default outside ISO mode) and FMA hardware, a * b + c may be fused
// into one rounding where Pillow's x86-64 build rounds twice; the weight computation forces the
// separate roundings (`rounded` below), so the result does not depend on compiler flags.
// Any channel count works; every channel is resampled on its own. That is Image.resize for
// modes L (1 channel), RGB (3) and CMYK (4); for RGBA and LA, PIL premultiplies by alpha
// before resampling and divides after, which weft does not.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"

namespace weft::data {

// The filters of PIL's resize that weft reproduces.
enum class PilFilter { bilinear, bicubic };

namespace detail::pil {

// Fraction bits of the fixed-point weights: 8 bits of pixel and 2 of headroom (bicubic's
// negative lobes let partial sums exceed 255) leave 22 of a 32-bit int.
inline constexpr int precision_bits = 32 - 8 - 2;

// A double that has been stored: its product cannot be fused into a following add.
inline double rounded(double v) {
    volatile double r = v;
    return r;
}

// Keys' cubic convolution kernel with a = -0.5, evaluated in Pillow's order of operations:
// |x| < 1: ((a + 2)|x| - (a + 3))|x|^2 + 1;  1 <= |x| < 2: (((|x| - 5)|x| + 8)|x| - 4) a.
inline double bicubic(double x) {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) {
        const double t = rounded((a + 2.0) * x) - (a + 3.0);
        return rounded(rounded(t * x) * x) + 1;
    }
    if (x < 2.0) {
        const double t = rounded((x - 5) * x) + 8;
        return (rounded(t * x) - 4) * a;
    }
    return 0.0;
}

inline double bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

// Which inputs each output index reads, and with what fixed-point weights.
struct Taps {
    index_t ksize = 0;                  // weights per output index (the widest window)
    std::vector<index_t> first, count;  // per output index
    std::vector<std::int32_t> weights;  // [out, ksize]
};

inline Taps taps(index_t in_size, index_t out_size, PilFilter filter) {
    double (*kernel)(double) = filter == PilFilter::bicubic ? &bicubic : &bilinear;
    const double kernel_support = filter == PilFilter::bicubic ? 2.0 : 1.0;
    // Pillow takes the box as floats: (float(in) - 0.0f) / out.
    const double scale = double(static_cast<float>(in_size)) / double(out_size);
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = rounded(kernel_support * filterscale);
    const double ss = 1.0 / filterscale;

    Taps t;
    t.ksize = index_t(std::ceil(support)) * 2 + 1;
    t.first.resize(std::size_t(out_size));
    t.count.resize(std::size_t(out_size));
    t.weights.assign(std::size_t(out_size * t.ksize), 0);
    std::vector<double> k(std::size_t(t.ksize));
    for (index_t i = 0; i < out_size; ++i) {
        const double center = rounded((double(i) + 0.5) * scale);
        // C's (int) conversion truncates toward zero, as Pillow's does.
        const index_t lo = std::max<index_t>(index_t(center - support + 0.5), 0);
        const index_t hi = std::min<index_t>(index_t(center + support + 0.5), in_size);
        const index_t n = hi - lo;
        double sum = 0.0;
        for (index_t x = 0; x < n; ++x) {
            const double w = kernel(rounded((double(x + lo) - center + 0.5) * ss));
            k[std::size_t(x)] = w;
            sum += w;
        }
        std::int32_t* fixed = &t.weights[std::size_t(i * t.ksize)];
        for (index_t x = 0; x < n; ++x) {
            double w = k[std::size_t(x)];
            if (sum != 0.0) w /= sum;
            // The scale is a power of two, so this product is exact and fusing cannot change it.
            const double scaled = w * double(1 << precision_bits);
            fixed[x] = static_cast<std::int32_t>(w < 0 ? -0.5 + scaled : 0.5 + scaled);
        }
        t.first[std::size_t(i)] = lo;
        t.count[std::size_t(i)] = n;
    }
    return t;
}

inline std::uint8_t clip8(std::int32_t acc) {
    const std::int32_t v = acc >> precision_bits;  // arithmetic shift (C++20): floor division
    return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

inline constexpr std::int32_t half = std::int32_t(1) << (precision_bits - 1);

// [rows, cols, C] -> [cols, rows, C]: pixels of C bytes change places, in tiles that stay in
// cache. C > 0 fixes the pixel size at compile time; C == 0 reads `c`.
template <int C>
void transpose_tiles(const std::uint8_t* in, index_t rows, index_t cols, index_t c, std::uint8_t* out) {
    constexpr index_t tile = 16;
    const index_t px = C > 0 ? C : c;
    const index_t col_tiles = (cols + tile - 1) / tile;
    parallel_for(0, col_tiles, std::max<index_t>(1, 65536 / std::max<index_t>(1, rows * px * tile)),
                 [&](index_t t0, index_t t1) {
                     for (index_t r0 = 0; r0 < rows; r0 += tile) {
                         const index_t r1 = std::min(rows, r0 + tile);
                         for (index_t x = t0 * tile; x < std::min(cols, t1 * tile); ++x) {
                             const std::uint8_t* src = in + (r0 * cols + x) * px;
                             std::uint8_t* dst = out + (x * rows + r0) * px;
                             for (index_t r = r0; r < r1; ++r, src += cols * px, dst += px)
                                 for (index_t k = 0; k < px; ++k) dst[k] = src[k];
                         }
                     }
                 });
}

inline void transpose_pixels(const std::uint8_t* in, index_t rows, index_t cols, index_t c, std::uint8_t* out) {
    switch (c) {
        case 1: transpose_tiles<1>(in, rows, cols, c, out); break;
        case 3: transpose_tiles<3>(in, rows, cols, c, out); break;
        case 4: transpose_tiles<4>(in, rows, cols, c, out); break;
        default: transpose_tiles<0>(in, rows, cols, c, out); break;
    }
}

// One pass along the outer axis of dense rows of `row_len` bytes: output row i sums input rows
// first[i] - row_offset ... (count[i] of them). Whole rows at a time, so the inner loop is a
// contiguous multiply-add the compiler vectorises. The horizontal pass runs through it too, on
// the transposed image: sums of integers do not depend on their order, so the result is
// Pillow's, which loops over taps per pixel.
inline void resample_outer(const std::uint8_t* in, index_t row_len, index_t row_offset, std::uint8_t* out,
                     index_t out_h, const Taps& t) {
    const index_t grain = std::max<index_t>(1, 65536 / std::max<index_t>(1, row_len * t.ksize));
    parallel_for(0, out_h, grain, [&](index_t i0, index_t i1) {
        std::vector<std::int32_t> acc(static_cast<std::size_t>(row_len));
        for (index_t i = i0; i < i1; ++i) {
            std::fill(acc.begin(), acc.end(), half);
            const std::int32_t* k = &t.weights[std::size_t(i * t.ksize)];
            const index_t first = t.first[std::size_t(i)] - row_offset;
            std::int32_t* __restrict a = acc.data();
            for (index_t y = 0; y < t.count[std::size_t(i)]; ++y) {
                const std::uint8_t* __restrict src = in + (first + y) * row_len;
                const std::int32_t w = k[y];
#pragma GCC ivdep
                for (index_t j = 0; j < row_len; ++j) a[j] += std::int32_t(src[j]) * w;
            }
            std::uint8_t* __restrict dst = out + i * row_len;
#pragma GCC ivdep
            for (index_t j = 0; j < row_len; ++j) dst[j] = clip8(a[j]);
        }
    });
}

}  // namespace detail::pil

// Image.resize((out_w, out_h), filter) of PIL on an [H, W, C] uint8 image (any strides);
// returns a new [out_h, out_w, C] tensor (a copy when the size does not change, as PIL's).
template <Device D>
Tensor<std::uint8_t, 3, D> resize_pil(const Tensor<std::uint8_t, 3, D>& hwc, index_t out_h, index_t out_w,
                                      PilFilter filter) {
    static_assert(std::same_as<D, Cpu>, "weft: resize_pil on CUDA comes with the CUDA kernels");
    namespace pil = detail::pil;
    WEFT_CHECK(hwc.defined(), "resize_pil: the image tensor is undefined");
    const index_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
    WEFT_CHECK(h > 0 && w > 0 && c > 0, "resize_pil: cannot resize an image of shape ", hwc.shape(),
               " ([H, W, C] with every extent at least 1)");
    WEFT_CHECK(out_h > 0 && out_w > 0, "resize_pil: output size ", out_h, " x ", out_w, " (H x W) for input ",
               hwc.shape(), ": both must be at least 1");
    const auto src = hwc.detach().contiguous();
    if (out_h == h && out_w == w) return src.clone();

    const pil::Taps vert = pil::taps(h, out_h, filter);
    // The vertical pass reads input rows [row_lo, row_hi): the horizontal pass makes only those.
    const index_t row_lo = vert.first.front();
    const index_t row_hi = vert.first.back() + vert.count.back();

    if (out_w == w) {  // vertical only
        auto out = Tensor<std::uint8_t, 3>::empty(Shape<3>{out_h, w, c});
        pil::resample_outer(src.data(), w * c, 0, out.data(), out_h, vert);
        return out;
    }
    const pil::Taps horiz = pil::taps(w, out_w, filter);
    const index_t rows = row_hi - row_lo;
    auto cols = std::make_unique_for_overwrite<std::uint8_t[]>(std::size_t(w * rows * c));
    auto cols_out = std::make_unique_for_overwrite<std::uint8_t[]>(std::size_t(out_w * rows * c));
    pil::transpose_pixels(src.data() + row_lo * w * c, rows, w, c, cols.get());  // [W, rows, C]
    pil::resample_outer(cols.get(), rows * c, 0, cols_out.get(), out_w, horiz);        // [out_w, rows, C]
    auto tmp = Tensor<std::uint8_t, 3>::empty(Shape<3>{rows, out_w, c});           // [rows, out_w, C]
    pil::transpose_pixels(cols_out.get(), out_w, rows, c, tmp.data());
    if (out_h == h) return tmp;  // horizontal only (then row_lo = 0, row_hi = h)
    auto out = Tensor<std::uint8_t, 3>::empty(Shape<3>{out_h, out_w, c});
    pil::resample_outer(tmp.data(), out_w * c, row_lo, out.data(), out_h, vert);
    return out;
}

// PIL's Image.resize(size, Image.BICUBIC) (what torchvision's Resize does to a PIL image).
template <Device D>
Tensor<std::uint8_t, 3, D> resize_bicubic_pil(const Tensor<std::uint8_t, 3, D>& hwc, index_t out_h, index_t out_w) {
    return resize_pil(hwc, out_h, out_w, PilFilter::bicubic);
}

// PIL's Image.resize(size, Image.BILINEAR).
template <Device D>
Tensor<std::uint8_t, 3, D> resize_bilinear_pil(const Tensor<std::uint8_t, 3, D>& hwc, index_t out_h, index_t out_w) {
    return resize_pil(hwc, out_h, out_w, PilFilter::bilinear);
}

}  // namespace weft::data
