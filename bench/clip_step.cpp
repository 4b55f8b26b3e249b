// bench/clip_step.cpp: one contrastive training step of the tiny CLIP (issue 9), weft against
// libtorch.
//
//   clip_step/tiny/{weft,libtorch}   images [128, 3, 32, 32], tokens [128, 16] int64
//
// The model is clip_pretrain::tiny_clip_config() (examples/clip_pretrain/pretrain_options.hpp):
// a ViT on 32×32 images in 4×4 patches (width 128, 3 blocks, 2 heads, 65 tokens) and a text
// transformer over 16 tokens (width 128, 2 causal blocks, 2 heads, vocabulary 49408), a 128-d
// joint space, logit_scale ln(1/0.07). One step is the body of examples/clip_pretrain/pretrain.hpp's
// loop on one process: set the cosine schedule's lr of both groups, zero the gradients,
// encode_image, encode_text, loss::clip_contrastive (the mean of the image->text and
// text->image cross-entropies over exp(logit_scale)·cos), backward, AdamW (lr 2e-3, betas 0.9,
// 0.98, eps 1e-6, weight decay 0.1 for the group clip_pretrain::decays() picks: matrices other
// than bn/ln/bias/logit_scale; 0 for the rest), then the logit-scale clamp to [0, ln 100].
// float32, random weights (each side its own; see docs/performance.md for the check that the two
// give the same losses from the same weights), fixed random images and token rows
// [SOT, random ids, EOT at a per-row position, zeros]. libtorch's side
// (bench/libtorch/clip_step.cpp) writes the same model with clip_modules.hpp and
// torch::optim::AdamW. Each side builds its model and batch once per repetition and takes one
// untimed warm-up step; the loop times the step alone. Results: "CLIP contrastive step" in
// docs/performance.md.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "../examples/clip_pretrain/pretrain.hpp"

namespace weft_bench {

// The step's arithmetic, for the GFLOP counter (a rate: GFLOP/s) of both sides: 3 × the
// forward's matmul FLOPs (the backward of a product costs two products of its size, the
// gradients of both operands), counting 2·m·n·k per product. Per image: the patch embedding as a product
// [64 patches, 48] · [48, 128]; per block and sequence of L tokens at width W:
// in_proj 6·L·W², out_proj 2·L·W², c_fc and c_proj 8·L·W² each, and attention's q·kᵀ and
// a·v 2·L²·W each (summed over heads; the causal mask still computes every score); the final
// projections 2·W·E per image and per text; the loss's logits 2·N²·E. Element-wise work
// (layer norms, softmax, QuickGELU, AdamW) is left out. 37.2 GFLOP per step.
double clip_step_tiny_flops() {
    const double N = 128, W = 128, E = 128;
    const auto block = [&](double L) { return 24 * L * W * W + 4 * L * L * W; };
    const double patches = (32.0 / 4) * (32.0 / 4), Lv = patches + 1, Lt = 16;
    const double image = 2 * patches * (3 * 4 * 4) * W + 3 * block(Lv) + 2 * W * E;
    const double text = 2 * block(Lt) + 2 * W * E;
    return 3 * (N * (image + text) + 2 * N * N * E);
}

// Defined in bench/libtorch/clip_step.cpp.
#if defined(WEFT_BENCH_LIBTORCH)
void libtorch_clip_tiny_step(benchmark::State&);
#endif

// The batch both sides draw: token rows [SOT, ids, EOT at 2 + n % 14, 0...] (the text encoder
// pools at each row's largest id, the EOT); ids below SOT so that EOT stays the largest.
std::int64_t clip_step_eot_position(std::int64_t row) { return 2 + row % 14; }

}  // namespace weft_bench

namespace {

using weft::index_t;

void weft_clip_tiny_step(benchmark::State& state) {
    // Betas, eps and weight decay: the defaults. Batch, lr and schedule: the first recipe's (batch
    // 128, lr 2e-3 over 1200 iterations, 100 warmup), which the results in docs/performance.md
    // and the libtorch side use; `clip train` now defaults to batch 64.
    clip_pretrain::PretrainOptions o;
    o.batch_size = 128;
    o.lr = 2e-3;
    o.iters = 1200;
    o.warmup = 100;
    const index_t N = o.batch_size, L = 16;
    weft::clip::Clip<float> model(clip_pretrain::tiny_clip_config());
    model.train();
    std::vector<weft::NamedTensor<float>> decay, no_decay;
    for (auto& p : model.named_parameters())
        (clip_pretrain::decays(p.name, p.tensor.rank()) ? decay : no_decay).push_back(p);
    weft::optim::AdamW<float> opt({{decay, 1.0, 1.0}, {no_decay, 1.0, 0.0}},
                                  {.lr = o.lr, .betas = {o.beta1, o.beta2}, .eps = o.eps, .weight_decay = o.weight_decay});
    const weft::optim::CosineSchedule sched{.base_lr = o.lr, .max_iters = o.iters, .min_lr = o.min_lr,
                                            .warmup = {weft::optim::Warmup::linear, o.warmup, 1e-3}};

    const auto images = weft::Tensor<float, 4>::randn({N, 3, 32, 32});
    auto tokens = weft::Tensor<std::int64_t, 2>::randint(1, 49406, {N, L});
    for (index_t n = 0; n < N; ++n) {
        const index_t eot = weft_bench::clip_step_eot_position(n);
        tokens(n, 0) = 49406;
        tokens(n, eot) = 49407;
        for (index_t l = eot + 1; l < L; ++l) tokens(n, l) = 0;
    }

    std::int64_t iter = o.warmup;  // past the warmup, cycling through the cosine's range
    auto step = [&] {
        weft::optim::apply_schedule(opt, sched, iter);
        opt.zero_grad();
        const weft::Tensor<float, 2> img = model.encode_image(images);  // [N, E]
        const weft::Tensor<float, 2> txt = model.encode_text(tokens);   // [N, E]
        auto loss = weft::loss::clip_contrastive(img, txt, model.logit_scale);
        loss.backward();
        opt.step();
        weft::loss::clamp_logit_scale_(model.logit_scale);
        if (++iter == o.iters) iter = o.warmup;
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
    state.counters["GFLOP"] = benchmark::Counter(weft_bench::clip_step_tiny_flops() * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

const bool registered = [] {
    auto add = [](const char* name, auto f) {
        benchmark::RegisterBenchmark(name, f)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->Repetitions(3)
            ->ReportAggregatesOnly(true);
    };
    add("clip_step/tiny/weft", weft_clip_tiny_step);
#if defined(WEFT_BENCH_LIBTORCH)
    add("clip_step/tiny/libtorch", weft_bench::libtorch_clip_tiny_step);
#endif
    return true;
}();

}  // namespace
