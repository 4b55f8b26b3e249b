// bench/libtorch/denseclip.cpp: libtorch's side of bench/denseclip.cpp, one training iteration
// of the tiny DenseCLIP (examples/denseclip/configs/tiny.json) written with libtorch's C++
// modules, architecture and shapes as weft's denseclip::DenseClip builds them (spec §2, §5.2):
//
//   ViT (dense): conv1 3 -> 64, kernel/stride 16, no bias          [4, 3, 128, 128] -> [4, 64, 8, 8]
//     [class token (class_embedding added twice, DenseCLIP's quirk); 64 patches] + positions, ln_pre
//     4 pre-norm blocks (width 64, 2 heads, QuickGELU MLP), sequence-first  [65, 4, 64]
//     the residual stream after every block -> a map [4, 64, 8, 8]
//     every token through ln_post and @ proj: global [4, 64], local [4, 64, 8, 8]
//   adapters: fpn1 GroupNorm(1) ConvT×2 BN GELU ConvT×2 (32×32), fpn2 GN ConvT×2 (16×16),
//             fpn3 GN (8×8), fpn4 GN MaxPool 2 (4×4)
//   text encoder: [SOT, 8 contexts, 4 tokens] of 150 classes + positions, 2 causal blocks of
//     width 64, 1 head; ln_final; the EOT row @ text_projection       -> [1, 150, 64]
//   context decoder: text_proj, memory_proj, 1 pre-norm layer of width 32 (2 heads, q/k/v
//     without bias, dropout 0.1), out_proj; text += gamma · decoder(text, [global; local])
//   score map: cosine of local and text  [4, 150, 8, 8], concatenated to level 2 (64 + 150 ch)
//   FPN [64, 64, 214, 64] -> 32 (lateral 1×1, top-down nearest, 3×3); FPNHead: scale heads of
//     ConvModule (3×3 no bias, BN, ReLU) and bilinear ×2, summed, Dropout2d, conv_seg -> 150
//   losses: CE(resize(logits) to 128×128), ignore 255, averaged over every pixel,
//     + 0.4 · CE(resize(score_map / 0.07)), the same way
//   AdamW with mmcv's groups (text encoder lr × 0, "norm" weight decay 0, backbone lr × 1 in
//     tiny.json), the poly learning rate set per group each iteration.
//
// Random weights with libtorch's default initialisation (the CLIP-style tensors drawn as CLIP
// does, scaled randn); training mode, so dropout and batch statistics are on, as in weft's
// model. The CLIP blocks and the ViT are clip_modules.hpp's. libtorch runs with one intra-op
// thread per core, as in bench/libtorch/clip.cpp.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/modules/upsampling.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../peak_memory.hpp"
#include "clip_modules.hpp"

namespace weft_bench {

namespace {

namespace F = torch::nn::functional;
using std::int64_t;

torch::Tensor resize(const torch::Tensor& x, int64_t h, int64_t w, torch::nn::functional::InterpolateFuncOptions o) {
    return F::interpolate(x, o.size(std::vector<int64_t>{h, w}));
}
torch::Tensor bilinear_to(const torch::Tensor& x, int64_t h, int64_t w) {
    return resize(x, h, w, F::InterpolateFuncOptions().mode(torch::kBilinear).align_corners(false));
}

using torch_clip::Transformer;

struct Backbone {
    std::vector<torch::Tensor> features;  // strides 4, 8, 16, 32
    torch::Tensor global, local;          // [B, C], [B, C, h, w]
};

// DenseCLIP's CLIPVisionTransformer with the adapters fpn1..fpn4: CLIP's VisionTransformer
// (clip_modules.hpp) with a dense forward.
struct DenseViT : torch_clip::VisionTransformer {
    int64_t patch;
    torch::nn::Sequential fpn1{nullptr}, fpn2{nullptr}, fpn4{nullptr};
    torch::nn::GroupNorm fpn3{nullptr};

    DenseViT(int64_t resolution, int64_t patch_, int64_t width_, int64_t layers, int64_t heads, int64_t output_dim)
        : VisionTransformer(resolution, patch_, width_, layers, heads, output_dim), patch(patch_) {
        auto gn = [&] { return torch::nn::GroupNorm(torch::nn::GroupNormOptions(1, width)); };
        auto up = [&] {
            return torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(width, width, 2).stride(2));
        };
        fpn1 = register_module("fpn1", torch::nn::Sequential(gn(), up(), torch::nn::BatchNorm2d(width),
                                                             torch::nn::GELU(), up()));
        fpn2 = register_module("fpn2", torch::nn::Sequential(gn(), up()));
        fpn3 = register_module("fpn3", gn());
        fpn4 = register_module("fpn4",
                               torch::nn::Sequential(gn(), torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2))));
    }

    Backbone forward(const torch::Tensor& images) {  // [B, 3, H, W]
        const int64_t B = images.size(0), h = images.size(2) / patch, w = images.size(3) / patch;
        torch::Tensor x = conv1(images).reshape({B, width, h * w}).permute({0, 2, 1});  // [B, hw, C]
        // The 8×8 grid of tiny.json is the stored one: no resize of the positions.
        const torch::Tensor cls = (class_embedding * 2 + positional_embedding[0]).expand({B, 1, width});
        x = torch::cat({cls, x + positional_embedding.narrow(0, 1, h * w)}, 1);  // [B, 1 + hw, C]
        x = ln_pre(x).permute({1, 0, 2});                                       // [L, B, C]
        // [L, B, C'] -> the patch tokens as a map [B, C', h, w]
        auto to_map = [&](const torch::Tensor& t) {
            return t.narrow(0, 1, h * w).permute({1, 2, 0}).reshape({B, t.size(2), h, w});
        };
        std::vector<torch::Tensor> taps;
        for (auto& block : transformer->blocks) {  // out_indices [0, 1, 2, 3]: every block
            x = block->forward(x);
            taps.push_back(to_map(x));
        }
        const torch::Tensor e = ln_post(x).matmul(proj);  // [L, B, output_dim]
        return {{fpn1->forward(taps[0]), fpn2->forward(taps[1]), fpn3(taps[2]), fpn4->forward(taps[3])},
                e.select(0, 0),
                to_map(e)};
    }
};

// DenseCLIP's CLIPTextContextEncoder.
struct TextContextEncoder : torch::nn::Module {
    torch::nn::Embedding token_embedding{nullptr};
    torch::Tensor positional_embedding, text_projection, mask;
    std::shared_ptr<Transformer> transformer;
    torch::nn::LayerNorm ln_final{nullptr};

    TextContextEncoder(int64_t context_length, int64_t vocab, int64_t width, int64_t heads, int64_t layers,
                       int64_t embed_dim) {
        token_embedding = register_module("token_embedding", torch::nn::Embedding(vocab, width));
        positional_embedding = register_parameter("positional_embedding", torch::randn({context_length, width}) * 0.01);
        transformer = register_module("transformer", std::make_shared<Transformer>(width, layers, heads));
        ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
        text_projection =
            register_parameter("text_projection", torch::randn({width, embed_dim}) / std::sqrt(double(width)));
        mask = torch_clip::causal_mask(context_length);
    }

    // text [K, N1] ids, contexts [1, N2, W] -> [1, K, embed_dim]
    torch::Tensor forward(const torch::Tensor& text, const torch::Tensor& contexts) {
        const int64_t K = text.size(0), N2 = contexts.size(1), W = contexts.size(2);
        const torch::Tensor x_text = token_embedding(text);  // [K, N1, W]
        torch::Tensor x = torch::cat({x_text.narrow(1, 0, 1), contexts.expand({K, N2, W}),
                                      x_text.narrow(1, 1, text.size(1) - 1)},
                                     1);  // [K, L, W]
        const int64_t L = x.size(1);
        x = (x + positional_embedding.narrow(0, 0, L)).permute({1, 0, 2});  // [L, K, W]
        const torch::Tensor m = mask.narrow(0, 0, L).narrow(1, 0, L);
        x = transformer->forward(x, m);
        x = ln_final(x.permute({1, 0, 2}));                                 // [K, L, W]
        const torch::Tensor eot = text.argmax(-1) + N2;                     // [K]
        x = x.reshape({K * L, W}).index_select(0, torch::arange(K) * L + eot);  // [K, W]
        return x.matmul(text_projection).unsqueeze(0);                      // [1, K, embed_dim]
    }
};

// ContextDecoder's attention: q/k/v without bias, an output projection, proj dropout.
struct Attention : torch::nn::Module {
    int64_t heads;
    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, proj{nullptr};
    torch::nn::Dropout proj_drop{nullptr};

    Attention(int64_t d, int64_t heads_, double dropout) : heads(heads_) {
        auto nobias = [&] { return torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)); };
        q_proj = register_module("q_proj", nobias());
        k_proj = register_module("k_proj", nobias());
        v_proj = register_module("v_proj", nobias());
        proj = register_module("proj", torch::nn::Linear(d, d));
        proj_drop = register_module("proj_drop", torch::nn::Dropout(dropout));
    }

    torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {  // [B, N, C]
        const int64_t B = q.size(0), N = q.size(1), M = k.size(1), C = q.size(2), c = C / heads;
        const torch::Tensor qh = q_proj(q).reshape({B, N, heads, c}).transpose(1, 2);  // [B, h, N, c]
        const torch::Tensor kh = k_proj(k).reshape({B, M, heads, c}).transpose(1, 2);  // [B, h, M, c]
        const torch::Tensor vh = v_proj(v).reshape({B, M, heads, c}).transpose(1, 2);
        const torch::Tensor a = (qh.matmul(kh.transpose(-2, -1)) * (1.0 / std::sqrt(double(c)))).softmax(-1);
        const torch::Tensor o = a.matmul(vh).transpose(1, 2).reshape({B, N, C});      // [B, N, C]
        return proj_drop(proj(o));
    }
};

struct DecoderLayer : torch::nn::Module {
    std::shared_ptr<Attention> self_attn, cross_attn;
    torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
    torch::nn::Sequential mlp{nullptr};
    torch::nn::Dropout dropout{nullptr};

    DecoderLayer(int64_t d, int64_t heads, double p) {
        self_attn = register_module("self_attn", std::make_shared<Attention>(d, heads, p));
        cross_attn = register_module("cross_attn", std::make_shared<Attention>(d, heads, p));
        auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})); };
        norm1 = register_module("norm1", ln());
        norm2 = register_module("norm2", ln());
        norm3 = register_module("norm3", ln());
        mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(d, 4 * d), torch::nn::GELU(),
                                                           torch::nn::Dropout(p), torch::nn::Linear(4 * d, d)));
        dropout = register_module("dropout", torch::nn::Dropout(p));
    }

    torch::Tensor forward(torch::Tensor x, const torch::Tensor& mem) {
        const torch::Tensor q = norm1(x);
        x = x + self_attn->forward(q, q, q);
        x = x + cross_attn->forward(norm2(x), mem, mem);
        return x + dropout(mlp->forward(norm3(x)));
    }
};

struct ContextDecoder : torch::nn::Module {
    torch::nn::Sequential memory_proj{nullptr}, text_proj{nullptr}, out_proj{nullptr};
    std::vector<std::shared_ptr<DecoderLayer>> layers;

    ContextDecoder(int64_t d, int64_t heads, int64_t n, double p, int64_t visual_dim) {
        auto ln = [](int64_t c) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c})); };
        memory_proj = register_module("memory_proj",
                                      torch::nn::Sequential(ln(visual_dim), torch::nn::Linear(visual_dim, d), ln(d)));
        text_proj = register_module("text_proj", torch::nn::Sequential(ln(visual_dim), torch::nn::Linear(visual_dim, d)));
        for (int64_t i = 0; i < n; ++i)
            layers.push_back(register_module("decoder_" + std::to_string(i), std::make_shared<DecoderLayer>(d, heads, p)));
        out_proj = register_module("out_proj", torch::nn::Sequential(ln(d), torch::nn::Linear(d, visual_dim)));
    }

    torch::Tensor forward(const torch::Tensor& text, const torch::Tensor& visual) {  // [B, K, C], [B, 1 + hw, C]
        const torch::Tensor mem = memory_proj->forward(visual);
        torch::Tensor x = text_proj->forward(text);
        for (auto& layer : layers) x = layer->forward(x, mem);
        return out_proj->forward(x);  // [B, K, C]
    }
};

// mmseg's FPN (no norm, no activation, no extra levels).
struct FPN : torch::nn::Module {
    std::vector<torch::nn::Conv2d> lateral, fpn;

    FPN(const std::vector<int64_t>& in, int64_t out) {
        for (std::size_t i = 0; i < in.size(); ++i) {
            lateral.push_back(register_module("lateral_convs_" + std::to_string(i), torch::nn::Conv2d(in[i], out, 1)));
            fpn.push_back(register_module("fpn_convs_" + std::to_string(i),
                                          torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1))));
        }
    }

    std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& x) {
        std::vector<torch::Tensor> lat;
        for (std::size_t i = 0; i < x.size(); ++i) lat.push_back(lateral[i](x[i]));
        for (std::size_t i = lat.size() - 1; i > 0; --i)
            lat[i - 1] = lat[i - 1] + resize(lat[i], lat[i - 1].size(2), lat[i - 1].size(3),
                                              F::InterpolateFuncOptions().mode(torch::kNearest));
        std::vector<torch::Tensor> out;
        for (std::size_t i = 0; i < lat.size(); ++i) out.push_back(fpn[i](lat[i]));
        return out;
    }
};

// mmseg's FPNHead: per level 1, 1, 2, 3 × [ConvModule 3×3 (no bias), BN, ReLU (, bilinear ×2)].
struct FPNHead : torch::nn::Module {
    std::vector<torch::nn::Sequential> scale_heads;
    torch::nn::Dropout2d dropout{nullptr};
    torch::nn::Conv2d conv_seg{nullptr};

    FPNHead(int64_t in, int64_t channels, int64_t classes, double p, const std::vector<int64_t>& strides) {
        for (std::size_t i = 0; i < strides.size(); ++i) {
            const int64_t n = std::max<int64_t>(1, int64_t(std::log2(double(strides[i])) - std::log2(double(strides[0]))));
            torch::nn::Sequential head;
            for (int64_t k = 0; k < n; ++k) {
                head->push_back(torch::nn::Conv2d(
                    torch::nn::Conv2dOptions(k == 0 ? in : channels, channels, 3).padding(1).bias(false)));
                head->push_back(torch::nn::BatchNorm2d(channels));
                head->push_back(torch::nn::ReLU());
                if (strides[i] != strides[0])
                    head->push_back(torch::nn::Upsample(torch::nn::UpsampleOptions()
                                                            .scale_factor(std::vector<double>{2.0, 2.0})
                                                            .mode(torch::kBilinear)
                                                            .align_corners(false)));
            }
            scale_heads.push_back(register_module("scale_heads_" + std::to_string(i), head));
        }
        dropout = register_module("dropout", torch::nn::Dropout2d(p));
        conv_seg = register_module("conv_seg", torch::nn::Conv2d(channels, classes, 1));
    }

    torch::Tensor forward(const std::vector<torch::Tensor>& x) {
        torch::Tensor out = scale_heads[0]->forward(x[0]);  // [B, channels, H0, W0]
        for (std::size_t i = 1; i < x.size(); ++i)
            out = out + bilinear_to(scale_heads[i]->forward(x[i]), out.size(2), out.size(3));
        return conv_seg(dropout(out));  // [B, classes, H0, W0]
    }
};

// DenseCLIP with tiny.json's sizes.
struct DenseClip : torch::nn::Module {
    static constexpr int64_t K = 150, C = 64;
    torch::Tensor contexts, gamma, texts;
    std::shared_ptr<DenseViT> backbone;
    std::shared_ptr<TextContextEncoder> text_encoder;
    std::shared_ptr<ContextDecoder> context_decoder;
    std::shared_ptr<FPN> neck;
    std::shared_ptr<FPNHead> decode_head;

    explicit DenseClip(torch::Tensor texts_) : texts(std::move(texts_)) {
        contexts = register_parameter("contexts", torch::randn({1, 8, 64}).clamp(-2, 2));
        gamma = register_parameter("gamma", torch::full({C}, 1e-4));
        backbone = register_module("backbone", std::make_shared<DenseViT>(128, 16, 64, 4, 2, C));
        text_encoder = register_module("text_encoder", std::make_shared<TextContextEncoder>(13, 49408, 64, 1, 2, C));
        context_decoder = register_module("context_decoder", std::make_shared<ContextDecoder>(32, 2, 1, 0.1, C));
        neck = register_module("neck", std::make_shared<FPN>(std::vector<int64_t>{64, 64, 64 + K, 64}, 32));
        decode_head =
            register_module("decode_head", std::make_shared<FPNHead>(32, 32, K, 0.1, std::vector<int64_t>{4, 8, 16, 32}));
    }

    // images [B, 3, H, W], labels [B, H, W] -> decode loss + 0.4 · pixel-text matching loss
    torch::Tensor loss(const torch::Tensor& images, const torch::Tensor& labels) {
        Backbone x = backbone->forward(images);
        const int64_t B = images.size(0);
        const torch::Tensor t = text_encoder->forward(texts, contexts).expand({B, K, C});        // [B, K, C]
        const torch::Tensor visual = torch::cat({x.global.unsqueeze(1), x.local.flatten(2).permute({0, 2, 1})},
                                                1);                                                // [B, 1+hw, C]
        const torch::Tensor text = t + gamma * context_decoder->forward(t, visual);              // [B, K, C]
        const torch::Tensor v = F::normalize(x.local, F::NormalizeFuncOptions().dim(1));
        const torch::Tensor tn = F::normalize(text, F::NormalizeFuncOptions().dim(2));
        const torch::Tensor score = torch::einsum("bchw,bkc->bkhw", {v, tn});                    // [B, K, h, w]
        x.features[2] = torch::cat({x.features[2], score}, 1);
        const torch::Tensor logits = decode_head->forward(neck->forward(x.features));             // [B, K, H/4, W/4]

        const int64_t H = labels.size(1), W = labels.size(2);
        // mmseg 0.19's cross-entropy: ignored pixels count 0 and still count in the mean.
        auto ce = [&](const torch::Tensor& l) {
            return F::cross_entropy(bilinear_to(l, H, W), labels,
                                    F::CrossEntropyFuncOptions().ignore_index(255).reduction(torch::kNone))
                .mean();
        };
        return ce(logits) + 0.4 * ce(score / 0.07);
    }
};

// AdamW groups by mmcv's custom_keys (tiny.json: backbone × 1, text_encoder × 0, norm decay × 0).
struct Group {
    double lr_mult, decay_mult;
};
Group group_of(const std::string& name) {
    if (name.find("text_encoder") != std::string::npos) return {0.0, 1.0};
    if (name.find("backbone") != std::string::npos) return {1.0, 1.0};
    if (name.find("norm") != std::string::npos) return {1.0, 0.0};
    return {1.0, 1.0};
}

}  // namespace

void libtorch_denseclip_tiny_step(benchmark::State& state) {
    at::set_num_threads(int(std::thread::hardware_concurrency()));
    const PeakRss peak;  // the case's own peak: model, optimizer state, activations
    const int64_t B = 4, S = 128, K = DenseClip::K;
    const double lr = 1e-3, wd = 1e-4, min_lr = 1e-6;
    const int64_t warmup = 50, iters = 600;

    torch::Tensor texts = torch::zeros({K, 5}, torch::kLong);
    texts.select(1, 0).fill_(49406);
    texts.select(1, 1).copy_(torch::arange(320, 320 + K));
    texts.select(1, 2).fill_(49407);
    DenseClip model(texts);
    model.train();

    std::vector<torch::optim::OptimizerParamGroup> groups;
    std::vector<double> base_lr;
    for (const auto& p : model.named_parameters()) {
        const Group g = group_of(p.key());
        groups.emplace_back(std::vector<torch::Tensor>{p.value()},
                            std::make_unique<torch::optim::AdamWOptions>(
                                torch::optim::AdamWOptions(lr * g.lr_mult).weight_decay(wd * g.decay_mult)));
        base_lr.push_back(lr * g.lr_mult);
    }
    torch::optim::AdamW opt(groups, torch::optim::AdamWOptions(lr).betas({0.9, 0.999}).eps(1e-8).weight_decay(wd));

    const torch::Tensor images = torch::randn({B, 3, S, S});
    torch::Tensor labels = torch::randint(0, K, {B, S, S}, torch::kLong);
    labels.narrow(1, 0, 8).fill_(255);

    int64_t iter = warmup;
    auto step = [&] {
        // mmcv's poly schedule past the warmup, floored at min_lr in every group.
        const double f = std::pow(1.0 - double(iter) / double(iters), 0.9);
        for (std::size_t i = 0; i < opt.param_groups().size(); ++i)
            static_cast<torch::optim::AdamWOptions&>(opt.param_groups()[i].options()).lr((base_lr[i] - min_lr) * f + min_lr);
        opt.zero_grad();
        torch::Tensor loss = model.loss(images, labels);
        loss.backward();
        opt.step();
        if (++iter == iters) iter = warmup;
        return loss.item<double>();
    };
    step();  // warm-up: first touch, optimizer state allocated, thread pools started
    double loss = 0;
    for (auto _ : state) {
        loss = step();
        benchmark::DoNotOptimize(loss);
        benchmark::ClobberMemory();
    }
    double params = 0;
    for (const auto& p : model.parameters()) params += double(p.numel());
    state.counters["threads"] = at::get_num_threads();
    state.counters["loss"] = loss;
    state.counters["params"] = params;
    if (const auto mb = peak.mib()) state.counters["peak_rss_mb"] = *mb;
}

}  // namespace weft_bench
