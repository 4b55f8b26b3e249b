// bench/vit_train.cpp: one training step of OpenAI CLIP's ViT-B/16 image encoder (issue 8),
// weft against libtorch.
//
//   vit_b16_train_step/2/{weft,libtorch}   images [2, 3, 224, 224], labels [2] int64
//   vit_b16_train_step/2/weft_all_tokens   weft with its last block run for every token, as
//                                          libtorch's (weft's forward runs it for the class token)
//
// The model is bench/clip.cpp's ViT-B/16 (spec §1.4: 16×16 patches, width 768, 12 blocks of 12
// heads, 512 outputs), here in training mode with gradients. Its 512 outputs are taken as class
// logits: the loss is the cross-entropy (mean over the batch) of the [2, 512] output against two
// fixed labels, which gives a backward through the whole encoder without a second tower. One
// step: zero the gradients, forward, loss, backward, AdamW (lr 1e-4, betas 0.9, 0.999, eps 1e-8,
// weight decay 0.05 on every parameter: one group, no schedule). float32, random weights (each
// side its own), fixed random images. libtorch's side (bench/libtorch/vit_train.cpp) is
// clip_modules.hpp's VisionTransformer, F::cross_entropy and torch::optim::AdamW. Each side builds
// its model and optimizer once per repetition and takes one untimed warm-up step; the loop times
// the step alone. Counters: first_loss (the warm-up's) and loss (the last timed step's: lower,
// as the same batch is fitted), params, GFLOP (a rate), peak_rss_mb (bench/peak_memory.hpp).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <weft/models/clip/vision_transformer.hpp>
#include <weft/ops/cross_entropy.hpp>
#include <weft/optim/adamw.hpp>

#include "empty_host_cache_around.hpp"
#include "peak_memory.hpp"

namespace weft_bench {

// The step's arithmetic, for the GFLOP counter (a rate: GFLOP/s) of both sides: 3 × the
// forward's matmul FLOPs (the backward of a product costs two products of its size), counting
// 2·m·n·k per product, as clip_step_tiny_flops. Per image: the patch embedding as a product
// [196 patches, 768] · [768, 768]; per block of L = 197 tokens at width W = 768: in_proj
// 6·L·W², out_proj 2·L·W², c_fc and c_proj 8·L·W² each, attention's q·kᵀ and a·v 2·L²·W each
// (summed over heads); the final projection 2·W·E (E = 512). The patch embedding's backward has
// no input gradient to compute (the images need none), counted anyway, 0.7% of the total.
// Element-wise work (layer norms, softmax, QuickGELU, cross-entropy, AdamW) is left out.
// 210.8 GFLOP per step at batch 2.
double vit_b16_train_step_flops(std::int64_t batch) {
    const double W = 768, E = 512, patches = (224.0 / 16) * (224.0 / 16), L = patches + 1;
    const double block = 24 * L * W * W + 4 * L * L * W;
    const double image = 2 * patches * (3 * 16 * 16) * W + 12 * block + 2 * W * E;
    return 3 * double(batch) * image;
}

// Image n's label, the same on both sides (any class in [0, 512) costs the same).
std::int64_t vit_train_label(std::int64_t n) { return 7 + 256 * n; }

// Defined in bench/libtorch/vit_train.cpp.
#if defined(WEFT_BENCH_LIBTORCH)
void libtorch_vit_b16_train_step(benchmark::State&, std::int64_t batch);
#endif

}  // namespace weft_bench

namespace {

using weft::index_t;

// all_tokens: the embedding read from forward_tokens, whose last block runs for every token, as
// libtorch's model and CLIP's code do; the default forward runs it for the class token alone.
void weft_vit_b16_train_step(benchmark::State& state, index_t batch, bool all_tokens) {
    const weft_bench::EmptyHostCacheAround cache_emptied;  // earlier and later cases' blocks not counted
    const weft_bench::PeakRss peak;  // the case's own peak: model, optimizer state, activations
    weft::clip::VisionTransformer<float> model(
        {.input_resolution = 224, .patch_size = 16, .width = 768, .layers = 12, .heads = 12, .output_dim = 512});
    model.train();
    weft::optim::AdamW<float> opt(model.named_parameters(),
                                  {.lr = 1e-4, .betas = {0.9, 0.999}, .eps = 1e-8, .weight_decay = 0.05});

    const auto images = weft::Tensor<float, 4>::randn({batch, 3, 224, 224});
    auto labels = weft::Tensor<std::int64_t, 1>::zeros({batch});
    for (index_t n = 0; n < batch; ++n) labels(n) = weft_bench::vit_train_label(n);

    auto step = [&] {
        opt.zero_grad();
        const weft::Tensor<float, 2> logits =  // [batch, 512]
            all_tokens ? weft::matmul(model.ln_post(weft::Tensor<float, 2>(model.forward_tokens(images).select(1, 0))),
                                      model.proj)
                       : model(images);
        auto loss = weft::cross_entropy(logits, labels);      // [], the mean over the batch
        loss.backward();
        opt.step();
        return double(loss.item());
    };
    const double first = step();  // warm-up: first touch, optimizer state allocated, thread pool started
    double loss = 0;
    for (auto _ : state) {
        loss = step();  // the step's effects are the parameters' updates: nothing to elide
        benchmark::ClobberMemory();
    }
    double params = 0;
    for (const auto& p : model.named_parameters()) params += double(p.tensor.flat().numel());
    state.counters["threads"] = double(weft::num_threads());
    state.counters["first_loss"] = first;
    state.counters["loss"] = loss;
    state.counters["params"] = params;
    state.counters["GFLOP"] = benchmark::Counter(weft_bench::vit_b16_train_step_flops(batch) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    if (const auto mb = peak.mib()) state.counters["peak_rss_mb"] = *mb;
}

template <class F, class... A>
void add(const std::string& name, F f, A... args) {
    benchmark::RegisterBenchmark(name.c_str(), f, args...)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Repetitions(3)
        ->ReportAggregatesOnly(true);
}

const bool registered = [] {
    const index_t batch = 2;
    const std::string name = "vit_b16_train_step/" + std::to_string(batch);
    add(name + "/weft", weft_vit_b16_train_step, batch, false);
    add(name + "/weft_all_tokens", weft_vit_b16_train_step, batch, true);
#if defined(WEFT_BENCH_LIBTORCH)
    add(name + "/libtorch", weft_bench::libtorch_vit_b16_train_step, std::int64_t(batch));
#endif
    return true;
}();

}  // namespace
