// weft/ops/conv_transpose2d.hpp: transposed 2-D convolution (torch.nn.functional.
// conv_transpose2d), forward and backward.
//
//   auto y = conv_transpose2d(x, weight, bias, {.stride = {2, 2}, .padding = {1, 1},
//                                               .output_padding = {1, 1}});
//   // x [N, Cin, H, W], weight [Cin, Cout / groups, kh, kw] -> y [N, Cout, OH, OW],
//   // OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1
//   auto [gx, gw, gb] = conv_transpose2d_backward(g, x, weight, true, opts);
//
// It is the adjoint of conv2d with the same options: conv_transpose2d(x, w) is the gradient that
// conv2d(., w) sends to its input when x is the gradient of its output. So it reuses conv2d's
// kernels with the roles swapped (ops/conv2d.hpp): the forward is conv2d's input gradient
// (weightᵀ x x, then col2im, starting each output plane at its bias), the input gradient is a
// plain conv2d of grad_out, and the weight gradient is conv2d's weight gradient with x as the
// "output gradient" and grad_out as the "input". output_padding only adds rows and columns at
// the bottom and right (they get bias and whatever kernel taps reach them), so it must be
// smaller than the stride or the dilation, as in PyTorch.
//
// Float and double on the CPU; on CUDA (ops/cuda/conv_transpose2d.cuh) the same reuse of conv2d's
// CUDA pieces, for float, double, bf16 and half.
#pragma once

#include <utility>
#include <array>

#include "conv2d.hpp"
#if WEFT_WITH_CUDA
#include "cuda/conv_transpose2d.cuh"
#endif

namespace weft {

struct ConvTranspose2dOptions {
    std::array<index_t, 2> stride{1, 1}, padding{0, 0}, output_padding{0, 0}, dilation{1, 1};
    index_t groups = 1;
};

namespace detail {

// Checks conv_transpose2d's arguments; the geometry is that of the conv2d it is the adjoint
// of: that conv's input is this op's output [N, Cout, OH, OW], its output this op's input.
inline ConvGeometry conv_transpose2d_geometry(const char* op, const Shape<4>& x, const Shape<4>& w,
                                              const ConvTranspose2dOptions& o) {
    WEFT_CHECK(o.groups >= 1, op, ": groups must be at least 1, got ", o.groups);
    WEFT_CHECK(o.stride[0] >= 1 && o.stride[1] >= 1, op, ": stride must be positive, got ", pair_shape(o.stride));
    WEFT_CHECK(o.dilation[0] >= 1 && o.dilation[1] >= 1, op, ": dilation must be positive, got ",
               pair_shape(o.dilation));
    WEFT_CHECK(o.padding[0] >= 0 && o.padding[1] >= 0, op, ": padding must not be negative, got ",
               pair_shape(o.padding));
    for (int a = 0; a < 2; ++a)
        WEFT_CHECK(o.output_padding[a] >= 0 &&
                       (o.output_padding[a] < o.stride[a] || o.output_padding[a] < o.dilation[a]),
                   op, ": output_padding ", pair_shape(o.output_padding),
                   " must be smaller than either the stride ", pair_shape(o.stride), " or the dilation ",
                   pair_shape(o.dilation));
    WEFT_CHECK(x[1] == w[0], op, ": input of shape ", x, " has ", x[1], " channels but weight of shape ", w,
               " expects ", w[0], " (weight is [in_channels, out_channels / groups, kh, kw])");
    WEFT_CHECK(w[0] % o.groups == 0, op, ": weight of shape ", w, " has ", w[0],
               " input channels, not divisible by groups = ", o.groups);
    ConvGeometry g;
    g.batch = x[0];
    g.out_channels = x[1], g.out_height = x[2], g.out_width = x[3];
    g.channels = w[1] * o.groups, g.kernel_h = w[2], g.kernel_w = w[3];
    g.stride_h = o.stride[0], g.stride_w = o.stride[1];
    g.pad_h = o.padding[0], g.pad_w = o.padding[1];
    g.dil_h = o.dilation[0], g.dil_w = o.dilation[1];
    g.groups = o.groups;
    g.height = (x[2] - 1) * g.stride_h - 2 * g.pad_h + g.dil_h * (g.kernel_h - 1) + o.output_padding[0] + 1;
    g.width = (x[3] - 1) * g.stride_w - 2 * g.pad_w + g.dil_w * (g.kernel_w - 1) + o.output_padding[1] + 1;
    WEFT_CHECK(x[2] >= 1 && x[3] >= 1 && g.kernel_h >= 1 && g.kernel_w >= 1 && g.height >= 1 && g.width >= 1, op,
               ": input of shape ", x, " and weight of shape ", w, " with padding ", pair_shape(o.padding),
               " give an empty output (", g.height, "x", g.width, ")");
    return g;
}

}  // namespace detail

// ---- backward ------------------------------------------------------------------------------

// Gradients of sum(grad_out * conv_transpose2d(x, weight, bias, opts)); grad_b only when has_bias.
template <Element T, Device D>
Conv2dGrads<T, D> conv_transpose2d_backward(const Tensor<T, 4, D>& grad_out, const Tensor<T, 4, D>& x,
                                            const Tensor<T, 4, D>& weight, bool has_bias,
                                            const ConvTranspose2dOptions& opts = {}, bool need_x = true,
                                            bool need_w = true) {
    if constexpr (std::same_as<D, Cpu>) detail::check_conv_types<T>();
    const auto g = detail::conv_transpose2d_geometry("conv_transpose2d_backward", x.shape(), weight.shape(), opts);
    detail::check_conv_grad_out("conv_transpose2d_backward", Shape<4>{g.batch, g.channels, g.height, g.width},
                                grad_out.shape(), x.shape(), weight.shape());
    Conv2dGrads<T, D> grads;
    const auto gd = grad_out.detach().contiguous();
    const auto wd = weight.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        if (need_x) grads.grad_x = detail::conv_forward<T>(gd, wd, nullptr, g);
        if (need_w) grads.grad_w = detail::conv_weight_grad<T>(x.detach().contiguous(), gd, g);
    } else {
#if WEFT_WITH_CUDA
        if (need_x) grads.grad_x = cuda::conv_transpose2d_input_grad<T>(gd, wd, g);
        if (need_w) grads.grad_w = cuda::conv_transpose2d_weight_grad<T>(gd, x.detach().contiguous(), g);
#endif
    }
    if (has_bias) grads.grad_b = detail::conv_bias_grad(gd);
    return grads;
}

// ---- forward -------------------------------------------------------------------------------

// [N, Cin, H, W] with weight [Cin, Cout / groups, kh, kw] (+ bias [Cout]) -> [N, Cout, OH, OW]
template <Element T, Device D>
Tensor<T, 4, D> conv_transpose2d(const Tensor<T, 4, D>& x, const Tensor<T, 4, D>& weight,
                                 const Tensor<T, 1, D>& bias = {}, const ConvTranspose2dOptions& opts = {}) {
    if constexpr (std::same_as<D, Cpu>) detail::check_conv_types<T>();
    const auto g = detail::conv_transpose2d_geometry("conv_transpose2d", x.shape(), weight.shape(), opts);
    WEFT_CHECK(!bias.defined() || bias.size(0) == g.channels, "conv_transpose2d: bias of shape ", bias.shape(),
               " does not fit weight of shape ", weight.shape(), " with groups = ", opts.groups, " (expected [",
               g.channels, "])");
    const auto bd = bias.defined() ? bias.detach().contiguous() : Tensor<T, 1, D>();
    Tensor<T, 4, D> y;  // [N, Cout, OH, OW]
    if constexpr (std::same_as<D, Cpu>) {
        y = detail::conv_input_grad<T>(x.detach().contiguous(), weight.detach().contiguous(),
                                       bias.defined() ? bd.data() : nullptr, g);
    } else {
#if WEFT_WITH_CUDA
        y = cuda::conv_transpose2d_forward<T>(x.detach().contiguous(), weight.detach().contiguous(),
                                              bias.defined() ? bd.data() : nullptr, g);
#endif
    }
    if (needs_grad(x, weight, bias))
        record(
            y, "conv_transpose2d",
            [x, weight, bias, opts](const Tensor<T, 4, D>& grad) {
                auto grads = conv_transpose2d_backward(grad, x.detach(), weight.detach(), bias.requires_grad(), opts,
                                                       x.requires_grad(), weight.requires_grad());
                accumulate_grad(x, std::move(grads.grad_x));
                accumulate_grad(weight, std::move(grads.grad_w));
                if (bias.defined()) accumulate_grad(bias, std::move(grads.grad_b));
            },
            x, weight, bias);
    return y;
}

}  // namespace weft
