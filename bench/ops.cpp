// bench/ops.cpp: weft's convolution, layer norm, softmax and attention against libtorch's.
//
//   conv2d/8x256x64x64_k3/{weft,libtorch}     [8, 256, 64, 64] * [256, 256, 3, 3], padding 1, bias
//   layer_norm/4096x768/{weft,libtorch}       over the last axis, with weight and bias
//   softmax/12288x1024/{weft,libtorch}        over the last axis (12 heads × 1024 queries × 1024 keys)
//   attention/1x12x1024x64/{weft,libtorch}    softmax(q kᵀ / 8) v, 12 heads of 64, sequence 1024
//   attention_backward/1x12x1024x64/weft      weft's backward (dq, dk, dv) of the same
//
// float, forward only unless named otherwise, each a new result per call (as a layer would
// produce it). The libtorch cases live in bench/libtorch/ops.cpp and exist when CMake found
// libtorch; libtorch runs with one intra-op thread per core, weft with its default (all cores).
// Each case runs five repetitions and reports aggregates; compare the medians.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <weft/ops/attention.hpp>
#include <weft/ops/conv2d.hpp>
#include <weft/ops/layer_norm.hpp>
#include <weft/ops/softmax.hpp>

#if defined(WEFT_BENCH_LIBTORCH)
namespace weft_bench {
// Defined in bench/libtorch/ops.cpp.
void libtorch_conv2d(benchmark::State&, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                     std::int64_t o, std::int64_t k);
void libtorch_layer_norm(benchmark::State&, std::int64_t rows, std::int64_t cols);
void libtorch_softmax(benchmark::State&, std::int64_t rows, std::int64_t cols);
void libtorch_attention(benchmark::State&, std::int64_t b, std::int64_t h, std::int64_t l, std::int64_t e);
}  // namespace weft_bench
#endif

namespace {

using weft::index_t;

template <class F>
void run(benchmark::State& state, F f) {
    f();  // warm-up: first touch of the buffers, the thread pool started
    for (auto _ : state) {
        auto r = f();
        benchmark::DoNotOptimize(r.data());
        benchmark::ClobberMemory();
    }
    state.counters["threads"] = double(weft::num_threads());
}

void weft_conv2d(benchmark::State& state) {
    using T4 = weft::Tensor<float, 4>;
    const auto x = T4::randn({8, 256, 64, 64});
    const auto w = weft::eval(T4::randn({256, 256, 3, 3}) * 0.01f);
    const auto b = weft::Tensor<float, 1>::randn({256});
    weft::Conv2dOptions opts;
    opts.padding = {1, 1};
    run(state, [&] { return weft::conv2d(x, w, b, opts); });
}

void weft_layer_norm(benchmark::State& state) {
    const auto x = weft::Tensor<float, 2>::randn({4096, 768});
    const auto w = weft::Tensor<float, 1>::ones({768}), b = weft::Tensor<float, 1>::zeros({768});
    run(state, [&] { return weft::layer_norm(x, w, b, 1e-5); });
}

void weft_softmax(benchmark::State& state) {
    const auto x = weft::Tensor<float, 2>::randn({12 * 1024, 1024});
    run(state, [&] { return weft::softmax(x, -1); });
}

void weft_attention(benchmark::State& state) {
    using T4 = weft::Tensor<float, 4>;
    const auto q = T4::randn({1, 12, 1024, 64}), k = T4::randn({1, 12, 1024, 64}), v = T4::randn({1, 12, 1024, 64});
    run(state, [&] { return weft::scaled_dot_product_attention(q, k, v); });
}

void weft_attention_backward(benchmark::State& state) {
    using T4 = weft::Tensor<float, 4>;
    const auto q = T4::randn({1, 12, 1024, 64}), k = T4::randn({1, 12, 1024, 64}), v = T4::randn({1, 12, 1024, 64});
    const auto g = T4::randn({1, 12, 1024, 64});
    const auto fwd = weft::scaled_dot_product_attention_forward(q, k, v, {});
    run(state, [&] { return weft::scaled_dot_product_attention_backward(g, q, k, v, fwd, {}).grad_q; });
}

template <class F, class... A>
void add(const std::string& name, F f, A... args) {
    benchmark::RegisterBenchmark(name.c_str(), f, args...)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Repetitions(5)
        ->ReportAggregatesOnly(true);
}

const bool registered = [] {
    add("conv2d/8x256x64x64_k3/weft", weft_conv2d);
#if defined(WEFT_BENCH_LIBTORCH)
    add("conv2d/8x256x64x64_k3/libtorch", weft_bench::libtorch_conv2d, 8, 256, 64, 64, 256, 3);
#endif
    add("layer_norm/4096x768/weft", weft_layer_norm);
#if defined(WEFT_BENCH_LIBTORCH)
    add("layer_norm/4096x768/libtorch", weft_bench::libtorch_layer_norm, 4096, 768);
#endif
    add("softmax/12288x1024/weft", weft_softmax);
#if defined(WEFT_BENCH_LIBTORCH)
    add("softmax/12288x1024/libtorch", weft_bench::libtorch_softmax, 12 * 1024, 1024);
#endif
    add("attention/1x12x1024x64/weft", weft_attention);
#if defined(WEFT_BENCH_LIBTORCH)
    add("attention/1x12x1024x64/libtorch", weft_bench::libtorch_attention, 1, 12, 1024, 64);
#endif
    add("attention_backward/1x12x1024x64/weft", weft_attention_backward);
    return true;
}();

}  // namespace
