// examples/clip_pretrain/zero_shot.hpp: zero-shot classification accuracy of a CLIP model on a
// labelled folder, the measure `clip train` reports while it trains.
//
//   const auto folder = read_labelled_folder("heldout", candidates);    // pairs.hpp
//   const auto r = clip_pretrain::zero_shot_accuracy(model, tokenizer, folder, {.prompt = "a {}"});
//   // r.accuracy: the share of images whose own class text scores highest among all candidates
//
// As CLIP's zero-shot protocol: every candidate class name is put in the prompt, embedded and
// L2-normalised; each image (CLIP's evaluation preprocessing: resize, centre crop) is assigned
// the candidate with the highest cosine similarity. Runs without recording gradients.
#pragma once

#include <string>
#include <vector>

#include <weft/autograd/grad_mode.hpp>
#include <weft/data/image.hpp>
#include <weft/models/clip/clip_model.hpp>
#include <weft/models/clip/preprocess.hpp>
#include <weft/models/clip/tokenizer.hpp>

#include "pairs.hpp"

namespace clip_pretrain {

using namespace weft;

struct ZeroShotOptions {
    std::string prompt = "a {}";  // "{}" becomes the class name
    index_t context_length = 77;
    index_t batch_size = 256;
};

struct ZeroShotResult {
    double accuracy = 0;                 // top-1, over all images
    index_t images = 0;
    std::vector<index_t> correct, total;  // per class of the candidate list
};

inline std::string fill_prompt(const std::string& prompt, const std::string& name) {
    const auto at = prompt.find("{}");
    WEFT_CHECK(at != std::string::npos, "zero-shot prompt '", prompt, "' has no '{}' for the class name");
    return prompt.substr(0, at) + name + prompt.substr(at + 2);
}

template <Element T>
ZeroShotResult zero_shot_accuracy(const clip::Clip<T>& model, const clip::Tokenizer& tokenizer,
                                  const LabelledFolder& folder, const ZeroShotOptions& o = {}) {
    WEFT_CHECK(!folder.images.empty(), "zero-shot: the labelled folder has no images");
    NoGrad no_grad;
    std::vector<std::string> prompts;
    for (const auto& name : folder.class_names) prompts.push_back(fill_prompt(o.prompt, name));
    const auto txt = model.encode_text(tokenizer.tokenize(prompts, o.context_length, true));  // [K, E]
    const Tensor<T, 2> txt_n = txt / sqrt(sum(square(txt), {1}, keepdim));
    const index_t res = model.config().image_resolution(), n = index_t(folder.images.size());
    ZeroShotResult r;
    r.correct.assign(folder.class_names.size(), 0);
    r.total.assign(folder.class_names.size(), 0);
    index_t hits = 0;
    for (index_t start = 0; start < n; start += o.batch_size) {
        const index_t count = std::min(o.batch_size, n - start);
        auto images = Tensor<float, 4>::empty({count, 3, res, res});
        for (index_t k = 0; k < count; ++k) {
            const auto x = clip::preprocess(data::read_image(folder.images[std::size_t(start + k)].first), res);
            std::copy_n(x.contiguous().data(), x.numel(), images.data() + k * x.numel());
        }
        const auto img = model.encode_image(images);                                    // [b, E]
        const Tensor<T, 2> scores = matmul(img, txt_n.t());                             // [b, K] (same order as cos)
        for (index_t k = 0; k < count; ++k) {
            index_t best = 0;
            for (index_t c = 1; c < scores.size(1); ++c)
                if (scores(k, c) > scores(k, best)) best = c;
            const int truth = folder.images[std::size_t(start + k)].second;
            ++r.total[std::size_t(truth)];
            if (best == truth) ++hits, ++r.correct[std::size_t(truth)];
        }
    }
    r.images = n;
    r.accuracy = double(hits) / double(n);
    return r;
}

}  // namespace clip_pretrain
