// bench/libtorch/ops.cpp: libtorch's side of bench/ops.cpp (conv2d, layer_norm, softmax,
// attention). Like bench/libtorch/matmul.cpp, it includes only the per-operator ATen headers it
// needs, and sets libtorch to one intra-op thread per core before each case.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_scaled_dot_product_attention.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>

#include <cstdint>
#include <thread>

namespace weft_bench {

namespace {
void best_threads() { at::set_num_threads(int(std::thread::hardware_concurrency())); }

template <class F>
void run(benchmark::State& state, F f) {
    f();  // warm-up: first touch, thread pools started
    for (auto _ : state) {
        at::Tensor r = f();
        benchmark::DoNotOptimize(r.data_ptr());
        benchmark::ClobberMemory();
    }
    state.counters["threads"] = at::get_num_threads();
}
}  // namespace

// [n, c, h, w] * [o, c, k, k], stride 1, padding k / 2, with bias.
void libtorch_conv2d(benchmark::State& state, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                     std::int64_t o, std::int64_t k) {
    best_threads();
    const at::Tensor x = at::randn({n, c, h, w}), weight = at::randn({o, c, k, k}).mul_(0.01), bias = at::randn({o});
    run(state, [&] { return at::conv2d(x, weight, bias, {1, 1}, {k / 2, k / 2}); });
}

// layer_norm over the last axis of [rows, cols], with weight and bias.
void libtorch_layer_norm(benchmark::State& state, std::int64_t rows, std::int64_t cols) {
    best_threads();
    const at::Tensor x = at::randn({rows, cols}), weight = at::ones({cols}), bias = at::zeros({cols});
    run(state, [&] { return at::layer_norm(x, {cols}, weight, bias, 1e-5); });
}

// softmax over the last axis of [rows, cols].
void libtorch_softmax(benchmark::State& state, std::int64_t rows, std::int64_t cols) {
    best_threads();
    const at::Tensor x = at::randn({rows, cols});
    run(state, [&] { return at::softmax(x, -1); });
}

// softmax(q kᵀ / sqrt(e)) v on [b, h, l, e]: libtorch 1.13's scaled-dot-product attention (on the
// CPU its math path: two batched GEMMs around a softmax).
void libtorch_attention(benchmark::State& state, std::int64_t b, std::int64_t h, std::int64_t l, std::int64_t e) {
    best_threads();
    const at::Tensor q = at::randn({b, h, l, e}), k = at::randn({b, h, l, e}), v = at::randn({b, h, l, e});
    run(state, [&] { return std::get<0>(at::_scaled_dot_product_attention(q, k, v)); });
}

}  // namespace weft_bench
