// weft/optim/cuda/adamw.cuh: the AdamW step of every parameter in one launch (optim/adamw.hpp).
//
//   cuda::adamw_step(tensors, betas, amsgrad);   // one AdamWTensor per parameter stepped
//
// Each element gets the CPU loop's update (AdamW::update), operation by operation, with the same
// rounding of every stored value: the moments are rounded to T before they are used, as on the
// CPU, and the arithmetic goes through exact:: (no fused multiply-adds; optim/cuda/exact_math.cuh),
// so float and double parameters get the CPU's bits. The scalars that depend on the parameter's
// group and step count (decay, step size, bias correction) are computed on the host by the same
// expressions as the CPU's and travel in the parameter's table entry; the launch covers all
// parameters through a multi-tensor table (optim/cuda/multi_tensor.cuh): one copy of the table,
// one launch. T: float, double, bf16, half (bf16 and half computing in float).
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/optim/cuda/adamw.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>

#include <vector>

#include "../../core/config.hpp"
#include "../../core/cuda/backend.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/dtype.hpp"
#include "../../exec/cuda/stream.cuh"
#include "exact_math.cuh"
#include "multi_tensor.cuh"

namespace weft::cuda {

// One parameter of an AdamW step. max_exp_avg_sq is null without amsgrad.
template <class T>
struct AdamWTensor {
    T* param;
    const T* grad;
    T* exp_avg;
    T* exp_avg_sq;
    T* max_exp_avg_sq;
    index_t numel;
    compute_t<T> decay;          // 1 - lr * weight_decay
    compute_t<T> neg_step_size;  // -lr / (1 - beta1^t)
    compute_t<T> bc2_sqrt;       // sqrt(1 - beta2^t)
};

// What every parameter of the step shares.
template <class C>
struct AdamWBetas {
    C beta1, one_minus_b1, beta2, one_minus_b2, eps;
};

namespace kernels {

template <class T, bool Amsgrad>
__global__ void __launch_bounds__(256)
    adamw_multi_tensor(const AdamWTensor<T>* tensors, const ChunkTask* tasks, const AdamWBetas<compute_t<T>> k) {
    using C = compute_t<T>;
    const ChunkTask task = tasks[blockIdx.x];
    const AdamWTensor<T> t = tensors[task.tensor];
    const index_t begin = index_t(task.chunk) * multi_tensor_chunk_elems;
    const index_t left = t.numel - begin;  // > 0: the table lists only chunks that hold elements
    const unsigned len = unsigned(left < multi_tensor_chunk_elems ? left : multi_tensor_chunk_elems);
    T* p = t.param + begin;
    const T* g = t.grad + begin;
    T* m = t.exp_avg + begin;
    T* v = t.exp_avg_sq + begin;
    T* vmax = Amsgrad ? t.max_exp_avg_sq + begin : nullptr;
    for (unsigned i = threadIdx.x; i < len; i += blockDim.x) {
        const C gi = convert<C>(g[i]);
        const C pi = convert<C>(convert<T>(exact::mul(convert<C>(p[i]), t.decay)));
        const C mi = convert<C>(convert<T>(exact::add(exact::mul(convert<C>(m[i]), k.beta1), exact::mul(k.one_minus_b1, gi))));
        C vi = convert<C>(convert<T>(
            exact::add(exact::mul(convert<C>(v[i]), k.beta2), exact::mul(exact::mul(k.one_minus_b2, gi), gi))));
        m[i] = convert<T>(mi);
        v[i] = convert<T>(vi);
        if constexpr (Amsgrad) {
            const C held = convert<C>(vmax[i]);
            vi = held < vi ? vi : held;  // std::max(held, vi), as the CPU
            vmax[i] = convert<T>(vi);
        }
        const C denom = exact::add(exact::div(exact::sqrt(vi), t.bc2_sqrt), k.eps);
        p[i] = convert<T>(exact::add(pi, exact::div(exact::mul(t.neg_step_size, mi), denom)));
    }
}

}  // namespace kernels

// Steps every parameter in `tensors` (no two may share memory: their chunks run concurrently).
template <class T>
void adamw_step(const std::vector<AdamWTensor<T>>& tensors, const AdamWBetas<compute_t<T>>& k, bool amsgrad) {
    if (tensors.empty()) return;
    std::vector<index_t> numels;
    numels.reserve(tensors.size());
    for (const AdamWTensor<T>& t : tensors) numels.push_back(t.numel);
    const MultiTensorTable<AdamWTensor<T>> table(tensors, numels);
    const cudaStream_t stream = current_stream();
    table.for_each_launch([&](unsigned grid, const ChunkTask* chunks) {
        if (amsgrad)
            kernels::adamw_multi_tensor<T, true><<<grid, block_threads, 0, stream>>>(table.tensors(), chunks, k);
        else
            kernels::adamw_multi_tensor<T, false><<<grid, block_threads, 0, stream>>>(table.tensors(), chunks, k);
        WEFT_CUDA_CHECK_LAUNCH();
    });
}

}  // namespace weft::cuda
