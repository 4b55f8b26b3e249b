// examples/clip_pretrain/pretrain_options.hpp: what `clip train` takes, and the tiny CLIP that
// trains from scratch on the synthetic pairs in minutes on a CPU.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <weft/dist/communicator.hpp>
#include <weft/models/clip/clip_model.hpp>

namespace clip_pretrain {

// A CLIP small enough for two CPU cores: a ViT on 32×32 images in 4×4 patches and a two-layer
// text transformer over 16 tokens, both 128 wide with 64-wide heads (OpenAI's rule, so the
// checkpoint reloads with clip::load's shape inference), a 128-d joint space. The benchmark pair
// clip_step/tiny measures this one.
inline weft::clip::ClipConfig tiny_clip_config() {
    weft::clip::ClipConfig c;
    c.embed_dim = 128;
    c.vision = weft::clip::VisionTransformerConfig{
        .input_resolution = 32, .patch_size = 4, .width = 128, .layers = 3, .heads = 2, .output_dim = 128};
    c.text = weft::clip::TextTransformerConfig{
        .context_length = 16, .vocab_size = 49408, .width = 128, .heads = 2, .layers = 2, .output_dim = 128};
    return c;
}

// The same text side with CLIP's modified ResNet (one bottleneck per stage, stem width 16,
// attention pool over the 1×1 grid of a 32×32 image): about 3× cheaper per step than the tiny
// ViT and, on the synthetic pairs, ahead of it at equal iterations (docs/clip-pretraining.md).
// `clip train`'s default from scratch.
inline weft::clip::ClipConfig tiny_resnet_clip_config() {
    weft::clip::ClipConfig c = tiny_clip_config();
    c.vision = weft::clip::ModifiedResNetConfig{
        .layers = {1, 1, 1, 1}, .output_dim = 128, .heads = 8, .input_resolution = 32, .width = 16};
    return c;
}

struct PretrainOptions {
    std::filesystem::path data;      // pairs: a .tsv, a .jsonl, or a folder (pairs.hpp)
    std::filesystem::path work_dir;  // log.jsonl, eval.jsonl, checkpoints
    std::filesystem::path vocab;     // CLIP's BPE vocabulary
    std::optional<std::filesystem::path> heldout;  // labelled folder for zero-shot accuracy
    std::optional<std::filesystem::path> classes;  // its candidate class names, one per line
    std::optional<std::filesystem::path> init;     // an OpenAI (or weft) CLIP file to fine-tune
    weft::clip::ClipConfig model = tiny_resnet_clip_config();  // the architecture from scratch (without init)
    std::string prompt = "{}";                     // zero-shot prompt: {} = the class name
    // The defaults train the tiny ResNet CLIP on the synthetic pairs to 90% zero-shot accuracy on
    // the held-out combinations in under 10 minutes on 2 cores (docs/clip-pretraining.md): twice
    // the steps at half the batch of 128 and a higher peak rate did better than 1200 × 128.
    std::int64_t iters = 2400;
    std::int64_t batch_size = 64;  // per rank; the contrastive batch is batch_size × world size
    double lr = 3e-3, min_lr = 0, weight_decay = 0.1;
    double beta1 = 0.9, beta2 = 0.98, eps = 1e-6;  // CLIP's (Radford et al. 2021, §2.5)
    std::int64_t warmup = 200;
    std::int64_t log_interval = 20, eval_interval = 800, checkpoint_interval = 800;
    std::uint64_t seed = 0;
    bool resume = false;
    std::optional<std::int64_t> stop_at;
    weft::dist::Communicator* comm = nullptr;  // data-parallel: one rank of its world
};

}  // namespace clip_pretrain
