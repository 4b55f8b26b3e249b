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
// proj as CLIP draws them, randn · width^-0.5), float32, eval mode. The forward runs under
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
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace weft_bench {

namespace {

// CLIP's ResidualAttentionBlock: pre-norm attention and MLP, sequence-first [L, N, D].
struct ResidualAttentionBlock : torch::nn::Module {
    torch::nn::MultiheadAttention attn{nullptr};
    torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
    torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};

    ResidualAttentionBlock(std::int64_t d, std::int64_t heads) {
        attn = register_module("attn", torch::nn::MultiheadAttention(d, heads));
        ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
        c_fc = register_module("c_fc", torch::nn::Linear(d, 4 * d));
        c_proj = register_module("c_proj", torch::nn::Linear(4 * d, d));
        ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    }

    torch::Tensor forward(torch::Tensor x) {  // [L, N, D]
        const torch::Tensor h = ln_1(x);
        x = x + std::get<0>(attn->forward(h, h, h, /*key_padding_mask=*/{}, /*need_weights=*/false));
        torch::Tensor m = c_fc(ln_2(x));            // [L, N, 4D]
        m = m * torch::sigmoid(1.702 * m);          // QuickGELU
        return x + c_proj(m);                       // [L, N, D]
    }
};

// CLIP's VisionTransformer.
struct VisionTransformer : torch::nn::Module {
    std::int64_t width;
    torch::nn::Conv2d conv1{nullptr};
    torch::Tensor class_embedding, positional_embedding, proj;
    torch::nn::LayerNorm ln_pre{nullptr}, ln_post{nullptr};
    std::vector<std::shared_ptr<ResidualAttentionBlock>> resblocks;

    VisionTransformer(std::int64_t resolution, std::int64_t patch, std::int64_t width_, std::int64_t layers,
                      std::int64_t heads, std::int64_t output_dim)
        : width(width_) {
        const double scale = 1.0 / std::sqrt(double(width));
        const std::int64_t grid = resolution / patch;
        conv1 = register_module(
            "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, width, patch).stride(patch).bias(false)));
        class_embedding = register_parameter("class_embedding", torch::randn({width}) * scale);
        positional_embedding =
            register_parameter("positional_embedding", torch::randn({grid * grid + 1, width}) * scale);
        ln_pre = register_module("ln_pre", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
        for (std::int64_t i = 0; i < layers; ++i)
            resblocks.push_back(register_module("resblocks_" + std::to_string(i),
                                                std::make_shared<ResidualAttentionBlock>(width, heads)));
        ln_post = register_module("ln_post", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
        proj = register_parameter("proj", torch::randn({width, output_dim}) * scale);
    }

    torch::Tensor forward(torch::Tensor x) {  // [B, 3, H, W]
        const std::int64_t B = x.size(0);
        x = conv1(x);                                           // [B, width, g, g]
        x = x.reshape({B, width, -1}).permute({0, 2, 1});        // [B, g·g, width]
        x = torch::cat({class_embedding.expand({B, 1, width}), x}, 1);  // [B, 1 + g·g, width]
        x = x + positional_embedding;
        x = ln_pre(x);
        x = x.permute({1, 0, 2});                               // [L, B, width]
        for (auto& block : resblocks) x = block->forward(x);
        x = x.permute({1, 0, 2});                               // [B, L, width]
        x = ln_post(x.select(1, 0));                            // [B, width]
        return x.matmul(proj);                                  // [B, output_dim]
    }
};

}  // namespace

// ViT-B/16 at 224×224 on a batch of `batch` random images.
void libtorch_vit_b16(benchmark::State& state, std::int64_t batch) {
    at::set_num_threads(int(std::thread::hardware_concurrency()));
    static VisionTransformer vit(224, 16, 768, 12, 12, 512);  // one model for every case, as weft's
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
