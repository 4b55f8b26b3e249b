// weft/ops/cuda/pool.cuh: max_pool2d, avg_pool2d and adaptive_avg_pool2d on the GPU, forward and
// backward (ops/pool.hpp dispatches here for Cuda tensors; the geometry and the checks are its).
//
//   cuda::max_pool2d_forward(x, out, indices, g);           // x dense; out, indices preallocated
//   auto gx = cuda::max_pool2d_backward(grad_out, indices, x.shape());
//   cuda::avg_pool2d_forward(x, out, g, count_include_pad);
//   auto gx = cuda::avg_pool2d_backward(grad_out, x.shape(), g, count_include_pad);
//   cuda::adaptive_avg_pool2d_forward(x, out);
//   auto gx = cuda::adaptive_avg_pool2d_backward(grad_out, x.shape());
//
// The forwards run one thread per output element, each walking its window exactly as the CPU
// loop does (same window bounds, same order, the same first-maximum and NaN rule, the index
// h * W + w within the plane or -1 for a window of padding only).
//
// The average poolings' backward is a gather, one thread per input element: it visits the
// windows that cover the element (a small range of output rows and columns, found from the
// stride, then checked exactly) in the CPU's order and adds each window's share, so it needs no
// atomics and, in float, rounds as the CPU does.
//
// max_pool2d's backward cannot gather: it is given only the indices, not the pooling options, so
// the windows are unknown. Each output adds its gradient to the input element its index names,
// with atomicAdd (float or double; the 16-bit types add into a float buffer that is rounded once
// at the end). Where windows overlap (stride < kernel) an element can receive several gradients
// and their summation order varies from run to run, so results may differ in the last bits;
// non-overlapping windows are exact. An index outside the plane (possible only with indices that
// did not come from max_pool2d_with_indices) is skipped here, where the CPU throws: checking it
// would need the device to report back to the host.
//
// float, double, bf16 and half; the 16-bit types compare and sum in float.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/pool.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <algorithm>
#include <concepts>
#include <limits>
#include <type_traits>

#include "../../core/bf16.hpp"
#include "../../core/dtype.hpp"
#include "../../core/half.hpp"
#include "../../core/tensor.hpp"
#include "../../expr.hpp"
#include "../detail/spatial.hpp"
#include "spatial.cuh"

namespace weft::cuda {

namespace kernels {

// ---- max pooling ---------------------------------------------------------------------------

// One output element per thread: total = planes * OH * OW.
template <class T, class I>
__global__ void __launch_bounds__(256)
    max_pool2d_forward(const T* __restrict__ x, T* __restrict__ out, index_t* __restrict__ indices,
                       const weft::detail::PoolGeometry g, I total) {
    using A = compute_t<T>;
    const I OW = I(g.out_width), OH = I(g.out_height);
    const index_t H = g.height, W = g.width;
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const index_t ow = index_t(rest % OW);
        rest /= OW;
        const index_t oh = index_t(rest % OH);
        const index_t plane = index_t(rest / OH);
        const T* src = x + plane * H * W;
        // The window's rows h0, h0 + dil, ... below h1, the ones in the padding skipped.
        index_t h0 = oh * g.stride_h - g.pad_h;
        const index_t h1 = std::min<index_t>(h0 + (g.kernel_h - 1) * g.dil_h + 1, H);
        if (h0 < 0) h0 += (-h0 + g.dil_h - 1) / g.dil_h * g.dil_h;
        index_t w0 = ow * g.stride_w - g.pad_w;
        const index_t w1 = std::min<index_t>(w0 + (g.kernel_w - 1) * g.dil_w + 1, W);
        if (w0 < 0) w0 += (-w0 + g.dil_w - 1) / g.dil_w * g.dil_w;
        A best = -std::numeric_limits<A>::infinity();
        index_t best_at = h0 < h1 && w0 < w1 ? h0 * W + w0 : -1;  // -1: the window holds only padding
        for (index_t h = h0; h < h1; h += g.dil_h) {
            for (index_t w = w0; w < w1; w += g.dil_w) {
                const A v = convert<A>(src[h * W + w]);
                if (v > best || v != v) {  // strict: the first maximum wins; a NaN always does
                    best = v;
                    best_at = h * W + w;
                }
            }
        }
        out[t] = convert<T>(best);
        indices[t] = best_at;
    }
}

// gx[plane, indices[t]] += grad_out[t] for every output element t (total = planes * out_plane);
// A is float or double (atomicAdd's types).
template <class A, class T, class I>
__global__ void __launch_bounds__(256)
    max_pool2d_backward(const T* __restrict__ grad_out, const index_t* __restrict__ indices, A* __restrict__ gx,
                        index_t in_plane, I out_plane, I total) {
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        const index_t at = indices[t];
        if (at < 0 || at >= in_plane) continue;  // a window of padding only (or a foreign index)
        atomicAdd(gx + index_t(t / out_plane) * in_plane + at, convert<A>(grad_out[t]));
    }
}

// ---- average pooling -----------------------------------------------------------------------

// Window (oh, ow) of avg_pool2d clipped to the input, [h0, h1) x [w0, w1), and its divisor: the
// CPU's for_each_avg_window for one window.
struct AvgWindow {
    index_t h0, h1, w0, w1, count;
};

__device__ inline AvgWindow avg_window(const weft::detail::PoolGeometry& g, bool count_include_pad, index_t oh,
                                       index_t ow) {
    AvgWindow r;
    r.h0 = oh * g.stride_h - g.pad_h;
    r.h1 = std::min<index_t>(r.h0 + g.kernel_h, g.height + g.pad_h);
    const index_t padded_h = r.h1 - r.h0;
    r.h0 = std::max<index_t>(r.h0, index_t(0));
    r.h1 = std::min<index_t>(r.h1, g.height);
    r.w0 = ow * g.stride_w - g.pad_w;
    r.w1 = std::min<index_t>(r.w0 + g.kernel_w, g.width + g.pad_w);
    const index_t padded_w = r.w1 - r.w0;
    r.w0 = std::max<index_t>(r.w0, index_t(0));
    r.w1 = std::min<index_t>(r.w1, g.width);
    r.count = count_include_pad ? padded_h * padded_w : (r.h1 - r.h0) * (r.w1 - r.w0);
    return r;
}

// The outputs o of one axis whose window starts at o * stride - pad and spans `kernel`
// elements may cover input position i only within [lo, hi] (clamped to [0, out - 1]; callers
// still check each window exactly).
__device__ inline void covering_windows(index_t i, index_t kernel, index_t stride, index_t pad, index_t out,
                                        index_t& lo, index_t& hi) {
    // o * stride - pad <= i  and  o * stride - pad + kernel > i
    const index_t above = i + pad - kernel;  // o * stride > above
    lo = above < 0 ? 0 : above / stride + 1;
    hi = std::min<index_t>((i + pad) / stride, out - 1);
}

// One output element per thread: total = planes * OH * OW.
template <class T, class I>
__global__ void __launch_bounds__(256)
    avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ out, const weft::detail::PoolGeometry g,
                       bool count_include_pad, I total) {
    using A = compute_t<T>;
    const I OW = I(g.out_width), OH = I(g.out_height);
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const index_t ow = index_t(rest % OW);
        rest /= OW;
        const index_t oh = index_t(rest % OH);
        const index_t plane = index_t(rest / OH);
        const T* src = x + plane * g.height * g.width;
        const AvgWindow win = avg_window(g, count_include_pad, oh, ow);
        A s = A(0);
        for (index_t h = win.h0; h < win.h1; ++h)
            for (index_t w = win.w0; w < win.w1; ++w) s += convert<A>(src[h * g.width + w]);
        out[t] = convert<T>(win.count == 0 ? A(0) : s / A(win.count));
    }
}

// One input element per thread (total = planes * H * W): the sum of the shares of the windows
// covering it, in the CPU's (oh, ow) order.
template <class T, class I>
__global__ void __launch_bounds__(256)
    avg_pool2d_backward(const T* __restrict__ grad_out, T* __restrict__ gx, const weft::detail::PoolGeometry g,
                        bool count_include_pad, I total) {
    using A = compute_t<T>;
    const I W = I(g.width), H = I(g.height);
    const index_t OH = g.out_height, OW = g.out_width;
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const index_t iw = index_t(rest % W);
        rest /= W;
        const index_t ih = index_t(rest % H);
        const index_t plane = index_t(rest / H);
        const T* src = grad_out + plane * OH * OW;
        index_t oh_lo, oh_hi, ow_lo, ow_hi;
        covering_windows(ih, g.kernel_h, g.stride_h, g.pad_h, OH, oh_lo, oh_hi);
        covering_windows(iw, g.kernel_w, g.stride_w, g.pad_w, OW, ow_lo, ow_hi);
        A acc = A(0);
        for (index_t oh = oh_lo; oh <= oh_hi; ++oh) {
            for (index_t ow = ow_lo; ow <= ow_hi; ++ow) {
                const AvgWindow win = avg_window(g, count_include_pad, oh, ow);
                if (win.count == 0 || ih < win.h0 || ih >= win.h1 || iw < win.w0 || iw >= win.w1) continue;
                acc += convert<A>(src[oh * OW + ow]) / A(win.count);
            }
        }
        gx[t] = convert<T>(acc);
    }
}

// ---- adaptive average pooling --------------------------------------------------------------

// Bin i of `out` bins over `in` positions: [floor(i * in / out), ceil((i + 1) * in / out)).
__device__ inline index_t adaptive_start(index_t i, index_t in, index_t out) { return (i * in) / out; }
__device__ inline index_t adaptive_end(index_t i, index_t in, index_t out) { return ((i + 1) * in + out - 1) / out; }

// One output element per thread: total = planes * OH * OW.
template <class T, class I>
__global__ void __launch_bounds__(256)
    adaptive_avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ out, index_t H, index_t W, I OH, I OW,
                                I total) {
    using A = compute_t<T>;
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const index_t ow = index_t(rest % OW);
        rest /= OW;
        const index_t oh = index_t(rest % OH);
        const index_t plane = index_t(rest / OH);
        const T* src = x + plane * H * W;
        const index_t h0 = adaptive_start(oh, H, OH), h1 = adaptive_end(oh, H, OH);
        const index_t w0 = adaptive_start(ow, W, OW), w1 = adaptive_end(ow, W, OW);
        A s = A(0);
        for (index_t h = h0; h < h1; ++h)
            for (index_t w = w0; w < w1; ++w) s += convert<A>(src[h * W + w]);
        out[t] = convert<T>(s / A((h1 - h0) * (w1 - w0)));
    }
}

// One input element per thread (total = planes * H * W). The bins covering position i are
// [floor(i * out / in), floor(((i + 1) * out - 1) / in)]; each is still checked exactly.
template <class T, class I>
__global__ void __launch_bounds__(256)
    adaptive_avg_pool2d_backward(const T* __restrict__ grad_out, T* __restrict__ gx, I H, I W, index_t OH,
                                 index_t OW, I total) {
    using A = compute_t<T>;
    const I step = I(gridDim.x) * I(blockDim.x);
    const index_t h_in = index_t(H), w_in = index_t(W);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const index_t iw = index_t(rest % W);
        rest /= W;
        const index_t ih = index_t(rest % H);
        const index_t plane = index_t(rest / H);
        const T* src = grad_out + plane * OH * OW;
        const index_t oh_lo = (ih * OH) / h_in, oh_hi = std::min<index_t>(((ih + 1) * OH - 1) / h_in, OH - 1);
        const index_t ow_lo = (iw * OW) / w_in, ow_hi = std::min<index_t>(((iw + 1) * OW - 1) / w_in, OW - 1);
        A acc = A(0);
        for (index_t oh = oh_lo; oh <= oh_hi; ++oh) {
            const index_t h0 = adaptive_start(oh, h_in, OH), h1 = adaptive_end(oh, h_in, OH);
            if (ih < h0 || ih >= h1) continue;
            for (index_t ow = ow_lo; ow <= ow_hi; ++ow) {
                const index_t w0 = adaptive_start(ow, w_in, OW), w1 = adaptive_end(ow, w_in, OW);
                if (iw < w0 || iw >= w1) continue;
                acc += convert<A>(src[oh * OW + ow]) / A((h1 - h0) * (w1 - w0));
            }
        }
        gx[t] = convert<T>(acc);
    }
}

}  // namespace kernels

namespace detail {

template <class T>
void check_pool_types() {
    static_assert(std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, bf16> ||
                      std::same_as<T, half>,
                  "weft: pooling on CUDA takes float, double, bf16 or half tensors");
}

}  // namespace detail

// x [N, C, H, W] (dense) -> out [N, C, OH, OW] and indices (same shape), both preallocated.
template <class T>
void max_pool2d_forward(const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& out,
                        const Tensor<index_t, 4, Cuda>& indices, const weft::detail::PoolGeometry& g) {
    detail::check_pool_types<T>();
    const index_t total = out.numel();
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::max_pool2d_forward<T, I>
            <<<grid, block_threads, 0, current_stream()>>>(x.data(), out.data(), indices.data(), g, I(total));
    });
}

// grad_out and indices [N, C, OH, OW] (dense) -> the gradient of the input, x_shape.
template <class T>
Tensor<T, 4, Cuda> max_pool2d_backward(const Tensor<T, 4, Cuda>& grad_out, const Tensor<index_t, 4, Cuda>& indices,
                                       const Shape<4>& x_shape) {
    detail::check_pool_types<T>();
    using A = std::conditional_t<std::same_as<T, double>, double, float>;  // what atomicAdd sums in
    auto acc = Tensor<A, 4, Cuda>::zeros(x_shape);
    const index_t total = grad_out.numel();
    const index_t in_plane = x_shape[2] * x_shape[3], out_plane = grad_out.size(2) * grad_out.size(3);
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::max_pool2d_backward<A, T, I><<<grid, block_threads, 0, current_stream()>>>(
            grad_out.data(), indices.data(), acc.data(), in_plane, I(out_plane), I(total));
    });
    if constexpr (std::same_as<A, T>) return acc;
    else return Tensor<T, 4, Cuda>(cast<T>(acc));  // rounded once
}

// x [N, C, H, W] (dense) -> out [N, C, OH, OW], preallocated.
template <class T>
void avg_pool2d_forward(const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& out,
                        const weft::detail::PoolGeometry& g, bool count_include_pad) {
    detail::check_pool_types<T>();
    const index_t total = out.numel();
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::avg_pool2d_forward<T, I>
            <<<grid, block_threads, 0, current_stream()>>>(x.data(), out.data(), g, count_include_pad, I(total));
    });
}

// grad_out [N, C, OH, OW] (dense) -> the gradient of the input, x_shape.
template <class T>
Tensor<T, 4, Cuda> avg_pool2d_backward(const Tensor<T, 4, Cuda>& grad_out, const Shape<4>& x_shape,
                                       const weft::detail::PoolGeometry& g, bool count_include_pad) {
    detail::check_pool_types<T>();
    auto gx = Tensor<T, 4, Cuda>::empty(x_shape);
    const index_t total = gx.numel();
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::avg_pool2d_backward<T, I>
            <<<grid, block_threads, 0, current_stream()>>>(grad_out.data(), gx.data(), g, count_include_pad, I(total));
    });
    return gx;
}

// x [N, C, H, W] (dense) -> out [N, C, OH, OW], preallocated (OH, OW >= 1, H, W >= 1).
template <class T>
void adaptive_avg_pool2d_forward(const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& out) {
    detail::check_pool_types<T>();
    const index_t total = out.numel();
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::adaptive_avg_pool2d_forward<T, I><<<grid, block_threads, 0, current_stream()>>>(
            x.data(), out.data(), x.size(2), x.size(3), I(out.size(2)), I(out.size(3)), I(total));
    });
}

// grad_out [N, C, OH, OW] (dense) -> the gradient of the input, x_shape.
template <class T>
Tensor<T, 4, Cuda> adaptive_avg_pool2d_backward(const Tensor<T, 4, Cuda>& grad_out, const Shape<4>& x_shape) {
    detail::check_pool_types<T>();
    auto gx = Tensor<T, 4, Cuda>::empty(x_shape);
    const index_t total = gx.numel();
    detail::launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::adaptive_avg_pool2d_backward<T, I><<<grid, block_threads, 0, current_stream()>>>(
            grad_out.data(), gx.data(), I(x_shape[2]), I(x_shape[3]), grad_out.size(2), grad_out.size(3), I(total));
    });
    return gx;
}

}  // namespace weft::cuda
