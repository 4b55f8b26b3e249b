// bench/libtorch/clip.cpp: libtorch's side of bench/clip.cpp, OpenAI CLIP's ViT-B/16 image
// encoder (`VisionTransformer` of clip/model.py) written with libtorch's C++ modules.
//
//   conv1 3 -> 768, kernel 16, stride 16, no bias     [B, 3, 224, 224] -> [B, 768, 14, 14]
//   class token + 196 patch tokens + positional_embedding, ln_pre        [B, 197, 768]
//   12 pre-norm blocks on sequence-first tensors                          [197, B, 768]
//     x + MultiheadAttention(768, 12)(ln_1(x)),  x + c_proj(QuickGELU(c_fc(ln_2(x))))
//   ln_post on the class token, @ proj [768, 512]                          [B, 512]
//
// Random weights (libtorch's default initialisation; class_embedding, positional_embedding and
// proj as CLIP draws them, randn · width^-0.5), float32, eval mode. The modules are those of
// clip_modules.hpp, shared with the other CLIP benchmarks. The forward runs under
// c10::InferenceMode, libtorch's guard for inference; torch::NoGradGuard measured the same
// (paired medians within 4%, docs/performance.md). torch::nn::MultiheadAttention is the C++
// API's own layer, the reference's sequence of ops: one [3E, E] projection, q scaled, bmm,
// softmax, bmm, out_proj (1.13 has no fused path for it in C++, unlike Python's layer in eval
// mode). It recognises self-attention by comparing query, key and value element by element
// (torch::equal), which costs about 0.5% of the forward.
// libtorch runs with one intra-op thread per core, as in bench/libtorch/ops.cpp.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cstdint>
#include <thread>

#include "clip_modules.hpp"

namespace weft_bench {

// ViT-B/16 at 224×224 on a batch of `batch` random images.
void libtorch_vit_b16(benchmark::State& state, std::int64_t batch) {
    at::set_num_threads(int(std::thread::hardware_concurrency()));
    static torch_clip::VisionTransformer vit(224, 16, 768, 12, 12, 512);  // one model for every case, as weft's
    vit.eval();
    const torch::Tensor images = torch::randn({batch, 3, 224, 224});
    c10::InferenceMode guard;
    auto f = [&] { return vit.forward(images); };
    f();  // warm-up: first touch, thread pools started
    for (auto _ : state) {
        torch::Tensor r = f();
        benchmark::DoNotOptimize(r.data_ptr());
        benchmark::ClobberMemory();
    }
    state.counters["threads"] = at::get_num_threads();
}

}  // namespace weft_bench
