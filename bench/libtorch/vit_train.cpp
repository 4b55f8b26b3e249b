// bench/libtorch/vit_train.cpp: libtorch's side of bench/vit_train.cpp, one training step of
// OpenAI CLIP's ViT-B/16 image encoder written with libtorch's C++ modules (clip_modules.hpp):
//
//   conv1 3 -> 768, kernel/stride 16, no bias, [class token; 196 patches] + positions, ln_pre,
//   12 blocks (width 768, 12 heads, QuickGELU MLP) sequence-first [197, 2, 768], ln_post on the
//   class token, @ proj                                     [2, 3, 224, 224] -> [2, 512]
//   loss: F::cross_entropy of the [2, 512] output against the two fixed labels (mean)
//   AdamW (torch::optim::AdamW): lr 1e-4, betas 0.9, 0.999, eps 1e-8, weight decay 0.05 on every
//     parameter, one group, no schedule
//
// Random weights (clip_modules.hpp's initialisation), training mode, float32. libtorch runs with
// one intra-op thread per core, as in bench/libtorch/clip.cpp.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <thread>

#include "../peak_memory.hpp"
#include "clip_modules.hpp"

namespace weft_bench {

// Defined in bench/vit_train.cpp.
double vit_b16_train_step_flops(std::int64_t batch);
std::int64_t vit_train_label(std::int64_t n);

void libtorch_vit_b16_train_step(benchmark::State& state, std::int64_t batch) {
    at::set_num_threads(int(std::thread::hardware_concurrency()));
    const PeakRss peak;
    torch_clip::VisionTransformer model(224, 16, 768, 12, 12, 512);
    model.train();
    torch::optim::AdamW opt(model.parameters(),
                            torch::optim::AdamWOptions(1e-4).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.05));

    const torch::Tensor images = torch::randn({batch, 3, 224, 224});
    torch::Tensor labels = torch::empty({batch}, torch::kLong);
    for (std::int64_t n = 0; n < batch; ++n) labels.index_put_({n}, vit_train_label(n));

    auto step = [&] {
        opt.zero_grad();
        const torch::Tensor logits = model.forward(images);                   // [batch, 512]
        torch::Tensor loss = torch::nn::functional::cross_entropy(logits, labels);  // [], the mean
        loss.backward();
        opt.step();
        return loss.item<double>();
    };
    const double first = step();  // warm-up: first touch, optimizer state allocated, thread pools started
    double loss = 0;
    for (auto _ : state) {
        loss = step();
        benchmark::DoNotOptimize(loss);
        benchmark::ClobberMemory();
    }
    double params = 0;
    for (const auto& p : model.parameters()) params += double(p.numel());
    state.counters["threads"] = at::get_num_threads();
    state.counters["first_loss"] = first;
    state.counters["loss"] = loss;
    state.counters["params"] = params;
    state.counters["GFLOP"] =
        benchmark::Counter(vit_b16_train_step_flops(batch) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    if (const auto mb = peak.mib()) state.counters["peak_rss_mb"] = *mb;
}

}  // namespace weft_bench
