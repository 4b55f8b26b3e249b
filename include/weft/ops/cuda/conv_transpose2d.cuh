// weft/ops/cuda/conv_transpose2d.cuh: conv_transpose2d's CUDA half (ops/conv_transpose2d.hpp
// dispatches here for Cuda tensors).
//
//   auto y  = cuda::conv_transpose2d_forward(x, w, bias_ptr_or_null, g);
//   auto gx = cuda::conv_transpose2d_input_grad(grad_out, w, g);
//   auto gw = cuda::conv_transpose2d_weight_grad(grad_out, x, g);
//
// A transposed convolution is the adjoint of the conv2d with the same options (g is that conv's
// geometry: its input is this op's output), so it is conv2d's CUDA pieces with the roles swapped,
// exactly as on the CPU: the forward is conv2d's input gradient (weightᵀ x x, then the col2im
// gather, each output plane starting at its bias), the input gradient a plain conv2d of grad_out,
// and the weight gradient conv2d's weight gradient with x as the "output gradient" and grad_out
// as the "input". float, double, bf16 and half, as conv2d.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/ops/cuda/conv_transpose2d.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include "conv2d.cuh"

namespace weft::cuda {

// x [N, Cin, H, W] (dense) with weight [Cin, Cout / G, kh, kw] (dense) -> [N, Cout, OH, OW], each
// plane c starting at bias[c] (a device pointer) when bias is not null.
template <class T>
Tensor<T, 4, Cuda> conv_transpose2d_forward(const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w, const T* bias,
                                            const weft::detail::ConvGeometry& g) {
    return weft::cuda::conv_input_grad<T>(x, w, bias, g);
}

// grad_out [N, Cout, OH, OW] (dense) -> the gradient of x, [N, Cin, H, W].
template <class T>
Tensor<T, 4, Cuda> conv_transpose2d_input_grad(const Tensor<T, 4, Cuda>& grad_out, const Tensor<T, 4, Cuda>& w,
                                               const weft::detail::ConvGeometry& g) {
    return weft::cuda::conv_forward<T>(grad_out, w, nullptr, g);
}

// grad_out [N, Cout, OH, OW] and x [N, Cin, H, W] (dense) -> the gradient of the weight,
// [Cin, Cout / G, kh, kw].
template <class T>
Tensor<T, 4, Cuda> conv_transpose2d_weight_grad(const Tensor<T, 4, Cuda>& grad_out, const Tensor<T, 4, Cuda>& x,
                                                const weft::detail::ConvGeometry& g) {
    return weft::cuda::conv_weight_grad<T>(x, grad_out, g);
}

}  // namespace weft::cuda
