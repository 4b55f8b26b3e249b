// bench/libtorch/clip_step.cpp: libtorch's side of bench/clip_step.cpp, one contrastive training
// step of the tiny CLIP (clip_pretrain::tiny_clip_config()) written with libtorch's C++ modules
// (clip_modules.hpp):
//
//   image: conv1 3 -> 128, kernel/stride 4, no bias   [128, 3, 32, 32] -> [128, 128, 8, 8]
//     [class token; 64 patches] + positions, ln_pre, 3 blocks (width 128, 2 heads, QuickGELU
//     MLP), sequence-first [65, 128, 128]; ln_post on the class token, @ proj -> [128, 128]
//   text: token_embedding + positions, 2 causal blocks (width 128, 2 heads) [16, 128, 128],
//     ln_final, the row of each text's largest id (EOT), @ text_projection -> [128, 128]
//   loss: s = exp(logit_scale), logits = s · normalize(img) · normalize(txt)ᵀ   [128, 128]
//     (CE(logits, arange) + CE(logitsᵀ, arange)) / 2, as weft's loss::clip_contrastive
//   AdamW (torch::optim::AdamW) with examples/clip_pretrain/pretrain.hpp's two groups: weight
//     decay 0.1 for matrices whose names hold none of bn, ln, bias, logit_scale, 0 for the
//     rest; lr from the same cosine schedule each step; then logit_scale clamped to [0, ln 100].
//
// Random weights (clip_modules.hpp's initialisation), training mode, float32. libtorch runs with
// one intra-op thread per core, as in bench/libtorch/clip.cpp.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "clip_modules.hpp"

namespace weft_bench {

// Defined in bench/clip_step.cpp.
double clip_step_tiny_flops();
std::int64_t clip_step_eot_position(std::int64_t row);

namespace {

namespace F = torch::nn::functional;
using std::int64_t;

// The values bench/clip_step.cpp trains with: PretrainOptions' betas, eps and weight decay, and
// the first recipe's batch, lr and schedule.
constexpr double kLr = 2e-3, kMinLr = 0, kWeightDecay = 0.1, kBeta1 = 0.9, kBeta2 = 0.98, kEps = 1e-6;
constexpr int64_t kIters = 1200, kWarmup = 100, kBatch = 128;

// clip_pretrain::decays: OpenCLIP's rule, weight decay for matrices only.
bool decays(const std::string& name, int64_t rank) {
    const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
    return rank >= 2 && !has("bn") && !has("ln") && !has("bias") && !has("logit_scale");
}

// optim::CosineSchedule past its warmup: min_lr + (lr - min_lr) · (cos(π · iter / iters) + 1) / 2.
double cosine_lr(int64_t iter) {
    return kMinLr + 0.5 * (kLr - kMinLr) * (std::cos(std::numbers::pi * double(iter) / double(kIters)) + 1);
}

// loss::clip_contrastive: image [N, E], text [N, E], logit_scale [] -> [].
torch::Tensor clip_contrastive(const torch::Tensor& img, const torch::Tensor& txt, const torch::Tensor& logit_scale) {
    const torch::Tensor u = F::normalize(img, F::NormalizeFuncOptions().dim(1));
    const torch::Tensor v = F::normalize(txt, F::NormalizeFuncOptions().dim(1));
    const torch::Tensor logits = u.matmul(v.t()) * logit_scale.exp();  // [N, N] per image
    const torch::Tensor labels = torch::arange(img.size(0));
    return (F::cross_entropy(logits, labels) + F::cross_entropy(logits.t(), labels)) * 0.5;
}

}  // namespace

void libtorch_clip_tiny_step(benchmark::State& state) {
    at::set_num_threads(int(std::thread::hardware_concurrency()));
    const int64_t N = kBatch, L = 16;
    torch_clip::Clip model({.resolution = 32, .patch = 4, .width = 128, .layers = 3, .heads = 2},
                           {.context_length = L, .vocab = 49408, .width = 128, .heads = 2, .layers = 2}, 128);
    model.train();

    std::vector<torch::Tensor> decay, no_decay;
    for (const auto& p : model.named_parameters()) (decays(p.key(), p.value().dim()) ? decay : no_decay).push_back(p.value());
    const auto options = [](double wd) {
        return std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(kLr).betas({kBeta1, kBeta2}).eps(kEps).weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, options(kWeightDecay));
    groups.emplace_back(no_decay, options(0.0));
    torch::optim::AdamW opt(groups, *options(kWeightDecay));

    const torch::Tensor images = torch::randn({N, 3, 32, 32});
    torch::Tensor tokens = torch::randint(1, 49406, {N, L}, torch::kLong);
    for (int64_t n = 0; n < N; ++n) {
        const int64_t eot = clip_step_eot_position(n);
        tokens.index_put_({n, 0}, 49406);
        tokens.index_put_({n, eot}, 49407);
        tokens[n].narrow(0, eot + 1, L - eot - 1).zero_();
    }

    int64_t iter = kWarmup;  // past the warmup, cycling through the cosine's range, as weft's side
    auto step = [&] {
        for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(cosine_lr(iter));
        opt.zero_grad();
        const torch::Tensor img = model.encode_image(images);  // [N, E]
        const torch::Tensor txt = model.encode_text(tokens);   // [N, E]
        torch::Tensor loss = clip_contrastive(img, txt, model.logit_scale);
        loss.backward();
        opt.step();
        {
            torch::NoGradGuard no_grad;
            model.logit_scale.clamp_(0, std::log(100.0));
        }
        if (++iter == kIters) iter = kWarmup;
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
    state.counters["GFLOP"] = benchmark::Counter(clip_step_tiny_flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace weft_bench
