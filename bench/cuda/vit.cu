// bench/cuda/vit.cu: forward + backward of OpenAI CLIP's ViT-B/16 image encoder on the GPU, weft
// against PyTorch (bench/gpu/ops_torch.py, the same case names). Model-level: its own executable,
// weft-bench-cuda-vit (bench/CMakeLists.txt, WEFT_BENCH_CUDA_MODELS).
//
//   vit_b16/fwd_bwd/<dtype>/<R>x<N>              images [N, 3, R, R] -> [N, 512]: every token
//                                                through every block, as PyTorch's model
//   vit_b16/fwd_bwd/bf16/224x32/class_only       weft's VisionTransformer::forward, whose last
//                                                block runs for the class token alone (7% fewer
//                                                FLOPs; compared with the same PyTorch case)
//
// The model is bench/vit_train.cpp's (spec §1.4: 16×16 patches, width 768, 12 blocks of 12 heads,
// 512 outputs) with input_resolution R (R = 640: a 40×40 grid, 1601 tokens), built on the GPU in
// `dtype` (bf16: every parameter and activation bf16, float accumulation inside the ops; fp32:
// exact fp32, no TF32), training mode. One step: zero the gradients (set to none), forward, the
// mean cross-entropy of the 512 outputs against fixed labels (7, 263, 7, ...: any class costs the
// same), backward; no optimizer. PyTorch's side builds the same model (clip_torch.py) with every
// parameter in the same dtype.
//
// Two untimed steps, then 10 timed ones, each between two CUDA events (timing.cuh); median_ms is
// their median. flop: 3× the forward's matrix products counted at 2·m·n·k (the patch embedding,
// per block 24·L·W² for q/k/v, output projection and MLP plus 4·L²·W for attention, the class
// token's projection), the same formula as bench/vit_train.cpp and PyTorch's side; for
// class_only it is still the full count. peak_mib: the caching allocator's peak over the case,
// model and gradients included.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <weft/cuda.cuh>
#include <weft/models/clip/vision_transformer.hpp>
#include <weft/ops/cross_entropy.hpp>

#include "timing.cuh"

namespace {

using weft::bf16;
using weft::Cuda;
using weft::index_t;
using weft::Tensor;

struct VitCase {
    index_t resolution, batch;
    bool class_only;
};

double vit_train_flop(index_t resolution, index_t batch) {
    const double W = 768, E = 512, patches = double(resolution / 16) * double(resolution / 16), L = patches + 1;
    const double block = 24 * L * W * W + 4 * L * L * W;
    const double image = 2 * patches * (3 * 16 * 16) * W + 12 * block + 2 * W * E;
    return 3 * double(batch) * image;
}

template <class T>
void weft_vit(benchmark::State& state, VitCase c) {
    if (!weft_bench::have_gpu()) return state.SkipWithError("no CUDA device");
    const weft_bench::PeakMemory peak;
    weft::Generator gen(3);
    weft::clip::VisionTransformer<T, Cuda> model({.input_resolution = c.resolution,
                                                  .patch_size = 16,
                                                  .width = 768,
                                                  .layers = 12,
                                                  .heads = 12,
                                                  .output_dim = 512},
                                                 gen);
    model.train();
    const auto images = Tensor<T, 4, Cuda>::randn({c.batch, 3, c.resolution, c.resolution}, gen);
    auto host_labels = Tensor<std::int64_t, 1>::zeros({c.batch});
    for (index_t n = 0; n < c.batch; ++n) host_labels(n) = (7 + 256 * n) % 512;
    const auto labels = host_labels.to<Cuda>();

    Tensor<T, 0, Cuda> loss;
    auto step = [&] {
        model.zero_grad();
        const Tensor<T, 2, Cuda> logits =  // [N, 512]
            c.class_only ? model(images)
                         : weft::matmul(model.ln_post(Tensor<T, 2, Cuda>(model.forward_tokens(images).select(1, 0))),
                                        model.proj);
        loss = weft::cross_entropy(logits, labels);  // [], the mean over the batch
        loss.backward();
    };
    step();  // first step: gradients allocated (cuda_timed runs a second untimed one)
    step();
    const auto mallocs_before = weft::cuda::memory_stats().num_cuda_malloc;  // steady state: none after
    weft_bench::cuda_timed(state, {.flop = vit_train_flop(c.resolution, c.batch)}, step);
    state.counters["cuda_mallocs"] = double(weft::cuda::memory_stats().num_cuda_malloc - mallocs_before);
    state.counters["peak_mib"] = peak.mib();
    state.counters["loss"] = double(float(loss.item()));
    double params = 0;  // to compare the two models' sizes (the device check's notes)
    for (const auto& p : model.named_parameters()) params += double(p.tensor.flat().numel());
    state.counters["params"] = params;
}

template <class T>
void add(const char* dtype, VitCase c) {
    std::string name = std::string("vit_b16/fwd_bwd/") + dtype + "/" + std::to_string(c.resolution) + "x" +
                       std::to_string(c.batch) + (c.class_only ? "/class_only" : "");
    benchmark::RegisterBenchmark(name.c_str(), weft_vit<T>, c)
        ->UseManualTime()
        ->Iterations(10)
        ->Repetitions(1)
        ->Unit(benchmark::kMillisecond);
}

const bool registered = [] {
    add<bf16>("bf16", {224, 32, false});
    add<bf16>("bf16", {224, 32, true});
    add<bf16>("bf16", {640, 4, false});
    add<float>("fp32", {224, 32, false});
    return true;
}();

}  // namespace
