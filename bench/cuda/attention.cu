// bench/cuda/attention.cu: weft::scaled_dot_product_attention on Cuda tensors, forward and
// forward + backward, against torch.nn.functional.scaled_dot_product_attention (bench/gpu/ops_torch.py,
// the same case names).
//
//   sdpa/<dtype>/fwd/<B>x<H>x<L>x<E>               softmax(q·kᵀ/√E)·v, q, k, v [B, H, L, E], L = S
//   sdpa/<dtype>/fwd_bwd/<B>x<H>x<L>x<E>           the same, then the gradients of q, k and v for a
//                                                  random output gradient
//   sdpa/<dtype>/fwd_causal/..., fwd_bwd_causal/.. with the causal mask
//
// Shapes: ViT-B/16 at 640×640, batch 4 (4×12 heads, 1601 tokens of 64) in bf16 and fp32, and
// CLIP's text encoder (a batch of 128 captions, 8 heads, 77 tokens of 64, causal) in bf16.
// Inputs are contiguous [B, H, L, E] on both sides.
//
// The forward is the recorded op with no input requiring a gradient (nothing recorded); the
// backward calls the plain scaled_dot_product_attention_backward with the forward's result, as
// the op's autograd node does, so neither side pays for accumulating into .grad (PyTorch's side
// uses torch.autograd.grad).
//
// flop: the forward counts 4·B·H·E per (query, key) pair it computes, L·S pairs, or L(L+1)/2
// with the causal mask; forward + backward counts 3.5× that (the backward does 2.5× the
// forward's products, its scores recomputed, as FlashAttention's papers count).
//
// Needs the CUDA attention kernels (ops/cuda/attention.cuh). A build without them registers one
// case per shape that reports the error, so the device check's table says what is missing.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <weft/cuda.cuh>

#include "timing.cuh"

#if __has_include(<weft/ops/cuda/attention.cuh>)
#define WEFT_BENCH_HAVE_CUDA_ATTENTION 1
#include <weft/ops/attention.hpp>
#else
#define WEFT_BENCH_HAVE_CUDA_ATTENTION 0
#endif

namespace {

using weft::bf16;
using weft::Cuda;
using weft::index_t;
using weft::Tensor;

struct Case {
    index_t B, H, L, E;
    bool causal;
    bool backward;
    int inner;  // attentions per timed iteration (timing.cuh)
};

template <class T>
constexpr const char* dtype_name() {
    return std::is_same_v<T, bf16> ? "bf16" : "fp32";
}

#if WEFT_BENCH_HAVE_CUDA_ATTENTION
double attention_flop(const Case& c) {
    const double pairs = c.causal ? double(c.L) * double(c.L + 1) / 2 : double(c.L) * double(c.L);
    const double forward = 4.0 * double(c.B) * double(c.H) * double(c.E) * pairs;
    return c.backward ? 3.5 * forward : forward;
}

template <class T>
void weft_attention(benchmark::State& state, Case c) {
    if (!weft_bench::have_gpu()) return state.SkipWithError("no CUDA device");
    const weft_bench::PeakMemory peak;
    weft::Generator g(11);
    const auto q = Tensor<T, 4, Cuda>::randn({c.B, c.H, c.L, c.E}, g);
    const auto k = Tensor<T, 4, Cuda>::randn({c.B, c.H, c.L, c.E}, g);
    const auto v = Tensor<T, 4, Cuda>::randn({c.B, c.H, c.L, c.E}, g);
    const auto grad_out = Tensor<T, 4, Cuda>::randn({c.B, c.H, c.L, c.E}, g);
    weft::AttentionOptions<T, Cuda> opts;
    opts.causal = c.causal;
    Tensor<T, 4, Cuda> out, dq;
    weft_bench::cuda_timed(state, {.flop = attention_flop(c), .inner = c.inner}, [&] {
        if (!c.backward) {
            out = weft::scaled_dot_product_attention(q, k, v, opts);
            return;
        }
        const auto r = weft::scaled_dot_product_attention_forward(q, k, v, opts);
        const auto grads = weft::scaled_dot_product_attention_backward(grad_out, q, k, v, r, opts);
        dq = grads.grad_q;  // kept until the next call, as PyTorch's side keeps its gradients
    });
    state.counters["peak_mib"] = peak.mib();
}
#else
template <class T>
void weft_attention(benchmark::State& state, Case) {
    state.SkipWithError("this build has no CUDA attention (include/weft/ops/cuda/attention.cuh is missing)");
}
#endif

template <class T>
void add(const Case& c) {
    const std::string pass = std::string(c.backward ? "fwd_bwd" : "fwd") + (c.causal ? "_causal" : "");
    const std::string name = std::string("sdpa/") + dtype_name<T>() + "/" + pass + "/" + std::to_string(c.B) + "x" +
                             std::to_string(c.H) + "x" + std::to_string(c.L) + "x" + std::to_string(c.E);
    benchmark::RegisterBenchmark(name.c_str(), weft_attention<T>, c)->UseManualTime()->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
    // ViT-B/16 at 640×640, batch 4; CLIP's text encoder, 128 captions.
    add<bf16>({.B = 4, .H = 12, .L = 1601, .E = 64, .causal = false, .backward = false, .inner = 10});
    add<bf16>({.B = 4, .H = 12, .L = 1601, .E = 64, .causal = false, .backward = true, .inner = 10});
    add<float>({.B = 4, .H = 12, .L = 1601, .E = 64, .causal = false, .backward = false, .inner = 10});
    add<float>({.B = 4, .H = 12, .L = 1601, .E = 64, .causal = false, .backward = true, .inner = 10});
    add<bf16>({.B = 128, .H = 8, .L = 77, .E = 64, .causal = true, .backward = false, .inner = 50});
    add<bf16>({.B = 128, .H = 8, .L = 77, .E = 64, .causal = true, .backward = true, .inner = 50});
    return true;
}();

}  // namespace
