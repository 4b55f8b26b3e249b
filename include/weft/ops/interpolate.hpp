// weft/ops/interpolate.hpp: resizing [N, C, H, W] images by nearest-neighbour or bilinear
// interpolation (torch.nn.functional.interpolate), forward and backward.
//
//   auto y = interpolate(x, std::array<index_t, 2>{64, 64}, Interpolation::bilinear);
//   auto z = interpolate(x, std::array<double, 2>{2.0, 2.0}, Interpolation::nearest);
//   auto c = interpolate(x, size, Interpolation::bilinear, /*align_corners=*/true);
//   auto [gx] = interpolate_backward(g, x, Interpolation::bilinear, false);   // size from g
//
// (A braced pair alone, `interpolate(x, {64, 64}, ...)`, is ambiguous between the size and the
// scale overloads: name the array type.)
//
// PyTorch's rules (recompute_scale_factor unset), per axis, for output index d:
// - output size: the given size, or floor(in * scale_factor);
// - the step s from output to input: (in - 1) / (out - 1) with align_corners (0 for one output
//   element), else 1 / scale_factor when a scale factor was given, else in / out. A scale factor
//   thus changes the mapping even when it rounds to the same output size;
// - nearest: source min(floor(d * s), in - 1), computed in float as PyTorch does; an axis whose
//   size is unchanged is copied, and one exactly doubled takes d / 2;
// - bilinear: source d * s with align_corners, else max((d + 0.5) * s - 0.5, 0); it blends the
//   element below it and the next one (clamped at the edge) by the fractional part; an axis
//   whose size is unchanged is copied;
// - align_corners is rejected for nearest, as in PyTorch.
// The backward sends each output's gradient to the input elements it was made of, with the
// same weights.
//
// CPU: the per-axis source indices and weights are tabulated once, then one task per run of
// (n, c) planes; float and double. CUDA (ops/cuda/interpolate.cuh): the same tables built on the
// device, one thread per output element forward and per input element backward (a gather, no
// atomics); float, double, bf16 and half.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "detail/spatial.hpp"
#if WEFT_WITH_CUDA
#include "cuda/interpolate.cuh"
#endif

namespace weft {

enum class Interpolation { nearest, bilinear };

template <Element T, Device D = Cpu>
struct InterpolateGrads {
    Tensor<T, 4, D> grad_x;
};

namespace detail {

// Where each output index of one axis reads from: i0 (and, bilinear, i1) with weights w0, w1.
template <class S>
struct AxisTable {
    std::vector<index_t> i0, i1;
    std::vector<S> w0, w1;
};

// scale: the user's scale factor for this axis, or 0 when the output size was given.
template <class S>
AxisTable<S> axis_table(index_t in, index_t out, double scale, Interpolation mode, bool align_corners) {
    AxisTable<S> t;
    t.i0.resize(std::size_t(out));
    if (mode == Interpolation::nearest) {
        const float step = scale > 0 ? float(1.0 / scale) : float(in) / float(out);
        for (index_t d = 0; d < out; ++d) {
            index_t src = 0;
            if (out == in)
                src = d;
            else if (out == 2 * in)
                src = d >> 1;
            else
                src = std::min(index_t(std::floor(float(d) * step)), in - 1);
            t.i0[std::size_t(d)] = src;
        }
        return t;
    }
    t.i1.resize(std::size_t(out));
    t.w0.resize(std::size_t(out));
    t.w1.resize(std::size_t(out));
    S step = 0;
    if (align_corners)
        step = out > 1 ? S(in - 1) / S(out - 1) : S(0);
    else
        step = scale > 0 ? S(1.0 / scale) : S(in) / S(out);
    for (index_t d = 0; d < out; ++d) {
        const auto k = std::size_t(d);
        if (out == in) {
            t.i0[k] = t.i1[k] = d;
            t.w0[k] = S(1), t.w1[k] = S(0);
            continue;
        }
        S src = align_corners ? step * S(d) : S(double(step) * (double(d) + 0.5) - 0.5);
        if (src < S(0)) src = S(0);
        const index_t i0 = index_t(src);
        t.i0[k] = i0;
        t.i1[k] = i0 + (i0 < in - 1 ? 1 : 0);
        t.w1[k] = src - S(i0);
        t.w0[k] = S(1) - t.w1[k];
    }
    return t;
}

// One resize: input and output planes and how each axis maps.
template <class T>
struct Resize {
    index_t planes, in_h, in_w, out_h, out_w;
    Interpolation mode;
    AxisTable<T> rows, cols;
};

// The checks of every resize, on either device.
inline void check_resize(const Shape<4>& x, Interpolation mode, bool align_corners) {
    WEFT_CHECK(mode == Interpolation::bilinear || !align_corners,
               "interpolate: align_corners can only be set with bilinear interpolation, not nearest "
               "(as in PyTorch); input of shape ", x);
    WEFT_CHECK(x[2] >= 1 && x[3] >= 1, "interpolate: input of shape ", x, " has an empty plane");
}

template <class T>
Resize<T> make_resize(const Shape<4>& x, index_t out_h, index_t out_w, double scale_h, double scale_w,
                      Interpolation mode, bool align_corners) {
    check_resize(x, mode, align_corners);
    return Resize<T>{x[0] * x[1],
                     x[2],
                     x[3],
                     out_h,
                     out_w,
                     mode,
                     axis_table<T>(x[2], out_h, scale_h, mode, align_corners),
                     axis_table<T>(x[3], out_w, scale_w, mode, align_corners)};
}

template <class T>
void resize_forward(const Resize<T>& r, const T* x, T* y) {
    const index_t IH = r.in_h, IW = r.in_w, OH = r.out_h, OW = r.out_w;
    for_each_plane(r.planes, IH * IW + OH * OW, [&](index_t plane) {
        const T* src = x + plane * IH * IW;
        T* dst = y + plane * OH * OW;
        for (index_t oh = 0; oh < OH; ++oh) {
            const auto h = std::size_t(oh);
            T* out = dst + oh * OW;
            if (r.mode == Interpolation::nearest) {
                const T* row = src + r.rows.i0[h] * IW;
                for (index_t ow = 0; ow < OW; ++ow) out[ow] = row[r.cols.i0[std::size_t(ow)]];
                continue;
            }
            const T* row0 = src + r.rows.i0[h] * IW;
            const T* row1 = src + r.rows.i1[h] * IW;
            const T a0 = r.rows.w0[h], a1 = r.rows.w1[h];
            for (index_t ow = 0; ow < OW; ++ow) {
                const auto w = std::size_t(ow);
                const index_t c0 = r.cols.i0[w], c1 = r.cols.i1[w];
                const T b0 = r.cols.w0[w], b1 = r.cols.w1[w];
                out[ow] = a0 * (b0 * row0[c0] + b1 * row0[c1]) + a1 * (b0 * row1[c0] + b1 * row1[c1]);
            }
        }
    });
}

template <class T>
void resize_backward(const Resize<T>& r, const T* g, T* gx) {
    const index_t IH = r.in_h, IW = r.in_w, OH = r.out_h, OW = r.out_w;
    for_each_plane(r.planes, IH * IW + OH * OW, [&](index_t plane) {
        const T* src = g + plane * OH * OW;
        T* dst = gx + plane * IH * IW;
        std::fill(dst, dst + IH * IW, T(0));
        for (index_t oh = 0; oh < OH; ++oh) {
            const auto h = std::size_t(oh);
            const T* in = src + oh * OW;
            if (r.mode == Interpolation::nearest) {
                T* row = dst + r.rows.i0[h] * IW;
                for (index_t ow = 0; ow < OW; ++ow) row[r.cols.i0[std::size_t(ow)]] += in[ow];
                continue;
            }
            T* row0 = dst + r.rows.i0[h] * IW;
            T* row1 = dst + r.rows.i1[h] * IW;
            const T a0 = r.rows.w0[h], a1 = r.rows.w1[h];
            for (index_t ow = 0; ow < OW; ++ow) {
                const auto w = std::size_t(ow);
                const index_t c0 = r.cols.i0[w], c1 = r.cols.i1[w];
                const T b0 = r.cols.w0[w], b1 = r.cols.w1[w];
                row0[c0] += a0 * b0 * in[ow];
                row0[c1] += a0 * b1 * in[ow];
                row1[c0] += a1 * b0 * in[ow];
                row1[c1] += a1 * b1 * in[ow];
            }
        }
    });
}

template <class T>
void check_interpolate_types() {
    static_assert(std::same_as<T, float> || std::same_as<T, double>,
                  "weft: interpolate on the CPU takes float or double tensors (compute in float: "
                  "weft::cast<float>(x))");
}

template <Element T, Device D>
Tensor<T, 4, D> interpolate_to(const Tensor<T, 4, D>& x, index_t out_h, index_t out_w, std::array<double, 2> scale,
                               Interpolation mode, bool align_corners);

}  // namespace detail

// ---- backward ------------------------------------------------------------------------------

// Gradient of sum(grad_out * interpolate(x, ..., mode, align_corners)); the output size is
// grad_out's. Pass the scale factor when the forward was given one (it sets the mapping), else
// leave it {0, 0}.
template <Element T, Device D>
InterpolateGrads<T, D> interpolate_backward(const Tensor<T, 4, D>& grad_out, const Tensor<T, 4, D>& x,
                                            Interpolation mode, bool align_corners = false,
                                            std::array<double, 2> scale_factor = {0, 0}) {
    if constexpr (std::same_as<D, Cpu>) detail::check_interpolate_types<T>();
    WEFT_CHECK(grad_out.size(0) == x.size(0) && grad_out.size(1) == x.size(1) && grad_out.size(2) >= 1 &&
                   grad_out.size(3) >= 1,
               "interpolate_backward: grad_out of shape ", grad_out.shape(), " does not match input of shape ",
               x.shape(), " (batch and channels must agree, the output must not be empty)");
    InterpolateGrads<T, D> grads;
    const auto gd = grad_out.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        const auto r = detail::make_resize<T>(x.shape(), grad_out.size(2), grad_out.size(3), scale_factor[0],
                                              scale_factor[1], mode, align_corners);
        grads.grad_x = Tensor<T, 4, D>::empty(x.shape());
        detail::resize_backward(r, gd.data(), grads.grad_x.data());
    } else {
        detail::check_resize(x.shape(), mode, align_corners);
#if WEFT_WITH_CUDA
        grads.grad_x = cuda::interpolate_backward(gd, x.shape(), scale_factor, mode == Interpolation::nearest,
                                                  align_corners);
#endif
    }
    return grads;
}

// ---- forward -------------------------------------------------------------------------------

// [N, C, H, W] -> [N, C, size[0], size[1]]
template <Element T, Device D>
Tensor<T, 4, D> interpolate(const Tensor<T, 4, D>& x, std::array<index_t, 2> size, Interpolation mode,
                            bool align_corners = false) {
    WEFT_CHECK(size[0] >= 1 && size[1] >= 1, "interpolate: output size ", detail::pair_shape(size),
               " must be positive (input of shape ", x.shape(), ")");
    return detail::interpolate_to(x, size[0], size[1], {0, 0}, mode, align_corners);
}

// [N, C, H, W] -> [N, C, floor(H * scale_factor[0]), floor(W * scale_factor[1])]. A name of its
// own (not an overload of interpolate) so that a braced pair, interpolate(x, {64, 64}, ...),
// always means a size.
template <Element T, Device D>
Tensor<T, 4, D> interpolate_scale(const Tensor<T, 4, D>& x, std::array<double, 2> scale_factor,
                                  Interpolation mode, bool align_corners = false) {
    const double sh = scale_factor[0], sw = scale_factor[1];
    WEFT_CHECK(sh > 0 && sw > 0 && std::isfinite(sh) && std::isfinite(sw), "interpolate_scale: scale_factor (", sh,
               ", ", sw, ") must be positive and finite (input of shape ", x.shape(), ")");
    const index_t out_h = index_t(std::floor(double(x.size(2)) * sh)), out_w = index_t(std::floor(double(x.size(3)) * sw));
    WEFT_CHECK(out_h >= 1 && out_w >= 1, "interpolate_scale: scale_factor (", sh, ", ", sw, ") on input of shape ",
               x.shape(), " gives an empty output (", out_h, "x", out_w, ")");
    return detail::interpolate_to(x, out_h, out_w, scale_factor, mode, align_corners);
}

template <Element T, Device D>
Tensor<T, 4, D> detail::interpolate_to(const Tensor<T, 4, D>& x, index_t out_h, index_t out_w,
                                       std::array<double, 2> scale, Interpolation mode, bool align_corners) {
    if constexpr (std::same_as<D, Cpu>) check_interpolate_types<T>();
    Tensor<T, 4, D> y;  // [N, C, OH, OW]
    const auto xd = x.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        const auto r = make_resize<T>(x.shape(), out_h, out_w, scale[0], scale[1], mode, align_corners);
        y = Tensor<T, 4, D>::empty({x.size(0), x.size(1), out_h, out_w});
        resize_forward(r, xd.data(), y.data());
    } else {
        check_resize(x.shape(), mode, align_corners);
#if WEFT_WITH_CUDA
        y = cuda::interpolate_forward(xd, out_h, out_w, scale, mode == Interpolation::nearest, align_corners);
#endif
    }
    if (needs_grad(x))
        record(
            y, "interpolate",
            [x, mode, align_corners, scale](const Tensor<T, 4, D>& g) {
                accumulate_grad(x, interpolate_backward(g, x.detach(), mode, align_corners, scale).grad_x);
            },
            x);
    return y;
}

}  // namespace weft
