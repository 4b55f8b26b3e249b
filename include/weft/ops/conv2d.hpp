// weft/ops/conv2d.hpp: 2-D convolution (cross-correlation, as torch.nn.functional.conv2d),
// forward and backward.
//
//   auto y = conv2d(x, weight);                          // [N, C, H, W] * [O, C, kh, kw] -> [N, O, OH, OW]
//   auto z = conv2d(x, weight, bias, {.stride = {2, 2}, .padding = {1, 1}});
//   auto d = conv2d(x, dw, {}, {.padding = {1, 1}, .groups = C});      // depthwise: dw [C, 1, 3, 3]
//   auto [gx, gw, gb] = conv2d_backward(g, x, weight, true, opts);     // gradients of sum(g * y)
//
// PyTorch's semantics throughout: weight [O, C / groups, kh, kw], bias [O] or undefined (`{}`),
// OH = (H + 2 * padding - dilation * (kh - 1) - 1) / stride + 1, groups split the input and
// output channels into that many independent convolutions.
//
// How it runs (CPU): im2col + GEMM. The receptive fields of a few images at a time are unfolded
// into a buffer col [C * kh * kw, OH * OW] per image (in parallel over images and channels), and
// each group's output is one product weight [O/G, C/G * kh * kw] x col [C/G * kh * kw, OH * OW],
// written straight into the output's [O, OH * OW] rows. The buffer is sized to about 32 MiB and
// reused, so memory stays bounded whatever the batch. A 1x1 convolution with stride 1 and no
// padding needs no unfolding: the input itself is the [C, H * W] matrix.
// The backward is the same pieces in the other order: grad_x = col2im(weightᵀ x grad_out) (the
// unfolded gradient is folded back, summing overlapping taps), grad_w = sum over images of
// grad_out x colᵀ, grad_b = grad_out summed over N, OH, OW. conv_transpose2d (its own header)
// is the adjoint and reuses these three kernels with the roles swapped.
//
// Float and double on the CPU (the GEMM's types). CUDA (ops/cuda/conv2d.cuh): the same pieces
// with cuBLAS and weft's im2col/col2im kernels, for float, double, bf16 and half.
#pragma once

#include <utility>
#include <algorithm>
#include <array>
#include <concepts>
#include <cstring>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "detail/spatial.hpp"
#include "matmul.hpp"
#if WEFT_WITH_CUDA
#include "cuda/conv2d.cuh"
#endif

namespace weft {

struct Conv2dOptions {
    std::array<index_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
    index_t groups = 1;
};

// Gradients of conv2d (and conv_transpose2d) with respect to input, weight and bias (each
// undefined when not asked for).
template <Element T, Device D = Cpu>
struct Conv2dGrads {
    Tensor<T, 4, D> grad_x;
    Tensor<T, 4, D> grad_w;
    Tensor<T, 1, D> grad_b;
};

namespace detail {

// Output positions o in [0, out) whose tap lands inside [0, in): 0 <= o * stride + offset < in.
struct TapRange {
    index_t lo, hi;
};
inline TapRange tap_range(index_t offset, index_t stride, index_t in, index_t out) {
    index_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    index_t hi = in - 1 - offset >= 0 ? (in - 1 - offset) / stride + 1 : 0;
    lo = std::min(lo, out);
    hi = std::clamp(hi, lo, out);
    return {lo, hi};
}

// Unfolds channels [c0, c1) of one dense image x [C, H, W] into col [C * kh * kw, OH * OW]: row
// (c, i, j) holds, for each output pixel, the input element under kernel tap (i, j), or 0 where
// the tap falls into the padding.
template <class T>
void im2col(const T* x, T* col, const ConvGeometry& g, index_t c0, index_t c1) {
    const index_t H = g.height, W = g.width, OH = g.out_height, OW = g.out_width, P = g.pixels();
    for (index_t c = c0; c < c1; ++c) {
        const T* plane = x + c * H * W;
        for (index_t i = 0; i < g.kernel_h; ++i) {
            for (index_t j = 0; j < g.kernel_w; ++j) {
                T* row = col + ((c * g.kernel_h + i) * g.kernel_w + j) * P;
                const index_t dw = j * g.dil_w - g.pad_w;  // input column under output column 0
                const auto [lo, hi] = tap_range(dw, g.stride_w, W, OW);
                for (index_t oh = 0; oh < OH; ++oh, row += OW) {
                    const index_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
                    if (ih < 0 || ih >= H) {
                        std::fill(row, row + OW, T(0));
                        continue;
                    }
                    const T* src = plane + ih * W;
                    std::fill(row, row + lo, T(0));
                    if (g.stride_w == 1) {
                        if (hi > lo) std::memcpy(row + lo, src + lo + dw, std::size_t(hi - lo) * sizeof(T));
                    } else {
                        for (index_t ow = lo; ow < hi; ++ow) row[ow] = src[ow * g.stride_w + dw];
                    }
                    std::fill(row + hi, row + OW, T(0));
                }
            }
        }
    }
}

// The adjoint of im2col: folds col [C * kh * kw, OH * OW] back into channels [c0, c1) of one
// dense image x [C, H, W], summing the taps that share an input element. Each plane starts at
// init[c] (a bias), or 0 when init is null.
template <class T>
void col2im(const T* col, T* x, const ConvGeometry& g, index_t c0, index_t c1, const T* init) {
    const index_t H = g.height, W = g.width, OH = g.out_height, OW = g.out_width, P = g.pixels();
    for (index_t c = c0; c < c1; ++c) {
        T* plane = x + c * H * W;
        std::fill(plane, plane + H * W, init ? init[c] : T(0));
        for (index_t i = 0; i < g.kernel_h; ++i) {
            for (index_t j = 0; j < g.kernel_w; ++j) {
                const T* row = col + ((c * g.kernel_h + i) * g.kernel_w + j) * P;
                const index_t dw = j * g.dil_w - g.pad_w;
                const auto [lo, hi] = tap_range(dw, g.stride_w, W, OW);
                for (index_t oh = 0; oh < OH; ++oh, row += OW) {
                    const index_t ih = oh * g.stride_h - g.pad_h + i * g.dil_h;
                    if (ih < 0 || ih >= H) continue;
                    T* dst = plane + ih * W;
                    if (g.stride_w == 1) {
                        T* d = dst + (lo + dw);  // lo + dw >= 0: the first input column reached
                        const T* r = row + lo;
#pragma GCC ivdep
                        for (index_t k = 0; k < hi - lo; ++k) d[k] += r[k];
                    } else {
                        for (index_t ow = lo; ow < hi; ++ow) dst[ow * g.stride_w + dw] += row[ow];
                    }
                }
            }
        }
    }
}

// Bytes of unfolded input kept at once: enough images per GEMM to keep it efficient on small
// feature maps, little enough to stay out of the way on large ones. (Not const so that tests
// can shrink it and make small batches run in several chunks.)
inline double col_budget_bytes = double(32 << 20);

template <class T>
index_t images_per_chunk(const ConvGeometry& g) {
    const double per_image = double(g.channels) * double(g.taps()) * double(g.pixels()) * sizeof(T);
    return std::clamp<index_t>(index_t(col_budget_bytes / std::max(per_image, 1.0)), 1,
                               std::max<index_t>(g.batch, 1));
}

// im2col for `count` images starting at x (dense [count, C, H, W]) into col [count, C*kh*kw, P].
template <class T>
void im2col_images(const T* x, T* col, const ConvGeometry& g, index_t count) {
    const index_t C = g.channels, rows = g.taps() * g.pixels();
    for_each_plane(count * C, rows, [&](index_t t) {
        const index_t n = t / C, c = t % C;
        im2col(x + n * C * g.in_pixels(), col + n * C * rows, g, c, c + 1);
    });
}

template <class T>
void col2im_images(const T* col, T* x, const ConvGeometry& g, index_t count, const T* init) {
    const index_t C = g.channels, rows = g.taps() * g.pixels();
    for_each_plane(count * C, rows, [&](index_t t) {
        const index_t n = t / C, c = t % C;
        col2im(col + n * C * rows, x + n * C * g.in_pixels(), g, c, c + 1, init);
    });
}

// out[n, group] = a[group] x in[n, group] + beta * out[n, group] for every image n and group:
// out [n, G * M, P], a [G, M, K] (shared by the images), in [n, G * K, P].
template <class T>
void grouped_product(const Tensor<T, 3>& out, const Tensor<T, 3>& a, const Tensor<T, 3>& in, index_t groups,
                     T beta) {
    if (groups == 1) {  // one batched call, the weight shared by every image
        gemm_into(out, a, in, T(1), beta);
        return;
    }
    // The groups of one image are a batch with uniform strides; the images come one by one.
    const index_t m = a.size(1), k = a.size(2), p = out.size(2);
    for (index_t n = 0; n < out.size(0); ++n)
        gemm_into(out.select(0, n).reshape(Shape<3>{groups, m, p}), a, in.select(0, n).reshape(Shape<3>{groups, k, p}),
                  T(1), beta);
}

// The convolution itself: x [N, C, H, W] and w [O, C/G, kh, kw], both dense, -> [N, O, OH, OW]
// (+ bias [O] when not null).
template <class T>
Tensor<T, 4> conv_forward(const Tensor<T, 4>& x, const Tensor<T, 4>& w, const T* bias, const ConvGeometry& g) {
    const index_t N = g.batch, O = g.out_channels, P = g.pixels(), G = g.groups;
    auto out = Tensor<T, 4>::empty({N, O, g.out_height, g.out_width});
    if (out.numel() == 0) return out;
    if (bias) {  // the GEMMs add to it (beta = 1)
        T* o = out.data();
        for_each_plane(N * O, P, [&](index_t t) { std::fill(o + t * P, o + (t + 1) * P, bias[t % O]); });
    }
    const T beta = bias ? T(1) : T(0);
    const auto w3 = w.reshape(Shape<3>{G, g.group_out(), g.patch()});  // [G, O/G, C/G * kh * kw]
    const auto out3 = out.reshape(Shape<3>{N, O, P});
    if (g.pointwise()) {
        grouped_product(out3, w3, x.reshape(Shape<3>{N, g.channels, P}), G, beta);
        return out;
    }
    const index_t chunk = images_per_chunk<T>(g), rows = g.channels * g.taps();
    auto col = Tensor<T, 3>::empty({chunk, rows, P});
    for (index_t n0 = 0; n0 < N; n0 += chunk) {
        const index_t count = std::min(chunk, N - n0);
        im2col_images(x.data() + n0 * g.channels * g.in_pixels(), col.data(), g, count);
        grouped_product(out3.slice(0, n0, n0 + count), w3, col.slice(0, 0, count), G, beta);
    }
    return out;
}

// The gradient of the convolution's input: grad_out [N, O, OH, OW] and w, both dense, ->
// [N, C, H, W]; each plane c starts at init[c] when init is not null. (conv_transpose2d's
// forward, with init its bias.)
template <class T>
Tensor<T, 4> conv_input_grad(const Tensor<T, 4>& grad_out, const Tensor<T, 4>& w, const T* init,
                             const ConvGeometry& g) {
    const index_t N = g.batch, C = g.channels, P = g.pixels(), G = g.groups;
    auto gx = Tensor<T, 4>::empty({N, C, g.height, g.width});
    if (gx.numel() == 0) return gx;
    // [G, C/G * kh * kw, O/G]: the transposed weight, read in place
    const auto wt = w.reshape(Shape<3>{G, g.group_out(), g.patch()}).transpose(1, 2);
    const auto g3 = grad_out.reshape(Shape<3>{N, g.out_channels, P});
    if (g.pointwise()) {
        if (init) {
            T* o = gx.data();
            for_each_plane(N * C, P, [&](index_t t) { std::fill(o + t * P, o + (t + 1) * P, init[t % C]); });
        }
        grouped_product(gx.reshape(Shape<3>{N, C, P}), wt, g3, G, init ? T(1) : T(0));
        return gx;
    }
    const index_t chunk = images_per_chunk<T>(g), rows = C * g.taps();
    auto col = Tensor<T, 3>::empty({chunk, rows, P});
    for (index_t n0 = 0; n0 < N; n0 += chunk) {
        const index_t count = std::min(chunk, N - n0);
        grouped_product(col.slice(0, 0, count), wt, g3.slice(0, n0, n0 + count), G, T(0));
        col2im_images(col.data(), gx.data() + n0 * C * g.in_pixels(), g, count, init);
    }
    return gx;
}

// The gradient of the weight: grad_out [N, O, OH, OW] and x [N, C, H, W], both dense, ->
// [O, C/G, kh, kw] = sum over images of grad_out[n] x col(x[n])ᵀ, group by group.
template <class T>
Tensor<T, 4> conv_weight_grad(const Tensor<T, 4>& grad_out, const Tensor<T, 4>& x, const ConvGeometry& g) {
    const index_t N = g.batch, O = g.out_channels, P = g.pixels(), G = g.groups, Og = g.group_out();
    auto gw = Tensor<T, 4>::empty({O, g.group_channels(), g.kernel_h, g.kernel_w});
    if (gw.numel() == 0) return gw;
    if (N == 0 || P == 0) return Tensor<T, 4>::zeros(gw.shape());
    const auto gw3 = gw.reshape(Shape<3>{G, Og, g.patch()});
    const auto g3 = grad_out.reshape(Shape<3>{N, O, P});
    // gw[group] (+)= grad_out[n, group] [O/G, P] x in[n, group]ᵀ [P, C/G * kh * kw]
    auto accumulate = [&](index_t n, const Tensor<T, 2>& in, bool first) {
        gemm_into(gw3, g3.select(0, n).reshape(Shape<3>{G, Og, P}),
                  in.reshape(Shape<3>{G, g.patch(), P}).transpose(1, 2), T(1), first ? T(0) : T(1));
    };
    if (g.pointwise()) {
        const auto x3 = x.reshape(Shape<3>{N, g.channels, P});
        for (index_t n = 0; n < N; ++n) accumulate(n, x3.select(0, n), n == 0);
        return gw;
    }
    const index_t chunk = images_per_chunk<T>(g), rows = g.channels * g.taps();
    auto col = Tensor<T, 3>::empty({chunk, rows, P});
    for (index_t n0 = 0; n0 < N; n0 += chunk) {
        const index_t count = std::min(chunk, N - n0);
        im2col_images(x.data() + n0 * g.channels * g.in_pixels(), col.data(), g, count);
        for (index_t n = 0; n < count; ++n) accumulate(n0 + n, col.select(0, n), n0 + n == 0);
    }
    return gw;
}

// grad_out summed over N, OH and OW: [N, O, OH, OW] -> [O].
template <class T, Device D>
Tensor<T, 1, D> conv_bias_grad(const Tensor<T, 4, D>& grad_out) {
    return sum(grad_out.detach(), {0, 2, 3});
}

// Checks conv2d's arguments and works out its geometry.
inline ConvGeometry conv2d_geometry(const char* op, const Shape<4>& x, const Shape<4>& w, const Conv2dOptions& o) {
    WEFT_CHECK(o.groups >= 1, op, ": groups must be at least 1, got ", o.groups);
    WEFT_CHECK(o.stride[0] >= 1 && o.stride[1] >= 1, op, ": stride must be positive, got ", pair_shape(o.stride));
    WEFT_CHECK(o.dilation[0] >= 1 && o.dilation[1] >= 1, op, ": dilation must be positive, got ",
               pair_shape(o.dilation));
    WEFT_CHECK(o.padding[0] >= 0 && o.padding[1] >= 0, op, ": padding must not be negative, got ",
               pair_shape(o.padding));
    WEFT_CHECK(w[0] % o.groups == 0, op, ": weight of shape ", w, " has ", w[0],
               " output channels, not divisible by groups = ", o.groups);
    WEFT_CHECK(x[1] == w[1] * o.groups, op, ": input of shape ", x, " has ", x[1],
               " channels but weight of shape ", w, " expects ", w[1] * o.groups, " (weight is [out_channels, ",
               "in_channels / groups, kh, kw], groups = ", o.groups, ")");
    ConvGeometry g;
    g.batch = x[0], g.channels = x[1], g.height = x[2], g.width = x[3];
    g.out_channels = w[0], g.kernel_h = w[2], g.kernel_w = w[3];
    g.stride_h = o.stride[0], g.stride_w = o.stride[1];
    g.pad_h = o.padding[0], g.pad_w = o.padding[1];
    g.dil_h = o.dilation[0], g.dil_w = o.dilation[1];
    g.groups = o.groups;
    const index_t span_h = g.dil_h * (g.kernel_h - 1) + 1, span_w = g.dil_w * (g.kernel_w - 1) + 1;
    WEFT_CHECK(g.kernel_h >= 1 && g.kernel_w >= 1 && x[2] + 2 * g.pad_h >= span_h && x[3] + 2 * g.pad_w >= span_w,
               op, ": input of shape ", x, " (padded by ", pair_shape(o.padding),
               ") is smaller than the dilated kernel of weight ", w, " (", span_h, "x", span_w, ")");
    g.out_height = (x[2] + 2 * g.pad_h - span_h) / g.stride_h + 1;
    g.out_width = (x[3] + 2 * g.pad_w - span_w) / g.stride_w + 1;
    return g;
}

template <int R>
void check_conv_grad_out(const char* op, const Shape<4>& expected, const Shape<4>& got, const Shape<4>& x,
                         const Shape<R>& w) {
    WEFT_CHECK(expected == got, op, ": grad_out of shape ", got, " does not match the output of input ", x,
               " and weight ", w, " (expected ", expected, ")");
}

template <class T>
void check_conv_types() {
    static_assert(std::same_as<T, float> || std::same_as<T, double>,
                  "weft: convolutions on the CPU take float or double tensors (compute in float: "
                  "weft::cast<float>(x))");
}

}  // namespace detail

// ---- backward ------------------------------------------------------------------------------

// Gradients of sum(grad_out * conv2d(x, weight, bias, opts)); grad_b only when has_bias.
template <Element T, Device D>
Conv2dGrads<T, D> conv2d_backward(const Tensor<T, 4, D>& grad_out, const Tensor<T, 4, D>& x,
                                  const Tensor<T, 4, D>& weight, bool has_bias, const Conv2dOptions& opts = {},
                                  bool need_x = true, bool need_w = true) {
    if constexpr (std::same_as<D, Cpu>) detail::check_conv_types<T>();
    const auto g = detail::conv2d_geometry("conv2d_backward", x.shape(), weight.shape(), opts);
    detail::check_conv_grad_out("conv2d_backward", Shape<4>{g.batch, g.out_channels, g.out_height, g.out_width},
                                grad_out.shape(), x.shape(), weight.shape());
    Conv2dGrads<T, D> grads;
    const auto gd = grad_out.detach().contiguous();
    const auto wd = weight.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        if (need_x) grads.grad_x = detail::conv_input_grad<T>(gd, wd, nullptr, g);
        if (need_w) grads.grad_w = detail::conv_weight_grad<T>(gd, x.detach().contiguous(), g);
    } else {
#if WEFT_WITH_CUDA
        if (need_x) grads.grad_x = cuda::conv_input_grad<T>(gd, wd, nullptr, g);
        if (need_w) grads.grad_w = cuda::conv_weight_grad<T>(gd, x.detach().contiguous(), g);
#endif
    }
    if (has_bias) grads.grad_b = detail::conv_bias_grad(gd);
    return grads;
}

// ---- forward -------------------------------------------------------------------------------

// [N, C, H, W] * [O, C / groups, kh, kw] (+ bias [O]) -> [N, O, OH, OW]
template <Element T, Device D>
Tensor<T, 4, D> conv2d(const Tensor<T, 4, D>& x, const Tensor<T, 4, D>& weight, const Tensor<T, 1, D>& bias = {},
                       const Conv2dOptions& opts = {}) {
    if constexpr (std::same_as<D, Cpu>) detail::check_conv_types<T>();
    const auto g = detail::conv2d_geometry("conv2d", x.shape(), weight.shape(), opts);
    WEFT_CHECK(!bias.defined() || bias.size(0) == g.out_channels, "conv2d: bias of shape ", bias.shape(),
               " does not fit weight of shape ", weight.shape(), " (expected [", g.out_channels, "])");
    const auto bd = bias.defined() ? bias.detach().contiguous() : Tensor<T, 1, D>();
    Tensor<T, 4, D> y;  // [N, O, OH, OW]
    if constexpr (std::same_as<D, Cpu>) {
        y = detail::conv_forward<T>(x.detach().contiguous(), weight.detach().contiguous(),
                                    bias.defined() ? bd.data() : nullptr, g);
    } else {
#if WEFT_WITH_CUDA
        y = cuda::conv_forward<T>(x.detach().contiguous(), weight.detach().contiguous(),
                                  bias.defined() ? bd.data() : nullptr, g);
#endif
    }
    if (needs_grad(x, weight, bias))
        record(
            y, "conv2d",
            [x, weight, bias, opts](const Tensor<T, 4, D>& grad) {
                auto grads = conv2d_backward(grad, x.detach(), weight.detach(), bias.requires_grad(), opts,
                                             x.requires_grad(), weight.requires_grad());
                accumulate_grad(x, std::move(grads.grad_x));
                accumulate_grad(weight, std::move(grads.grad_w));
                if (bias.defined()) accumulate_grad(bias, std::move(grads.grad_b));
            },
            x, weight, bias);
    return y;
}

}  // namespace weft
