// examples/denseclip/infer_commands.hpp: `eval` and `predict` for a model on device D, shared by
// commands_infer.cpp (Cpu) and commands_cuda.cu (Cuda).
#pragma once

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/data/ade20k.hpp>
#include <weft/data/image.hpp>
#include <weft/metrics/json.hpp>

#include "classes.hpp"
#include "commands.hpp"
#include "evaluate.hpp"
#include "overlay.hpp"

namespace denseclip {

template <Device D>
std::unique_ptr<DenseClip<float, D>> load_model(const DenseClipConfig& cfg, const InferCommand& c) {
    auto model = std::make_unique<DenseClip<float, D>>(cfg, class_tokens(c.vocab, cfg));
    load_denseclip(*model, Checkpoint::open(c.checkpoint));
    model->eval();
    return model;
}

inline InferenceOptions inference_options(const DenseClipConfig& cfg, const InferCommand& c) {
    auto o = InferenceOptions::from(cfg, c.aug);
    if (!c.mode.empty()) o.mode = c.mode;
    return o;
}

template <Device D>
void run_eval(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& data_root,
              const std::string& split, bool json) {
    const data::Ade20k set(data_root, split, cfg.data.reduce_zero_label);
    const auto model = load_model<D>(cfg, c);
    const auto options = inference_options(cfg, c);
    const auto r = evaluate(*model, set, options, [](index_t done, index_t total) {
        std::fprintf(stderr, "\r%lld/%lld images", (long long)done, (long long)total);
        if (done == total) std::fputc('\n', stderr);
    });
    if (json) {
        auto j = metrics::to_json(r.metrics, data::ade20k_class_names());
        j["images"] = r.images;
        j["mode"] = options.mode;
        j["aug"] = c.aug;
        j["device"] = c.device;
        j["seconds"] = r.seconds;
        std::cout << j.dump(1) << "\n";
    } else {
        std::printf("%lld images, %s inference%s on %s, %.1f s\n", (long long)r.images, options.mode.c_str(),
                    c.aug ? " with multi-scale and flip" : "", c.device.c_str(), r.seconds);
        print_metrics(r.metrics, false);
    }
}

template <Device D>
void run_predict(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& out_dir,
                 const std::vector<std::string>& images) {
    namespace fs = std::filesystem;
    const auto model = load_model<D>(cfg, c);
    const Inference<float, D> infer(*model, inference_options(cfg, c));
    fs::create_directories(out_dir / "overlay");
    for (const auto& path : images) {
        const auto rgb = data::read_image(path);
        const auto pred = infer.predict(rgb);  // [H, W] 0..K-1, on the host
        const auto stem = fs::path(path).stem().string();
        data::write_png(out_dir / (stem + ".png"), ade_encoded(pred));
        data::write_png(out_dir / "overlay" / (stem + ".png"), colour_overlay(rgb, pred));
        std::printf("%s -> %s, %s\n", path.c_str(), (out_dir / (stem + ".png")).c_str(),
                    (out_dir / "overlay" / (stem + ".png")).c_str());
    }
}

}  // namespace denseclip
