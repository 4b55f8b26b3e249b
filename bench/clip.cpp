// bench/clip.cpp: forward of OpenAI CLIP's ViT-B/16 image encoder, weft against libtorch.
//
//   vit_b16_fwd/<batch>/{weft,libtorch}   [batch, 3, 224, 224] -> [batch, 512], batch 1 and 8
//
// ViT-B/16 (spec §1.4): patch embedding conv 16×16 stride 16 (3 -> 768), class token and
// positional embedding, ln_pre, 12 pre-norm blocks of width 768 with 12 heads and a 3072-wide
// QuickGELU MLP, ln_post on the class token, @ proj [768, 512]. Random weights, float32, eval
// mode, gradient recording off (weft::NoGrad here; libtorch's side, bench/libtorch/clip.cpp,
// under c10::InferenceMode), a new result per call. libtorch runs with one intra-op thread per
// core, weft with its default (all cores). Each case runs five repetitions and reports
// aggregates; compare the medians (scripts/bench-ratios.py). libtorch's time depends on whether
// glibc hands its large temporaries back to the kernel (page faults in every forward); see
// "CLIP ViT-B/16 forward" in docs/performance.md for GLIBC_TUNABLES that keep them.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <weft/autograd/grad_mode.hpp>
#include <weft/models/clip/vision_transformer.hpp>

#if defined(WEFT_BENCH_LIBTORCH)
namespace weft_bench {
// Defined in bench/libtorch/clip.cpp.
void libtorch_vit_b16(benchmark::State&, std::int64_t batch);
}  // namespace weft_bench
#endif

namespace {

using weft::index_t;

// One model for every case and repetition: drawing ViT-B/16's 86M random parameters takes about
// as long as four single-image forwards, and is not what is measured.
const weft::clip::VisionTransformer<float>& vit_b16() {
    static weft::clip::VisionTransformer<float> vit(
        {.input_resolution = 224, .patch_size = 16, .width = 768, .layers = 12, .heads = 12, .output_dim = 512});
    [[maybe_unused]] static const bool in_eval_mode = (vit.eval(), true);
    return vit;
}

void weft_vit_b16(benchmark::State& state, index_t batch) {
    const auto& vit = vit_b16();
    const auto images = weft::Tensor<float, 4>::randn({batch, 3, 224, 224});
    weft::NoGrad no_grad;
    auto f = [&] { return vit(images); };  // [batch, 512]
    f();  // warm-up: first touch of the buffers, the thread pool started
    for (auto _ : state) {
        auto r = f();
        benchmark::DoNotOptimize(r.data());
        benchmark::ClobberMemory();
    }
    state.counters["threads"] = double(weft::num_threads());
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
    for (const index_t batch : {1, 8}) {
        const std::string name = "vit_b16_fwd/" + std::to_string(batch);
        add(name + "/weft", weft_vit_b16, batch);
#if defined(WEFT_BENCH_LIBTORCH)
        add(name + "/libtorch", weft_bench::libtorch_vit_b16, std::int64_t(batch));
#endif
    }
    return true;
}();

}  // namespace
