// denseclip: DenseCLIP semantic segmentation on ADE20K with weft (docs/denseclip.md).
//
//   denseclip make-synthetic --out data/synthetic
//   denseclip train   --config examples/denseclip/configs/tiny.json --data-root data/synthetic --work-dir work/tiny
//   denseclip train   ... --device cuda       (train, eval and predict: the model on the GPU)
//   denseclip eval    --config ... --data-root data/synthetic --checkpoint work/tiny/iter_600.safetensors
//   denseclip predict --config ... --checkpoint ... --out preds IMAGE...
//   denseclip score   --pred preds --gt data/synthetic/annotations/validation --json
//   denseclip zeroshot --clip ViT-B-16.pt --image IMAGE --out DIR
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace fs = std::filesystem;
using namespace denseclip;

int main(int argc, char** argv) {
    CLI::App app{"denseclip: DenseCLIP semantic segmentation (ADE20K) with weft"};
    app.require_subcommand(1);

    std::string vocab;
#ifdef WEFT_SHARED_DIR
    vocab = std::string(WEFT_SHARED_DIR) + "/data/clip/bpe_simple_vocab_16e6.txt.gz";
#endif
    if (const char* v = std::getenv("WEFT_CLIP_VOCAB")) vocab = v;
    const auto add_device = [](CLI::App* s, std::string& device) {
        s->add_option("--device", device, "where the model runs: cpu, or cuda (a build with -DWEFT_CUDA=ON)")
            ->check(CLI::IsMember({"cpu", "cuda"}))
            ->capture_default_str();
    };
    const auto add_vocab = [&](CLI::App* s) {
        s->add_option("--vocab", vocab, "CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz; env WEFT_CLIP_VOCAB)")
            ->capture_default_str();
    };

    // make-synthetic
    auto* synth = app.add_subcommand("make-synthetic", "draw a synthetic data set in ADE20K's layout and encoding");
    std::string synth_out;
    std::int64_t n_train = 400, n_val = 50;
    int size = 160;
    std::uint64_t synth_seed = 0;
    synth->add_option("--out", synth_out, "output folder (gets images/ and annotations/)")->required();
    synth->add_option("--train", n_train, "training images")->capture_default_str();
    synth->add_option("--val", n_val, "validation images")->capture_default_str();
    synth->add_option("--size", size, "image side in pixels")->capture_default_str();
    synth->add_option("--seed", synth_seed, "seed (the same seed draws the same images)")->capture_default_str();

    // train
    auto* train_cmd = app.add_subcommand("train", "train DenseCLIP (iteration-based, checkpoints, resume)");
    std::string config_path, data_root, work_dir, clip_weights;
    TrainOptions topt;
    std::int64_t iters = 0, batch_size = 0, log_interval = 0, eval_interval = -1, stop_at = 0;
    train_cmd->add_option("--config", config_path, "JSON config (examples/denseclip/configs/*.json)")
        ->required()
        ->check(CLI::ExistingFile);
    train_cmd->add_option("--data-root", data_root, "ADEChallengeData2016-style folder")->required();
    train_cmd->add_option("--work-dir", work_dir, "where logs, curves and checkpoints go")->required();
    train_cmd->add_option("--iters", iters, "iterations (default: the config's)");
    train_cmd->add_option("--batch-size", batch_size, "images per iteration (default: the config's)");
    train_cmd->add_option("--seed", topt.seed, "seed of the initialisation, dropout and data order")
        ->capture_default_str();
    train_cmd->add_option("--log-interval", log_interval, "iterations per log line (default: the config's)");
    train_cmd->add_option("--eval-interval", eval_interval, "iterations between evaluations (0: only at the end)");
    train_cmd->add_option("--workers", topt.workers, "data loading threads (default: the config's)");
    train_cmd->add_flag("--resume", topt.resume, "continue from the work dir's latest checkpoint");
    train_cmd->add_option("--stop-at", stop_at, "end this session after that iteration (checkpointed; --resume goes on)");
    train_cmd->add_option("--clip-weights", clip_weights, "OpenAI CLIP file to start from (RN50.pt, ViT-B-16.pt, ...)")
        ->check(CLI::ExistingFile);
    train_cmd->add_flag("--freeze-text", topt.freeze_text,
                        "keep the text encoder exactly fixed (default: DenseCLIP's lr 0 with the min_lr leak)");
    add_device(train_cmd, topt.device);
    add_vocab(train_cmd);

    // eval
    auto* eval_cmd = app.add_subcommand("eval", "evaluate a checkpoint: per-class IoU table, mIoU, mAcc, aAcc");
    std::string checkpoint, split = "validation";
    InferCommand infer;
    bool json = false;
    eval_cmd->add_option("--config", config_path, "JSON config")->required()->check(CLI::ExistingFile);
    eval_cmd->add_option("--data-root", data_root, "ADEChallengeData2016-style folder")->required();
    eval_cmd->add_option("--checkpoint", checkpoint, "weft checkpoint or released DenseCLIP .pth")
        ->required()
        ->check(CLI::ExistingFile);
    eval_cmd->add_option("--split", split, "split folder under images/ and annotations/")->capture_default_str();
    eval_cmd->add_option("--mode", infer.mode, "whole or slide (default: the config's)")
        ->check(CLI::IsMember({"whole", "slide"}));
    eval_cmd->add_flag("--aug", infer.aug, "multi-scale and flip test (the config's aug_ratios)");
    eval_cmd->add_flag("--json", json, "print the metrics as JSON (fractions)");
    add_device(eval_cmd, infer.device);
    add_vocab(eval_cmd);

    // predict
    auto* predict_cmd = app.add_subcommand("predict", "segment images: label PNGs (ADE encoding) and colour overlays");
    std::string out_dir;
    std::vector<std::string> images;
    predict_cmd->add_option("--config", config_path, "JSON config")->required()->check(CLI::ExistingFile);
    predict_cmd->add_option("--checkpoint", checkpoint, "weft checkpoint or released DenseCLIP .pth")
        ->required()
        ->check(CLI::ExistingFile);
    predict_cmd->add_option("--out", out_dir, "output folder")->required();
    predict_cmd->add_option("--mode", infer.mode, "whole or slide (default: the config's)")
        ->check(CLI::IsMember({"whole", "slide"}));
    predict_cmd->add_flag("--aug", infer.aug, "multi-scale and flip test");
    predict_cmd->add_option("images", images, "images to segment")->required()->check(CLI::ExistingFile);
    add_device(predict_cmd, infer.device);
    add_vocab(predict_cmd);

    // score
    auto* score_cmd = app.add_subcommand("score", "mmseg's metrics of prediction PNGs against annotation PNGs");
    std::string pred_dir, gt_dir;
    score_cmd->add_option("--pred", pred_dir, "prediction PNGs (ADE encoding: class k as k+1)")
        ->required()
        ->check(CLI::ExistingDirectory);
    score_cmd->add_option("--gt", gt_dir, "annotation PNGs, matched by file name")
        ->required()
        ->check(CLI::ExistingDirectory);
    score_cmd->add_flag("--json", json, "print the metrics as JSON (fractions)");

    // zeroshot
    auto* zs_cmd = app.add_subcommand("zeroshot", "training-free dense prediction from CLIP (MaskCLIP)");
    std::string clip_path, image;
    zs_cmd->add_option("--clip", clip_path, "OpenAI CLIP file (ViT-B-16.pt, RN50.pt, ...)")
        ->required()
        ->check(CLI::ExistingFile);
    zs_cmd->add_option("--image", image, "image to segment")->required()->check(CLI::ExistingFile);
    zs_cmd->add_option("--out", out_dir, "output folder")->required();
    add_vocab(zs_cmd);

    CLI11_PARSE(app, argc, argv);

    try {
        if (*synth) {
            make_synthetic_command(synth_out, n_train, n_val, size, synth_seed);
        } else if (*train_cmd) {
            const auto cfg = read_config(config_path);
            topt.data_root = data_root;
            topt.work_dir = work_dir;
            topt.vocab = vocab;
            if (iters > 0) topt.iters = iters;
            if (batch_size > 0) topt.batch_size = batch_size;
            if (log_interval > 0) topt.log_interval = log_interval;
            if (eval_interval >= 0) topt.eval_interval = eval_interval;
            if (stop_at > 0) topt.stop_at = stop_at;
            if (!clip_weights.empty()) topt.clip_weights = clip_weights;
            train_command(cfg, topt);
        } else if (*eval_cmd || *predict_cmd) {
            infer.checkpoint = checkpoint;
            infer.vocab = vocab;
            if (*eval_cmd) eval_command(read_config(config_path), infer, data_root, split, json);
            else predict_command(read_config(config_path), infer, out_dir, images);
        } else if (*score_cmd) {
            score_command(pred_dir, gt_dir, json);
        } else if (*zs_cmd) {
            zeroshot_command(clip_path, image, out_dir, vocab);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "\ndenseclip: %s\n", e.what());
        return 1;
    }
    return 0;
}
