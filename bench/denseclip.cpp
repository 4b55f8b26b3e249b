// bench/denseclip.cpp: one training iteration of the tiny DenseCLIP (ViT backbone), weft against
// libtorch.
//
//   denseclip_step/tiny/{weft,libtorch}   images [4, 3, 128, 128], labels [4, 128, 128] int64
//
// The model is examples/denseclip/configs/tiny.json (spec §2 at small widths): ViT-B/16's
// layout at width 64 (4 blocks, 2 heads, 128×128 input, taps after every block), the ViT
// adapters fpn1..fpn4, a text encoder of width 64 (2 blocks, 1 head, 150 classes of 5 tokens
// plus 8 learnable contexts, vocabulary 49408), a context decoder of width 32, the cosine score
// map concatenated at level 2, FPN to 32 channels and FPNHead to 150 classes at stride 4. One
// iteration is examples/denseclip/step.hpp's train_step: set the poly learning rate of every
// group, zero the gradients, forward, the two losses (cross-entropy of the logits resized to the
// labels, plus 0.4 · cross-entropy of score_map / 0.07 resized likewise; both averaged over every
// pixel, the ignored ones too), backward, AdamW step with mmcv's parameter groups. Training mode
// (dropout and batch statistics on), random weights and a random batch with a band of ignored
// (255) pixels. libtorch's side (bench/libtorch/denseclip.cpp) writes the same architecture with
// torch::nn modules and torch::optim::AdamW. Each side builds its model and batch once per
// repetition and takes one untimed warm-up step; the loop times the iteration alone. Results
// and the profile: "DenseCLIP tiny training step" in docs/performance.md. peak_rss_mb is the
// process's peak resident memory during the case (bench/peak_memory.hpp).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>


#include "../examples/denseclip/config.hpp"
#include "../examples/denseclip/model.hpp"
#include "../examples/denseclip/step.hpp"
#include "empty_host_cache_around.hpp"
#include "peak_memory.hpp"

#if defined(WEFT_BENCH_LIBTORCH)
namespace weft_bench {
// Defined in bench/libtorch/denseclip.cpp.
void libtorch_denseclip_tiny_step(benchmark::State&);
}  // namespace weft_bench
#endif

namespace {

using weft::index_t;

// The class names as the tokenizer would give them with context length 5: SOT, one word,
// EOT, two pads. Which word does not change the cost.
weft::Tensor<std::int64_t, 2> class_tokens(index_t K) {
    auto t = weft::Tensor<std::int64_t, 2>::zeros({K, 5});
    for (index_t k = 0; k < K; ++k) {
        t(k, 0) = 49406;
        t(k, 1) = 320 + k;
        t(k, 2) = 49407;
    }
    return t;
}

void weft_denseclip_tiny_step(benchmark::State& state) {
    const weft_bench::EmptyHostCacheAround cache_emptied;  // earlier and later cases' blocks not counted
    const weft_bench::PeakRss peak;  // the case's own peak: model, optimizer state, activations
    const auto cfg = denseclip::read_config(WEFT_SOURCE_DIR "/examples/denseclip/configs/tiny.json");
    const index_t B = cfg.train.batch_size, S = 128;
    denseclip::DenseClip<float> model(cfg, class_tokens(cfg.num_classes()));
    auto opt = denseclip::make_optimizer(model, cfg.train);
    const auto sched = denseclip::make_schedule(cfg.train);

    const auto images = weft::Tensor<float, 4>::randn({B, 3, S, S});
    auto labels = weft::Tensor<std::int64_t, 3>::randint(0, cfg.num_classes(), {B, S, S});
    for (index_t b = 0; b < B; ++b)  // the first 8 rows ignored, as a crop's padding would be
        for (index_t y = 0; y < 8; ++y)
            for (index_t x = 0; x < S; ++x) labels(b, y, x) = cfg.ignore_index;

    // Past the warmup, inside the schedule (poly would go negative past max_iters).
    std::int64_t iter = cfg.train.warmup_iters;
    auto step = [&] {
        auto terms = denseclip::train_step(model, opt, sched, iter, images, labels);
        if (++iter == cfg.train.iters) iter = cfg.train.warmup_iters;
        return terms;
    };
    step();  // warm-up: first touch of the buffers, optimizer state allocated, thread pool started
    double loss = 0;
    for (auto _ : state) {
        loss = step().total;  // the step's effects are the parameters' updates: nothing to elide
        benchmark::ClobberMemory();
    }
    double params = 0;  // to compare the two models' sizes
    for (const auto& p : model.named_parameters()) params += double(p.tensor.flat().numel());
    state.counters["threads"] = double(weft::num_threads());
    state.counters["loss"] = loss;
    state.counters["params"] = params;
    if (const auto mb = peak.mib()) state.counters["peak_rss_mb"] = *mb;
}

const bool registered = [] {
    auto add = [](const char* name, auto f) {
        benchmark::RegisterBenchmark(name, f)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->Repetitions(3)
            ->ReportAggregatesOnly(true);
    };
    add("denseclip_step/tiny/weft", weft_denseclip_tiny_step);
#if defined(WEFT_BENCH_LIBTORCH)
    add("denseclip_step/tiny/libtorch", weft_bench::libtorch_denseclip_tiny_step);
#endif
    return true;
}();

}  // namespace
