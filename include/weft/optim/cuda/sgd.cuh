// weft/optim/cuda/sgd.cuh: the SGD update of one parameter on the GPU (optim/sgd.hpp).
//
//   cuda::sgd_step(param, grad, momentum_buffer_or_null, numel, scalars);
//
// The CPU loop's update (SGD::update), operation by operation through exact:: (no fused
// multiply-adds: optim/cuda/exact_math.cuh), the momentum buffer rounded to T before it is used,
// as on the CPU: float and double parameters get the CPU's bits. One grid-stride launch per
// parameter; its index is 32-bit below 2^31 elements.
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/optim/cuda/sgd.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../exec/cuda/stream.cuh"
#include "exact_math.cuh"

namespace weft::cuda {

template <class C>
struct SGDScalars {
    C lr, weight_decay, momentum, keep;  // keep: 1 - dampening
    bool decay;                          // weight_decay != 0
    bool use_momentum;                   // momentum != 0 (then buf is the momentum buffer)
    bool first;                          // the parameter's first step: buf = d
    bool nesterov;
};

namespace kernels {

template <class T, class I>
__global__ void __launch_bounds__(256) sgd_update(T* p, const T* g, T* buf, const I n, const SGDScalars<compute_t<T>> k) {
    using C = compute_t<T>;
    const I step = I(gridDim.x) * blockDim.x;
    for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        C d = convert<C>(g[i]);
        if (k.decay) d = exact::add(d, exact::mul(k.weight_decay, convert<C>(p[i])));
        if (k.use_momentum) {
            const T b = convert<T>(k.first ? d : exact::add(exact::mul(convert<C>(buf[i]), k.momentum), exact::mul(k.keep, d)));
            buf[i] = b;
            const C m = convert<C>(b);
            d = k.nesterov ? exact::add(d, exact::mul(k.momentum, m)) : m;
        }
        p[i] = convert<T>(exact::add(convert<C>(p[i]), exact::mul(-k.lr, d)));
    }
}

}  // namespace kernels

template <class T>
void sgd_step(T* p, const T* g, T* buf, index_t n, const SGDScalars<compute_t<T>>& k) {
    if (n <= 0) return;
    const unsigned grid = grid_blocks(n, block_threads);
    const cudaStream_t stream = current_stream();
    if (n <= std::numeric_limits<std::int32_t>::max())
        kernels::sgd_update<T, std::uint32_t><<<grid, block_threads, 0, stream>>>(p, g, buf, std::uint32_t(n), k);
    else
        kernels::sgd_update<T, index_t><<<grid, block_threads, 0, stream>>>(p, g, buf, n, k);
    WEFT_CUDA_CHECK_LAUNCH();
}

}  // namespace weft::cuda
