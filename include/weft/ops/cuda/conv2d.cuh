// weft/ops/cuda/conv2d.cuh: conv2d's CUDA half (ops/conv2d.hpp dispatches here for Cuda
// tensors): the forward, the input gradient and the weight gradient, as im2col + cuBLAS.
//
//   auto y  = cuda::conv_forward(x, w, bias_ptr_or_null, g);     // [N, C, H, W] -> [N, O, OH, OW]
//   auto gx = cuda::conv_input_grad(grad_out, w, init_or_null, g);
//   auto gw = cuda::conv_weight_grad(grad_out, x, g);
//
// The same decomposition as the CPU (see ops/conv2d.hpp), with the GEMMs on cuBLAS
// (`Gemm<Cuda>` through detail::gemm_into) and the unfolding in weft kernels:
// - forward: im2col of a chunk of images into col [count, C * kh * kw, OH * OW], then one strided
//   batched product weight [O/G, C/G * kh * kw] x col per group, written straight into the
//   output rows (after they were filled with the bias, beta = 1). A 1x1, stride-1, unpadded
//   convolution reads the input itself as the column matrix.
// - input gradient: col = weightᵀ x grad_out per chunk, then col2im folds col back into the
//   image. col2im is a gather: one thread per input element sums the column entries of the taps
//   that read it (in the CPU's tap order), so there are no atomics and the result does not depend
//   on scheduling. conv_transpose2d's forward is this, each plane starting at its bias.
// - weight gradient: the chunk is unfolded with the images inside the rows, col [C * kh * kw,
//   count * OH * OW], and grad_out rearranged to [O, count * OH * OW]; one product per chunk then
//   sums over the images and pixels inside cuBLAS's float accumulator (rather than one product
//   per image added into the result, which in bf16 would round the running sum image by image).
// The column buffer is bounded (cuda::conv_col_budget_bytes, 256 MiB): the batch runs in chunks
// of as many images as fit. float, double, bf16 and half (the GEMM's types; im2col is a copy,
// col2im sums in float for the 16-bit types).
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/conv2d.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <algorithm>
#include <concepts>

#include "../../core/bf16.hpp"
#include "../../core/dtype.hpp"
#include "../../core/half.hpp"
#include "../../core/tensor.hpp"
#include "../detail/spatial.hpp"
#include "../matmul.hpp"
#include "spatial.cuh"

namespace weft::cuda {

// Bytes of unfolded input kept at once on the GPU (per convolution call). Large enough that a
// training batch of ViT patch embeddings or FPN feature maps unfolds in one or a few chunks,
// small enough not to compete with activations. Not const so that tests can shrink it and make a
// small batch run in several chunks.
inline double conv_col_budget_bytes = double(256 << 20);

namespace kernels {

// Unfolds `count` dense images x [count, C, H, W]: element (n, row, p), row = (c, i, j) a kernel
// tap and p = (oh, ow) an output pixel, is the input under tap (i, j) of output pixel p, or 0
// where the tap falls into the padding. It is stored at col[n * image_stride + row * row_stride
// + p]: [count, rows, P] when image_stride = rows * P and row_stride = P, [rows, count * P] when
// image_stride = P and row_stride = count * P. total = count * C * kh * kw * P; the flat index
// runs over p fastest, so the writes are coalesced in either layout.
template <class T, class I>
__global__ void __launch_bounds__(256)
    im2col(const T* __restrict__ x, T* __restrict__ col, const weft::detail::ConvGeometry g, index_t image_stride,
           index_t row_stride, I total) {
    const I OW = I(g.out_width), OH = I(g.out_height), KW = I(g.kernel_w), KH = I(g.kernel_h), C = I(g.channels);
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const I ow = rest % OW;
        rest /= OW;
        const I oh = rest % OH;
        rest /= OH;
        const I j = rest % KW;
        rest /= KW;
        const I i = rest % KH;
        rest /= KH;
        const I c = rest % C;
        const I n = rest / C;
        const index_t ih = index_t(oh) * g.stride_h - g.pad_h + index_t(i) * g.dil_h;
        const index_t iw = index_t(ow) * g.stride_w - g.pad_w + index_t(j) * g.dil_w;
        T v = convert<T>(0.0f);
        if (ih >= 0 && ih < g.height && iw >= 0 && iw < g.width)
            v = x[((index_t(n) * g.channels + index_t(c)) * g.height + ih) * g.width + iw];
        const index_t row = (index_t(c) * g.kernel_h + index_t(i)) * g.kernel_w + index_t(j);
        col[index_t(n) * image_stride + row * row_stride + index_t(oh) * g.out_width + index_t(ow)] = v;
    }
}

// The adjoint of im2col (layout [count, C * kh * kw, P]) as a gather: input element (n, c, ih,
// iw) of the dense x [count, C, H, W] is init[c] (or 0) plus the column entries of every tap
// (i, j) whose output pixel (oh, ow) reads it, oh * stride_h = ih + pad_h - i * dil_h (and the
// same for columns). Taps are added in increasing (i, j), as the CPU's col2im does; the 16-bit
// types sum in float. total = count * C * H * W, and x's flat index is the thread's.
template <class T, class I>
__global__ void __launch_bounds__(256)
    col2im(const T* __restrict__ col, T* __restrict__ x, const T* __restrict__ init,
           const weft::detail::ConvGeometry g, I total) {
    using A = compute_t<T>;
    const I W = I(g.width), H = I(g.height), C = I(g.channels);
    const index_t P = g.out_height * g.out_width, taps = g.kernel_h * g.kernel_w;
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step) {
        I rest = t;
        const index_t iw = index_t(rest % W);
        rest /= W;
        const index_t ih = index_t(rest % H);
        rest /= H;
        const I plane = rest;  // n * C + c
        A acc = init ? convert<A>(init[plane % C]) : A(0);
        const T* rows = col + index_t(plane) * taps * P;  // the taps of channel c of image n
        for (index_t i = 0; i < g.kernel_h; ++i) {
            const index_t th = ih + g.pad_h - i * g.dil_h;  // oh * stride_h, if some oh reads ih
            if (th < 0) break;                              // decreasing in i
            index_t oh = th;
            if (g.stride_h != 1) {
                if (th % g.stride_h != 0) continue;
                oh = th / g.stride_h;
            }
            if (oh >= g.out_height) continue;
            for (index_t j = 0; j < g.kernel_w; ++j) {
                const index_t tw = iw + g.pad_w - j * g.dil_w;
                if (tw < 0) break;
                index_t ow = tw;
                if (g.stride_w != 1) {
                    if (tw % g.stride_w != 0) continue;
                    ow = tw / g.stride_w;
                }
                if (ow >= g.out_width) continue;
                acc += convert<A>(rows[(i * g.kernel_w + j) * P + oh * g.out_width + ow]);
            }
        }
        x[t] = convert<T>(acc);
    }
}

// out [planes, plane_size] = value[(flat plane index) % channels]: a per-channel value (a bias)
// broadcast over the images and pixels of [N, channels, plane_size].
template <class T, class I>
__global__ void __launch_bounds__(256)
    fill_channels(T* __restrict__ out, const T* __restrict__ value, I channels, I plane_size, I total) {
    const I step = I(gridDim.x) * I(blockDim.x);
    for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < total; t += step)
        out[t] = value[(t / plane_size) % channels];
}

}  // namespace kernels

namespace detail {

template <class T>
void check_conv_types() {
    static_assert(std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, bf16> ||
                      std::same_as<T, half>,
                  "weft: convolutions on CUDA take float, double, bf16 or half tensors");
}

// Images per chunk when each image needs `per_image` elements of scratch: as many as the budget
// allows, at least one, at most the batch.
template <class T>
index_t conv_images_per_chunk(const weft::detail::ConvGeometry& g, index_t per_image) {
    const double bytes = double(per_image) * double(sizeof(T));
    return std::clamp<index_t>(index_t(conv_col_budget_bytes / std::max(bytes, 1.0)), 1,
                               std::max<index_t>(g.batch, 1));
}

// im2col of `count` dense images at x into col, [count, rows, P] or, with images_inside_rows,
// [rows, count * P] (rows = C * kh * kw, P = OH * OW).
template <class T>
void im2col(const T* x, T* col, const weft::detail::ConvGeometry& g, index_t count, bool images_inside_rows) {
    const index_t rows = g.channels * g.taps(), P = g.pixels();
    const index_t image_stride = images_inside_rows ? P : rows * P;
    const index_t row_stride = images_inside_rows ? count * P : P;
    const index_t total = count * rows * P;
    launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::im2col<T, I>
            <<<grid, block_threads, 0, current_stream()>>>(x, col, g, image_stride, row_stride, I(total));
    });
}

// col2im of `count` images: col [count, rows, P] -> dense x [count, C, H, W], plane c starting
// at init[c] when init is not null.
template <class T>
void col2im(const T* col, T* x, const T* init, const weft::detail::ConvGeometry& g, index_t count) {
    const index_t total = count * g.channels * g.in_pixels();
    launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::col2im<T, I><<<grid, block_threads, 0, current_stream()>>>(col, x, init, g, I(total));
    });
}

// out [N, channels, plane_size] (dense) = value[c] in every plane c.
template <class T>
void fill_channels(T* out, const T* value, index_t channels, index_t plane_size, index_t total) {
    launch_spatial(total, [&](auto index, unsigned grid) {
        using I = decltype(index);
        kernels::fill_channels<T, I>
            <<<grid, block_threads, 0, current_stream()>>>(out, value, I(channels), I(plane_size), I(total));
    });
}

// out[n, group] = a[group] x in[n, group] + beta * out[n, group] for every image n and group:
// out [n, G * M, P], a [G, M, K] (shared by the images), in [n, G * K, P]. With groups, the
// product is batched over whichever of images and groups is larger and loops over the other.
template <class T>
void grouped_product(const Tensor<T, 3, Cuda>& out, const Tensor<T, 3, Cuda>& a, const Tensor<T, 3, Cuda>& in,
                     index_t groups, T beta) {
    if (groups == 1) {  // one strided batched call, the weight shared by every image
        weft::detail::gemm_into(out, a, in, T(1), beta);
        return;
    }
    const index_t images = out.size(0), m = a.size(1), k = a.size(2), p = out.size(2);
    if (groups <= images) {
        // Group by group: the group's rows of every image are a batch with uniform strides.
        for (index_t grp = 0; grp < groups; ++grp)
            weft::detail::gemm_into(out.slice(1, grp * m, (grp + 1) * m), a.slice(0, grp, grp + 1),
                                    in.slice(1, grp * k, (grp + 1) * k), T(1), beta);
    } else {
        // Image by image (depthwise convolutions of a few images): the groups are the batch.
        for (index_t n = 0; n < images; ++n)
            weft::detail::gemm_into(out.select(0, n).reshape(Shape<3>{groups, m, p}), a,
                                    in.select(0, n).reshape(Shape<3>{groups, k, p}), T(1), beta);
    }
}

}  // namespace detail

// The convolution: x [N, C, H, W] and w [O, C/G, kh, kw], both dense, -> [N, O, OH, OW]
// (+ bias [O], a device pointer, when not null).
template <class T>
Tensor<T, 4, Cuda> conv_forward(const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w, const T* bias,
                                const weft::detail::ConvGeometry& g) {
    detail::check_conv_types<T>();
    const index_t N = g.batch, C = g.channels, O = g.out_channels, P = g.pixels(), G = g.groups;
    auto out = Tensor<T, 4, Cuda>::empty({N, O, g.out_height, g.out_width});
    if (out.numel() == 0) return out;
    if (bias) detail::fill_channels(out.data(), bias, O, P, N * O * P);  // the products add to it
    const T beta = bias ? T(1) : T(0);
    const auto w3 = w.reshape(Shape<3>{G, g.group_out(), g.patch()});  // [G, O/G, C/G * kh * kw]
    const auto out3 = out.reshape(Shape<3>{N, O, P});
    if (g.pointwise()) {
        detail::grouped_product(out3, w3, x.reshape(Shape<3>{N, C, P}), G, beta);
        return out;
    }
    const index_t rows = C * g.taps();
    const index_t chunk = detail::conv_images_per_chunk<T>(g, rows * P);
    auto col = Tensor<T, 3, Cuda>::empty({chunk, rows, P});  // reused by every chunk (stream order)
    for (index_t n0 = 0; n0 < N; n0 += chunk) {
        const index_t count = std::min(chunk, N - n0);
        detail::im2col(x.data() + n0 * C * g.in_pixels(), col.data(), g, count, false);
        detail::grouped_product(out3.slice(0, n0, n0 + count), w3, col.slice(0, 0, count), G, beta);
    }
    return out;
}

// The gradient of the convolution's input: grad_out [N, O, OH, OW] and w, both dense, ->
// [N, C, H, W]; each plane c starts at init[c] (a device pointer) when init is not null.
// (conv_transpose2d's forward, with init its bias.)
template <class T>
Tensor<T, 4, Cuda> conv_input_grad(const Tensor<T, 4, Cuda>& grad_out, const Tensor<T, 4, Cuda>& w, const T* init,
                                   const weft::detail::ConvGeometry& g) {
    detail::check_conv_types<T>();
    const index_t N = g.batch, C = g.channels, P = g.pixels(), G = g.groups;
    auto gx = Tensor<T, 4, Cuda>::empty({N, C, g.height, g.width});
    if (gx.numel() == 0) return gx;
    // [G, C/G * kh * kw, O/G]: the transposed weight, read in place (a transpose flag for cuBLAS)
    const auto wt = w.reshape(Shape<3>{G, g.group_out(), g.patch()}).transpose(1, 2);
    const auto g3 = grad_out.reshape(Shape<3>{N, g.out_channels, P});
    if (g.pointwise()) {
        if (init) detail::fill_channels(gx.data(), init, C, P, N * C * P);
        detail::grouped_product(gx.reshape(Shape<3>{N, C, P}), wt, g3, G, init ? T(1) : T(0));
        return gx;
    }
    const index_t rows = C * g.taps();
    const index_t chunk = detail::conv_images_per_chunk<T>(g, rows * P);
    auto col = Tensor<T, 3, Cuda>::empty({chunk, rows, P});
    for (index_t n0 = 0; n0 < N; n0 += chunk) {
        const index_t count = std::min(chunk, N - n0);
        detail::grouped_product(col.slice(0, 0, count), wt, g3.slice(0, n0, n0 + count), G, T(0));
        detail::col2im(col.data(), gx.data() + n0 * C * g.in_pixels(), init, g, count);
    }
    return gx;
}

// The gradient of the weight: grad_out [N, O, OH, OW] and x [N, C, H, W], both dense, ->
// [O, C/G, kh, kw] = sum over images and pixels of grad_out x col(x)ᵀ, group by group.
template <class T>
Tensor<T, 4, Cuda> conv_weight_grad(const Tensor<T, 4, Cuda>& grad_out, const Tensor<T, 4, Cuda>& x,
                                    const weft::detail::ConvGeometry& g) {
    detail::check_conv_types<T>();
    const index_t N = g.batch, C = g.channels, O = g.out_channels, P = g.pixels(), G = g.groups;
    auto gw = Tensor<T, 4, Cuda>::empty({O, g.group_channels(), g.kernel_h, g.kernel_w});
    if (gw.numel() == 0) return gw;
    if (N == 0 || P == 0) return Tensor<T, 4, Cuda>::zeros(gw.shape());
    const auto gw3 = gw.reshape(Shape<3>{G, g.group_out(), g.patch()});  // [G, O/G, C/G * kh * kw]
    const auto g3 = grad_out.reshape(Shape<3>{N, O, P});
    const index_t rows = C * g.taps();
    // Scratch per image: its columns and its rearranged output gradient.
    const index_t chunk = detail::conv_images_per_chunk<T>(g, (rows + O) * P);
    auto col = Tensor<T, 1, Cuda>::empty({chunk * rows * P});
    for (index_t n0 = 0; n0 < N; n0 += chunk) {
        const index_t count = std::min(chunk, N - n0), k = count * P;
        detail::im2col(x.data() + n0 * C * g.in_pixels(), col.data(), g, count, true);  // [rows, count * P]
        // [O, count, P]: each output channel's gradients of the chunk's images, side by side
        const auto gc = g3.slice(0, n0, n0 + count).permute(1, 0, 2).contiguous();
        // gw[group] (+)= grad[group] [O/G, count * P] x col[group]ᵀ [count * P, C/G * kh * kw]
        weft::detail::gemm_into(gw3, gc.reshape(Shape<3>{G, g.group_out(), k}),
                                col.slice(0, 0, rows * k).reshape(Shape<3>{G, g.patch(), k}).transpose(1, 2), T(1),
                                n0 == 0 ? T(0) : T(1));
    }
    return gw;
}

}  // namespace weft::cuda
