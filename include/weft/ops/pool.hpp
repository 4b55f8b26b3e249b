// weft/ops/pool.hpp: 2-D max, average and adaptive average pooling, forward and backward.
//
//   auto m = max_pool2d(x, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
//   auto a = avg_pool2d(x, {.kernel = {2, 2}, .ceil_mode = true, .count_include_pad = false});
//   auto p = adaptive_avg_pool2d(x, {7, 7});                   // [N, C, H, W] -> [N, C, 7, 7]
//   auto [out, idx] = max_pool2d_with_indices(x, opts);        // idx: flat h * W + w per plane
//   auto [gx] = max_pool2d_backward(g, x, idx);
//
// Exactly torch.nn.functional's max_pool2d, avg_pool2d and adaptive_avg_pool2d:
// - stride {0, 0} (the default) means stride = kernel; padding may be at most half the kernel;
// - OH = floor((H + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1, or with ceil_mode
//   the ceiling, except that a last window starting beyond the input and its left padding
//   (at or past H + padding) is dropped;
// - max pooling skips padded positions (they are -inf); its gradient goes to the first maximum
//   of each window in row-major order (a NaN counts as a maximum, as in PyTorch);
// - avg pooling sums the window clipped to the input and divides by the window clipped to the
//   padded input (count_include_pad, the default) or by the number of input elements it covers;
//   dilation is max pooling's only;
// - adaptive bin i of In -> Out covers [floor(i * In / Out), ceil((i + 1) * In / Out)).
//
// CPU: one task per run of (n, c) planes, each window a direct loop; float and double.
// CUDA (ops/cuda/pool.cuh): one thread per output element forward, per input element backward
// (max_pool2d's backward: atomics, see there); float, double, bf16 and half.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <limits>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "detail/spatial.hpp"
#if WEFT_WITH_CUDA
#include "cuda/pool.cuh"
#endif

namespace weft {

struct Pool2dOptions {
    std::array<index_t, 2> kernel{1, 1}, stride{0, 0} /* 0: the kernel */, padding{0, 0},
        dilation{1, 1} /* max_pool2d only */;
    bool ceil_mode = false;
    bool count_include_pad = true;  // avg_pool2d only
};

// The gradient of a pooling (or interpolation) with respect to its input.
template <Element T, Device D = Cpu>
struct Pool2dGrads {
    Tensor<T, 4, D> grad_x;
};

// max_pool2d's output and, per output element, the flat index h * W + w of the input element it
// came from within its (n, c) plane (as PyTorch's return_indices).
template <Element T, Device D = Cpu>
struct MaxPool2dResult {
    Tensor<T, 4, D> output;
    Tensor<index_t, 4, D> indices;
};

namespace detail {

// PyTorch's pooling output extent (see the header comment).
inline index_t pool_out_size(index_t in, index_t kernel, index_t stride, index_t pad, index_t dil, bool ceil_mode) {
    const index_t room = in + 2 * pad - dil * (kernel - 1) - 1;  // checked >= 0
    index_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) --out;
    return out;
}

inline PoolGeometry pool_geometry(const char* op, const Shape<4>& x, const Pool2dOptions& o, bool dilated) {
    const auto k = o.kernel, p = o.padding, d = o.dilation;
    const std::array<index_t, 2> s{o.stride[0] == 0 ? k[0] : o.stride[0], o.stride[1] == 0 ? k[1] : o.stride[1]};
    WEFT_CHECK(k[0] >= 1 && k[1] >= 1, op, ": kernel must be positive, got ", pair_shape(k));
    WEFT_CHECK(s[0] >= 1 && s[1] >= 1, op, ": stride must be positive (or 0 for the kernel), got ",
               pair_shape(o.stride));
    WEFT_CHECK(d[0] >= 1 && d[1] >= 1, op, ": dilation must be positive, got ", pair_shape(d));
    WEFT_CHECK(dilated || (d[0] == 1 && d[1] == 1), op, ": dilation ", pair_shape(d),
               " is not supported (only max_pool2d takes a dilation)");
    WEFT_CHECK(p[0] >= 0 && p[1] >= 0 && p[0] <= k[0] / 2 && p[1] <= k[1] / 2, op, ": padding ", pair_shape(p),
               " must be between 0 and half the kernel ", pair_shape(k));
    PoolGeometry g;
    g.planes = x[0] * x[1], g.height = x[2], g.width = x[3];
    g.kernel_h = k[0], g.kernel_w = k[1], g.stride_h = s[0], g.stride_w = s[1];
    g.pad_h = p[0], g.pad_w = p[1], g.dil_h = d[0], g.dil_w = d[1];
    const index_t span_h = d[0] * (k[0] - 1) + 1, span_w = d[1] * (k[1] - 1) + 1;
    WEFT_CHECK(x[2] + 2 * p[0] >= span_h && x[3] + 2 * p[1] >= span_w, op, ": input of shape ", x,
               " (padded by ", pair_shape(p), ") is smaller than the window ", Shape<2>{span_h, span_w});
    g.out_height = pool_out_size(x[2], k[0], s[0], p[0], d[0], o.ceil_mode);
    g.out_width = pool_out_size(x[3], k[1], s[1], p[1], d[1], o.ceil_mode);
    return g;
}

template <class T>
void check_pool_types() {
    static_assert(std::same_as<T, float> || std::same_as<T, double>,
                  "weft: pooling and interpolation on the CPU take float or double tensors (compute in float: "
                  "weft::cast<float>(x))");
}

template <Element T, Device D>
void check_pool_grad_out(const char* op, const Shape<4>& expected, const Tensor<T, 4, D>& grad_out,
                         const Shape<4>& x) {
    WEFT_CHECK(grad_out.shape() == expected, op, ": grad_out of shape ", grad_out.shape(),
               " does not match the output for input of shape ", x, " (expected ", expected, ")");
}

// Window [start, end) of adaptive bin i when `in` positions are pooled into `out` bins.
inline index_t adaptive_start(index_t i, index_t in, index_t out) { return (i * in) / out; }
inline index_t adaptive_end(index_t i, index_t in, index_t out) { return ((i + 1) * in + out - 1) / out; }

}  // namespace detail

// ---- max pooling ---------------------------------------------------------------------------

template <Element T, Device D>
MaxPool2dResult<T, D> max_pool2d_with_indices(const Tensor<T, 4, D>& x, const Pool2dOptions& opts) {
    if constexpr (std::same_as<D, Cpu>) detail::check_pool_types<T>();
    const auto g = detail::pool_geometry("max_pool2d", x.shape(), opts, true);
    const Shape<4> os{x.size(0), x.size(1), g.out_height, g.out_width};
    MaxPool2dResult<T, D> r{Tensor<T, 4, D>::empty(os), Tensor<index_t, 4, D>::empty(os)};
    const auto xd = x.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        const T* in = xd.data();
        T* out = r.output.data();
        index_t* idx = r.indices.data();
        const index_t H = g.height, W = g.width, OH = g.out_height, OW = g.out_width;
        detail::for_each_plane(g.planes, H * W + OH * OW * g.kernel_h * g.kernel_w, [&](index_t plane) {
            const T* src = in + plane * H * W;
            T* dst = out + plane * OH * OW;
            index_t* at = idx + plane * OH * OW;
            for (index_t oh = 0; oh < OH; ++oh) {
                index_t h0 = oh * g.stride_h - g.pad_h;
                const index_t h1 = std::min(h0 + (g.kernel_h - 1) * g.dil_h + 1, H);
                while (h0 < 0) h0 += g.dil_h;
                for (index_t ow = 0; ow < OW; ++ow) {
                    index_t w0 = ow * g.stride_w - g.pad_w;
                    const index_t w1 = std::min(w0 + (g.kernel_w - 1) * g.dil_w + 1, W);
                    while (w0 < 0) w0 += g.dil_w;
                    T best = -std::numeric_limits<T>::infinity();
                    index_t best_at = h0 < h1 && w0 < w1 ? h0 * W + w0 : -1;  // -1: the window holds only padding
                    for (index_t h = h0; h < h1; h += g.dil_h) {
                        for (index_t w = w0; w < w1; w += g.dil_w) {
                            const T v = src[h * W + w];
                            if (v > best || std::isnan(v)) {  // strict: the first maximum wins; NaN propagates
                                best = v;
                                best_at = h * W + w;
                            }
                        }
                    }
                    dst[oh * OW + ow] = best;
                    at[oh * OW + ow] = best_at;
                }
            }
        });
    } else {
#if WEFT_WITH_CUDA
        cuda::max_pool2d_forward(xd, r.output, r.indices, g);
#endif
    }
    return r;
}

// Gradient of max_pool2d: each output's gradient goes to the input element `indices` names.
template <Element T, Device D>
Pool2dGrads<T, D> max_pool2d_backward(const Tensor<T, 4, D>& grad_out, const Tensor<T, 4, D>& x,
                                      const Tensor<index_t, 4, D>& indices) {
    if constexpr (std::same_as<D, Cpu>) detail::check_pool_types<T>();
    WEFT_CHECK(grad_out.shape() == indices.shape() && grad_out.size(0) == x.size(0) && grad_out.size(1) == x.size(1),
               "max_pool2d_backward: grad_out of shape ", grad_out.shape(), " does not match indices of shape ",
               indices.shape(), " for input of shape ", x.shape());
    const auto gd = grad_out.detach().contiguous();
    const auto id = indices.contiguous();
    if constexpr (!std::same_as<D, Cpu>) {
        Pool2dGrads<T, D> r;
#if WEFT_WITH_CUDA
        r.grad_x = cuda::max_pool2d_backward(gd, id, x.shape());
#endif
        return r;
    } else {
        Pool2dGrads<T, D> r{Tensor<T, 4, D>::zeros(x.shape())};
        const index_t in_plane = x.size(2) * x.size(3), out_plane = grad_out.size(2) * grad_out.size(3);
        T* gx = r.grad_x.data();
        detail::for_each_plane(x.size(0) * x.size(1), in_plane + out_plane, [&](index_t plane) {
            const T* g = gd.data() + plane * out_plane;
            const index_t* at = id.data() + plane * out_plane;
            T* dst = gx + plane * in_plane;
            for (index_t o = 0; o < out_plane; ++o) {
                WEFT_CHECK(at[o] < in_plane, "max_pool2d_backward: index ", at[o], " is outside a plane of ",
                           in_plane, " elements (input of shape ", x.shape(), ")");
                if (at[o] >= 0) dst[at[o]] += g[o];
            }
        });
        return r;
    }
}

// [N, C, H, W] -> [N, C, OH, OW]: the maximum of each window.
template <Element T, Device D>
Tensor<T, 4, D> max_pool2d(const Tensor<T, 4, D>& x, const Pool2dOptions& opts) {
    auto result = max_pool2d_with_indices(x, opts);
    auto y = result.output;
    const auto indices = result.indices;
    if (needs_grad(x))
        record(
            y, "max_pool2d",
            [x, indices](const Tensor<T, 4, D>& g) { accumulate_grad(x, max_pool2d_backward(g, x.detach(), indices).grad_x); },
            x);
    return y;
}

// ---- average pooling -----------------------------------------------------------------------

namespace detail {

// Calls f(output index, first row, end row, first column, end column, divisor) for each window
// of an avg_pool2d plane, the window clipped to the input.
template <class F>
void for_each_avg_window(const PoolGeometry& g, bool count_include_pad, F&& f) {
    for (index_t oh = 0; oh < g.out_height; ++oh) {
        index_t h0 = oh * g.stride_h - g.pad_h;
        index_t h1 = std::min(h0 + g.kernel_h, g.height + g.pad_h);
        const index_t padded_h = h1 - h0;
        h0 = std::max<index_t>(h0, 0), h1 = std::min(h1, g.height);
        for (index_t ow = 0; ow < g.out_width; ++ow) {
            index_t w0 = ow * g.stride_w - g.pad_w;
            index_t w1 = std::min(w0 + g.kernel_w, g.width + g.pad_w);
            const index_t padded_w = w1 - w0;
            w0 = std::max<index_t>(w0, 0), w1 = std::min(w1, g.width);
            const index_t count = count_include_pad ? padded_h * padded_w : (h1 - h0) * (w1 - w0);
            f(oh * g.out_width + ow, h0, h1, w0, w1, count);
        }
    }
}

}  // namespace detail

template <Element T, Device D>
Pool2dGrads<T, D> avg_pool2d_backward(const Tensor<T, 4, D>& grad_out, const Tensor<T, 4, D>& x,
                                      const Pool2dOptions& opts) {
    if constexpr (std::same_as<D, Cpu>) detail::check_pool_types<T>();
    const auto g = detail::pool_geometry("avg_pool2d_backward", x.shape(), opts, false);
    detail::check_pool_grad_out("avg_pool2d_backward", Shape<4>{x.size(0), x.size(1), g.out_height, g.out_width},
                                grad_out, x.shape());
    const auto gd = grad_out.detach().contiguous();
    if constexpr (!std::same_as<D, Cpu>) {
        Pool2dGrads<T, D> r;
#if WEFT_WITH_CUDA
        r.grad_x = cuda::avg_pool2d_backward(gd, x.shape(), g, opts.count_include_pad);
#endif
        return r;
    } else {
        Pool2dGrads<T, D> r{Tensor<T, 4, D>::zeros(x.shape())};
        const index_t in_plane = g.height * g.width, out_plane = g.out_height * g.out_width;
        detail::for_each_plane(g.planes, in_plane + out_plane * g.kernel_h * g.kernel_w, [&](index_t plane) {
            const T* src = gd.data() + plane * out_plane;
            T* dst = r.grad_x.data() + plane * in_plane;
            detail::for_each_avg_window(
                g, opts.count_include_pad,
                [&](index_t o, index_t h0, index_t h1, index_t w0, index_t w1, index_t count) {
                    if (count == 0) return;
                    const T share = src[o] / T(count);
                    for (index_t h = h0; h < h1; ++h)
                        for (index_t w = w0; w < w1; ++w) dst[h * g.width + w] += share;
                });
        });
        return r;
    }
}

// [N, C, H, W] -> [N, C, OH, OW]: the mean of each window (see the header for the divisor).
template <Element T, Device D>
Tensor<T, 4, D> avg_pool2d(const Tensor<T, 4, D>& x, const Pool2dOptions& opts) {
    if constexpr (std::same_as<D, Cpu>) detail::check_pool_types<T>();
    const auto g = detail::pool_geometry("avg_pool2d", x.shape(), opts, false);
    auto y = Tensor<T, 4, D>::empty({x.size(0), x.size(1), g.out_height, g.out_width});
    const auto xd = x.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        const index_t in_plane = g.height * g.width, out_plane = g.out_height * g.out_width;
        detail::for_each_plane(g.planes, in_plane + out_plane * g.kernel_h * g.kernel_w, [&](index_t plane) {
            const T* src = xd.data() + plane * in_plane;
            T* dst = y.data() + plane * out_plane;
            detail::for_each_avg_window(
                g, opts.count_include_pad,
                [&](index_t o, index_t h0, index_t h1, index_t w0, index_t w1, index_t count) {
                    T s = 0;
                    for (index_t h = h0; h < h1; ++h)
                        for (index_t w = w0; w < w1; ++w) s += src[h * g.width + w];
                    dst[o] = count == 0 ? T(0) : s / T(count);
                });
        });
    } else {
#if WEFT_WITH_CUDA
        cuda::avg_pool2d_forward(xd, y, g, opts.count_include_pad);
#endif
    }
    if (needs_grad(x))
        record(
            y, "avg_pool2d",
            [x, opts](const Tensor<T, 4, D>& g) { accumulate_grad(x, avg_pool2d_backward(g, x.detach(), opts).grad_x); },
            x);
    return y;
}

// ---- adaptive average pooling --------------------------------------------------------------

template <Element T, Device D>
Pool2dGrads<T, D> adaptive_avg_pool2d_backward(const Tensor<T, 4, D>& grad_out, const Tensor<T, 4, D>& x) {
    if constexpr (std::same_as<D, Cpu>) detail::check_pool_types<T>();
    WEFT_CHECK(grad_out.size(0) == x.size(0) && grad_out.size(1) == x.size(1),
               "adaptive_avg_pool2d_backward: grad_out of shape ", grad_out.shape(),
               " does not match input of shape ", x.shape(), " (batch and channels must agree)");
    const index_t H = x.size(2), W = x.size(3), OH = grad_out.size(2), OW = grad_out.size(3);
    const auto gd = grad_out.detach().contiguous();
    if constexpr (!std::same_as<D, Cpu>) {
        Pool2dGrads<T, D> r;
#if WEFT_WITH_CUDA
        r.grad_x = cuda::adaptive_avg_pool2d_backward(gd, x.shape());
#endif
        return r;
    } else {
        Pool2dGrads<T, D> r{Tensor<T, 4, D>::zeros(x.shape())};
        detail::for_each_plane(x.size(0) * x.size(1), 2 * H * W + OH * OW, [&](index_t plane) {
            const T* src = gd.data() + plane * OH * OW;
            T* dst = r.grad_x.data() + plane * H * W;
            for (index_t oh = 0; oh < OH; ++oh) {
                const index_t h0 = detail::adaptive_start(oh, H, OH), h1 = detail::adaptive_end(oh, H, OH);
                for (index_t ow = 0; ow < OW; ++ow) {
                    const index_t w0 = detail::adaptive_start(ow, W, OW), w1 = detail::adaptive_end(ow, W, OW);
                    const T share = src[oh * OW + ow] / T((h1 - h0) * (w1 - w0));
                    for (index_t h = h0; h < h1; ++h)
                        for (index_t w = w0; w < w1; ++w) dst[h * W + w] += share;
                }
            }
        });
        return r;
    }
}

// [N, C, H, W] -> [N, C, output_size[0], output_size[1]]: bin i of each axis averages
// [floor(i * In / Out), ceil((i + 1) * In / Out)).
template <Element T, Device D>
Tensor<T, 4, D> adaptive_avg_pool2d(const Tensor<T, 4, D>& x, std::array<index_t, 2> output_size) {
    if constexpr (std::same_as<D, Cpu>) detail::check_pool_types<T>();
    const index_t H = x.size(2), W = x.size(3), OH = output_size[0], OW = output_size[1];
    WEFT_CHECK(OH >= 1 && OW >= 1, "adaptive_avg_pool2d: output size ", detail::pair_shape(output_size),
               " must be positive (input of shape ", x.shape(), ")");
    WEFT_CHECK(H >= 1 && W >= 1, "adaptive_avg_pool2d: input of shape ", x.shape(), " has an empty plane");
    auto y = Tensor<T, 4, D>::empty({x.size(0), x.size(1), OH, OW});
    const auto xd = x.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        detail::for_each_plane(x.size(0) * x.size(1), 2 * H * W + OH * OW, [&](index_t plane) {
            const T* src = xd.data() + plane * H * W;
            T* dst = y.data() + plane * OH * OW;
            for (index_t oh = 0; oh < OH; ++oh) {
                const index_t h0 = detail::adaptive_start(oh, H, OH), h1 = detail::adaptive_end(oh, H, OH);
                for (index_t ow = 0; ow < OW; ++ow) {
                    const index_t w0 = detail::adaptive_start(ow, W, OW), w1 = detail::adaptive_end(ow, W, OW);
                    T s = 0;
                    for (index_t h = h0; h < h1; ++h)
                        for (index_t w = w0; w < w1; ++w) s += src[h * W + w];
                    dst[oh * OW + ow] = s / T((h1 - h0) * (w1 - w0));
                }
            }
        });
    } else {
#if WEFT_WITH_CUDA
        cuda::adaptive_avg_pool2d_forward(xd, y);
#endif
    }
    if (needs_grad(x))
        record(
            y, "adaptive_avg_pool2d",
            [x](const Tensor<T, 4, D>& g) { accumulate_grad(x, adaptive_avg_pool2d_backward(g, x.detach()).grad_x); },
            x);
    return y;
}

}  // namespace weft
