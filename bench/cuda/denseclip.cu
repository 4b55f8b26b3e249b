// bench/cuda/denseclip.cu: one DenseCLIP ViT-B/16 training iteration on the GPU at 640×640,
// batch 4, bf16 with fp32 master weights, weft against PyTorch (bench/gpu/denseclip_torch.py, the
// same case name). Model-level: its own executable, weft-bench-cuda-denseclip
// (bench/CMakeLists.txt, WEFT_BENCH_CUDA_MODELS).
//
//   denseclip/train_step/bf16/640x4     images [4, 3, 640, 640] bf16, labels [4, 640, 640] int64
//
// The model is examples/denseclip/configs/vit-b16.json (DenseCLIP's released ViT-B/16
// configuration, spec §2, §5) as denseclip::DenseClip builds it, instantiated with T = bf16 on
// Cuda: every parameter and activation bf16, the ops accumulating in float. The optimizer steps
// fp32 copies (optim::MasterWeights): AdamW with the configuration's mmcv groups (backbone lr ×
// 0.1, text encoder lr × 0, "norm" weight decay × 0) on the masters, which are then rounded into
// the model. No loss scaling (bf16 needs none). One iteration is examples/denseclip/step.hpp's
// train_step with the masters in the optimizer's place: set every group's poly learning rate,
// forward, the two losses (decode: cross-entropy of the logits resized to 640×640; 0.4 ×
// pixel-text matching: the same of score_map / 0.07; ignore 255, mean over every pixel),
// backward, masters.step(opt), zero the masters' gradients. Training mode: DropPath (0 -> 0.1,
// per token position), dropout and batch statistics on. Random weights, a fixed random batch with
// its first 8 rows ignored (255).
//
// PyTorch's side builds the same architecture from the same JSON file with fp32 parameters and
// runs forward and losses under torch.autocast(bfloat16): the usual way to train in bf16 there.
//
// Three untimed iterations, then 10 timed ones, each between two CUDA events (timing.cuh);
// median_ms is their median. peak_mib: the caching allocator's peak over the case (model, master
// weights, AdamW state, activations). No flop counter here: the device check takes the step's
// FLOPs from PyTorch's side (torch.utils.flop_counter over the same model).
#include <benchmark/benchmark.h>

#include <cstdint>

#include <weft/cuda.cuh>
#include <weft/optim/master_weights.hpp>

#include "../../examples/denseclip/config.hpp"
#include "../../examples/denseclip/model.hpp"
#include "../../examples/denseclip/step.hpp"
#include "timing.cuh"

namespace {

using weft::bf16;
using weft::Cuda;
using weft::index_t;
using weft::Tensor;

// The class names as the tokenizer gives one-word names with context length `length`: SOT, a
// word, EOT, pads (bench/denseclip.cpp). Which word does not change the cost.
Tensor<std::int64_t, 2> class_tokens(index_t K, index_t length) {
    auto t = Tensor<std::int64_t, 2>::zeros({K, length});
    for (index_t k = 0; k < K; ++k) {
        t(k, 0) = 49406;
        t(k, 1) = 320 + k;
        t(k, 2) = 49407;
    }
    return t;
}

void weft_denseclip_step(benchmark::State& state) {
    if (!weft_bench::have_gpu()) return state.SkipWithError("no CUDA device");
    const weft_bench::PeakMemory peak;
    const auto cfg = denseclip::read_config(WEFT_SOURCE_DIR "/examples/denseclip/configs/vit-b16.json");
    const index_t B = 4, S = std::get<denseclip::ViTBackboneConfig>(cfg.backbone).vit.input_resolution;
    const index_t K = cfg.num_classes();
    const auto& t = cfg.train;

    weft::Generator gen(0);
    denseclip::DenseClip<bf16, Cuda> model(cfg, class_tokens(K, cfg.token_length), gen);
    model.train();
    weft::optim::MasterWeights<bf16, Cuda> masters(model.named_parameters());
    weft::optim::AdamW<float, Cuda> opt(
        weft::optim::make_param_groups(masters.parameters(), {{"backbone", t.backbone_lr_mult},
                                                              {"text_encoder", t.text_encoder_lr_mult},
                                                              {"norm", 1.0, t.norm_decay_mult}}),
        {.lr = t.lr, .betas = {t.betas[0], t.betas[1]}, .eps = t.eps, .weight_decay = t.weight_decay});
    const auto sched = denseclip::make_schedule(t);

    const auto images = Tensor<bf16, 4, Cuda>::randn({B, 3, S, S}, gen);
    auto host_labels = Tensor<std::int64_t, 3>::randint(0, K, {B, S, S}, gen);
    for (index_t b = 0; b < B; ++b)  // the first 8 rows ignored, as a crop's padding would be
        for (index_t y = 0; y < 8; ++y)
            for (index_t x = 0; x < S; ++x) host_labels(b, y, x) = cfg.ignore_index;
    const auto labels = host_labels.to<Cuda>();

    // Past the warmup, inside the schedule (poly would go negative past max_iters).
    std::int64_t iter = t.warmup_iters;
    Tensor<bf16, 0, Cuda> loss;  // read after the timed loop: .item() would wait for each step
    auto step = [&] {
        weft::optim::apply_schedule(opt, sched, iter);
        auto l = model.losses(images, labels);
        l.total.backward();
        masters.step(opt);  // the bf16 gradients into the masters (cleared in the model), AdamW, rounded back
        opt.zero_grad();
        loss = l.total.detach();
        if (++iter == t.iters) iter = t.warmup_iters;
    };
    step();
    step();  // cuda_timed runs the third untimed one
    // Past two steps every block the step needs is in the caching allocator: the timed steps
    // should call cudaMalloc no more (issue 6); the table's notes print this count.
    const auto mallocs_before = weft::cuda::memory_stats().num_cuda_malloc;
    weft_bench::cuda_timed(state, {}, step);
    state.counters["cuda_mallocs"] = double(weft::cuda::memory_stats().num_cuda_malloc - mallocs_before);

    double params = 0;
    for (const auto& p : model.named_parameters()) params += double(p.tensor.flat().numel());
    state.counters["peak_mib"] = peak.mib();
    state.counters["loss"] = double(float(loss.item()));
    state.counters["params"] = params;
}

const bool registered = [] {
    benchmark::RegisterBenchmark("denseclip/train_step/bf16/640x4", weft_denseclip_step)
        ->UseManualTime()
        ->Iterations(10)
        ->Repetitions(1)
        ->Unit(benchmark::kMillisecond);
    return true;
}();

}  // namespace
