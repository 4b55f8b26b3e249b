// examples/denseclip/commands_infer.cpp: `eval`, `predict` and `zeroshot` (eval and predict on the CPU;
// --device cuda goes to commands_cuda.cu).
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include <weft/data/ade20k.hpp>
#include <weft/data/image.hpp>
#include <weft/metrics/json.hpp>
#include <weft/models/clip/load.hpp>
#include <weft/models/clip/maskclip.hpp>
#include <weft/ops/softmax.hpp>

#include "classes.hpp"
#include "commands.hpp"
#include "infer_commands.hpp"
#include "overlay.hpp"

namespace denseclip {

namespace fs = std::filesystem;
using namespace weft;

void eval_command(const DenseClipConfig& cfg, const InferCommand& c, const fs::path& data_root,
                  const std::string& split, bool json) {
    if (c.device == "cuda") return cuda_eval_command(cfg, c, data_root, split, json);
    run_eval<Cpu>(cfg, c, data_root, split, json);
}

void predict_command(const DenseClipConfig& cfg, const InferCommand& c, const fs::path& out_dir,
                     const std::vector<std::string>& images) {
    if (c.device == "cuda") return cuda_predict_command(cfg, c, out_dir, images);
    run_predict<Cpu>(cfg, c, out_dir, images);
}

// MaskCLIP's training-free segmentation with ADE20K's class names. The text side: every class
// name in a few scene templates, each encoded by CLIP's text tower, L2-normalised and averaged
// (CLIP's prompt ensembling; weft's choice of templates, after MaskCLIP's scene phrasing). The image
// side: the image resized keeping its ratio so the short side is 2x CLIP's input resolution
// (448 for ViT-B/16), normalised with CLIP's statistics, through dense_value_features; cosine
// logits upsampled bilinearly to the original size, argmax.
void zeroshot_command(const fs::path& clip_file, const fs::path& image, const fs::path& out_dir, const fs::path& vocab) {
    static const char* templates[] = {"a photo of a {}.", "there is a {} in the scene.", "there is the {} in the scene.",
                                      "this is a {} in the scene.", "this is the {} in the scene.",
                                      "this is one {} in the scene."};
    WEFT_CHECK(fs::exists(vocab), "zeroshot: CLIP's BPE vocabulary '", vocab.string(),
               "' does not exist (pass --vocab or set WEFT_CLIP_VOCAB)");
    const clip::Tokenizer tok(vocab.string());  // before the model: a bad vocabulary fails fast
    const auto model = clip::load<float>(clip_file);
    const auto& names = data::ade20k_class_names();
    NoGrad no_grad;
    Tensor<float, 2> text;  // [K, E], the mean of the normalised template embeddings
    for (const char* t : templates) {
        std::vector<std::string> prompts;
        for (const auto& n : names) {
            std::string p = t, name = n;
            while (!name.empty() && name.back() == ' ') name.pop_back();
            p.replace(p.find("{}"), 2, name);
            prompts.push_back(p);
        }
        const auto e = normalize(model->encode_text(tok.tokenize(prompts, model->config().text.context_length)), -1);
        text = text.defined() ? Tensor<float, 2>(text + e) : e.clone();
    }

    const auto rgb = data::read_image(image);
    const index_t H = rgb.size(0), W = rgb.size(1), short_side = 2 * model->config().image_resolution();
    const auto s = data::rescale_size(W, H, 4 * short_side, short_side);
    const Tensor<float, 3> chw = data::Normalize::clip()(data::resize_bilinear_cv(rgb, s.h, s.w));  // [3, h, w]
    const auto features = clip::dense_value_features(*model, chw.reshape(1, 3, s.h, s.w));       // [1, E, h', w']
    const auto logits = interpolate(clip::dense_class_logits(features, text), std::array<index_t, 2>{H, W},
                                    Interpolation::bilinear, false);                             // [1, K, H, W]
    const Tensor<std::uint8_t, 2> pred = cast<std::uint8_t>(argmax(logits.reshape(logits.size(1), H, W), 0));
    fs::create_directories(out_dir / "overlay");
    const auto stem = image.stem().string();
    data::write_png(out_dir / (stem + ".png"), ade_encoded(pred));
    data::write_png(out_dir / "overlay" / (stem + ".png"), colour_overlay(rgb, pred));
    std::printf("%s -> %s, %s\n", image.c_str(), (out_dir / (stem + ".png")).c_str(),
                (out_dir / "overlay" / (stem + ".png")).c_str());
}

}  // namespace denseclip
