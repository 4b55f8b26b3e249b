// examples/clip/encode_commands.hpp: `clip encode-text`, `encode-image` and `zeroshot` for a model on
// device D: main.cpp runs them on the CPU, encode_cuda.cu (nvcc, -DWEFT_CUDA=ON) with --device cuda.
// Texts and images are tokenised, decoded and preprocessed on the host; the batches go to D once,
// and only the embeddings (or probabilities) come back.
#pragma once

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <weft/data/image.hpp>
#include <weft/models/clip/load.hpp>
#include <weft/models/clip/preprocess.hpp>
#include <weft/models/clip/tokenizer.hpp>
#include <weft/ops/join.hpp>
#include <weft/ops/softmax.hpp>

namespace clip_cli {

using namespace weft;

enum class EncodeCommand { text, image, zeroshot };

struct EncodeOptions {
    std::string model_path, vocab;
    bool json = false, truncate = false;
    std::string device = "cpu";
    std::vector<std::string> images;  // encode-image
    std::string image;                // zeroshot
};

inline std::vector<std::string> read_lines(std::istream& in) {
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
    }
    return lines;
}

// One line per row: values separated by spaces, or a JSON array. 9 significant digits give
// back the exact float.
inline void print_rows(const Tensor<float, 2>& rows, bool json) {
    const auto r = rows.contiguous();
    for (index_t i = 0; i < r.size(0); ++i) {
        std::printf("%s", json ? "[" : "");
        for (index_t j = 0; j < r.size(1); ++j) std::printf(j ? (json ? ",%.9g" : " %.9g") : "%.9g", double(r(i, j)));
        std::printf("%s\n", json ? "]" : "");
    }
}

// The texts as one [N, context_length] batch for the model.
template <Device D>
Tensor<std::int64_t, 2> tokens_for(const clip::Tokenizer& tok, const std::vector<std::string>& texts,
                                   const clip::Clip<float, D>& model, bool truncate) {
    WEFT_CHECK(!texts.empty(), "no text on stdin (one text per line)");
    WEFT_CHECK(model.config().text.vocab_size >= clip::Tokenizer::kVocabSize, "the model's text vocabulary has ",
               model.config().text.vocab_size, " entries, but CLIP's tokenizer gives ids up to ",
               clip::Tokenizer::kVocabSize - 1, ": the model was not trained with CLIP's tokenizer");
    return tok.tokenize(texts, model.config().text.context_length, truncate);
}

template <Device D>
Tensor<float, 2, D> encode_texts(const clip::Clip<float, D>& model, const Tensor<std::int64_t, 2>& tokens) {
    // Chunks bound the activations' memory for long lists.
    constexpr index_t chunk = 256;
    std::vector<Tensor<float, 2, D>> parts;
    for (index_t b = 0; b < tokens.size(0); b += chunk)
        parts.push_back(model.encode_text(
            tokens.narrow(0, b, std::min(chunk, tokens.size(0) - b)).contiguous().template to<D>()));
    return cat(parts, 0);
}

template <Device D>
Tensor<float, 2, D> encode_images(const clip::Clip<float, D>& model, const std::vector<std::string>& paths) {
    const index_t n = model.config().image_resolution();
    std::vector<Tensor<float, 2, D>> parts;
    for (const auto& p : paths) {  // one at a time: a photo decodes to tens of megabytes
        std::vector<Tensor<std::uint8_t, 3>> one{data::read_image(p)};
        parts.push_back(model.encode_image(clip::preprocess_batch<float>(one, n).template to<D>()));
    }
    return cat(parts, 0);
}

template <Device D>
void run_encode(EncodeCommand command, const EncodeOptions& c) {
    NoGrad no_grad;
    if (command == EncodeCommand::text) {
        const clip::Tokenizer tok(c.vocab);  // before the model: a bad vocabulary fails fast
        const auto model = clip::load<float, D>(c.model_path);
        print_rows(encode_texts(*model, tokens_for(tok, read_lines(std::cin), *model, c.truncate)).template to<Cpu>(),
                   c.json);
    } else if (command == EncodeCommand::image) {
        const auto model = clip::load<float, D>(c.model_path);
        print_rows(encode_images(*model, c.images).template to<Cpu>(), c.json);
    } else {
        const clip::Tokenizer tok(c.vocab);
        const auto texts = read_lines(std::cin);
        const auto model = clip::load<float, D>(c.model_path);
        const auto img = encode_images(*model, {c.image});                                   // [1, E]
        const auto txt = encode_texts(*model, tokens_for(tok, texts, *model, c.truncate));  // [M, E]
        const Tensor<float, 2> p = softmax(model->logits(img, txt), -1).template to<Cpu>();  // [1, M]
        if (c.json) {
            print_rows(p, true);
            return;
        }
        std::size_t width = 4;
        for (const auto& t : texts) width = std::max(width, t.size());
        std::printf("%-*s  probability\n", int(width), "text");
        for (index_t j = 0; j < p.size(1); ++j) {
            const double q = p(0, j);
            std::string bar(std::size_t(q * 30 + 0.5), '#');
            std::printf("%-*s  %7.2f%%  %s\n", int(width), texts[std::size_t(j)].c_str(), 100 * q, bar.c_str());
        }
    }
}

// The same on the GPU: encode_cuda.cu, or encode_no_cuda.cpp, which names the configure line.
void run_encode_cuda(EncodeCommand command, const EncodeOptions& c);

}  // namespace clip_cli
