// clip: OpenAI's CLIP from the command line (docs/clip.md).
//
//   clip tokenize < texts.txt                                  # ids per line, with start/end tokens
//   clip encode-text  --model ViT-B-16.pt [--json] < texts.txt # one embedding per line
//   clip encode-image --model ViT-B-16.pt [--json] a.jpg b.png # one embedding per image
//   clip zeroshot --model ViT-B-16.pt --image dog.jpg [--json] < labels.txt
//   clip make-synthetic-pairs --out data/pairs [--train 18000] [--heldout 600] [--size 32] [--seed 0]
//   clip train --data data/pairs/train.tsv --heldout data/pairs/heldout
//              --classes data/pairs/classes.txt --work-dir work/clip   # contrastive training; mpirun works
//
// --model takes any of OpenAI's .pt files (TorchScript or torch.save, fp16 or fp32) or a
// safetensors file with the same names. Texts come one per line on stdin (a trailing '\r' is
// dropped; empty lines are texts too). Embeddings are the projected features before
// normalisation, printed with 9 significant digits (float round trip).
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <weft/data/image.hpp>
#include <weft/models/clip/load.hpp>
#include <weft/models/clip/preprocess.hpp>
#include <weft/models/clip/tokenizer.hpp>
#include <weft/ops/softmax.hpp>

#include "../clip_pretrain/synthetic_pairs.hpp"
#include "train_command.hpp"

namespace {

using namespace weft;

std::vector<std::string> read_lines(std::istream& in) {
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
    }
    return lines;
}

// One line per row: values separated by spaces, or a JSON array. 9 significant digits give
// back the exact float.
void print_rows(const Tensor<float, 2>& rows, bool json) {
    const auto r = rows.contiguous();
    for (index_t i = 0; i < r.size(0); ++i) {
        std::printf("%s", json ? "[" : "");
        for (index_t j = 0; j < r.size(1); ++j) std::printf(j ? (json ? ",%.9g" : " %.9g") : "%.9g", double(r(i, j)));
        std::printf("%s\n", json ? "]" : "");
    }
}

// The texts as one [N, context_length] batch for the model.
Tensor<std::int64_t, 2> tokens_for(const clip::Tokenizer& tok, const std::vector<std::string>& texts,
                                   const clip::Clip<float>& model, bool truncate) {
    WEFT_CHECK(!texts.empty(), "no text on stdin (one text per line)");
    WEFT_CHECK(model.config().text.vocab_size >= clip::Tokenizer::kVocabSize, "the model's text vocabulary has ",
               model.config().text.vocab_size, " entries, but CLIP's tokenizer gives ids up to ",
               clip::Tokenizer::kVocabSize - 1, ": the model was not trained with CLIP's tokenizer");
    return tok.tokenize(texts, model.config().text.context_length, truncate);
}

Tensor<float, 2> encode_texts(const clip::Clip<float>& model, const Tensor<std::int64_t, 2>& tokens) {
    // Chunks bound the activations' memory for long lists.
    constexpr index_t chunk = 256;
    std::vector<Tensor<float, 2>> parts;
    for (index_t b = 0; b < tokens.size(0); b += chunk)
        parts.push_back(model.encode_text(tokens.narrow(0, b, std::min(chunk, tokens.size(0) - b)).contiguous()));
    return cat(parts, 0);
}

Tensor<float, 2> encode_images(const clip::Clip<float>& model, const std::vector<std::string>& paths) {
    const index_t n = model.config().image_resolution();
    std::vector<Tensor<float, 2>> parts;
    for (const auto& p : paths) {  // one at a time: a photo decodes to tens of megabytes
        std::vector<Tensor<std::uint8_t, 3>> one{data::read_image(p)};
        parts.push_back(model.encode_image(clip::preprocess_batch<float>(one, n)));
    }
    return cat(parts, 0);
}

struct Common {
    std::string model_path, vocab;
    bool json = false, truncate = false;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"clip: OpenAI CLIP's tokenizer, encoders and zero-shot classification (weft)"};
    app.require_subcommand(1);
    Common c;
#ifdef WEFT_SHARED_DIR
    c.vocab = std::string(WEFT_SHARED_DIR) + "/data/clip/bpe_simple_vocab_16e6.txt.gz";
#endif
    if (const char* v = std::getenv("WEFT_CLIP_VOCAB")) c.vocab = v;
    auto add_vocab = [&](CLI::App* s) {
        s->add_option("--vocab", c.vocab, "CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz; env WEFT_CLIP_VOCAB)")
            ->capture_default_str();
    };
    auto add_model = [&](CLI::App* s) {
        s->add_option("--model", c.model_path, "OpenAI .pt file (TorchScript or state dict) or safetensors")
            ->required()
            ->check(CLI::ExistingFile);
        s->add_flag("--json", c.json, "JSON output");
    };

    auto* tokenize = app.add_subcommand("tokenize", "stdin texts (one per line) -> token ids, one line each");
    add_vocab(tokenize);

    auto* encode_text = app.add_subcommand("encode-text", "stdin texts -> text embeddings, one line each");
    add_model(encode_text);
    add_vocab(encode_text);
    encode_text->add_flag("--truncate", c.truncate, "cut texts longer than the context (else an error)");

    std::vector<std::string> images;
    auto* encode_image = app.add_subcommand("encode-image", "images -> image embeddings, one line each");
    add_model(encode_image);
    encode_image->add_option("images", images, "image files (JPEG, PNG, BMP, ...)")->required()->check(CLI::ExistingFile);

    std::string image;
    auto* zeroshot = app.add_subcommand("zeroshot", "stdin candidate texts -> their probabilities for --image");
    add_model(zeroshot);
    add_vocab(zeroshot);
    zeroshot->add_option("--image", image, "the image to classify")->required()->check(CLI::ExistingFile);
    zeroshot->add_flag("--truncate", c.truncate, "cut texts longer than the context (else an error)");

    std::string pairs_out;
    clip_pretrain::SyntheticPairsOptions pairs_opt;
    auto* make_pairs = app.add_subcommand(
        "make-synthetic-pairs", "write a synthetic image-caption set (coloured shapes) for CLIP pre-training");
    make_pairs->add_option("--out", pairs_out, "output folder (must not exist or be empty)")->required();
    make_pairs->add_option("--train", pairs_opt.train, "training images")->capture_default_str();
    make_pairs->add_option("--heldout", pairs_opt.heldout, "images of held-out colour-shape pairs")->capture_default_str();
    make_pairs->add_option("--size", pairs_opt.size, "image side in pixels")->capture_default_str();
    make_pairs->add_option("--seed", pairs_opt.seed, "random seed")->capture_default_str();

    auto* train = clip_cli::add_train_command(app, c.vocab);

    CLI11_PARSE(app, argc, argv);

    try {
        if (*train) {  // the one subcommand that records gradients
            clip_cli::run_train_command();
            return 0;
        }
        NoGrad no_grad;
        if (*make_pairs) {
            const auto s = clip_pretrain::make_synthetic_pairs(pairs_out, pairs_opt);
            std::printf("wrote %lld training and %lld held-out %dx%d images to %s\n", static_cast<long long>(s.train),
                        static_cast<long long>(s.heldout), s.size, s.size, s.root.string().c_str());
            std::printf("  train.tsv: image<TAB>caption; classes.txt: %zu classes; heldout/: %zu classes never trained on:",
                        s.classes.size(), s.heldout_classes.size());
            for (std::size_t i = 0; i < s.heldout_classes.size(); ++i)
                std::printf("%s %s", i ? "," : "", s.heldout_classes[i].c_str());
            std::printf("\n");
        } else if (*tokenize) {
            const clip::Tokenizer tok(c.vocab);
            for (const auto& line : read_lines(std::cin)) {
                std::printf("%d", clip::Tokenizer::kStartToken);
                for (auto id : tok.encode(line)) std::printf(" %d", int(id));
                std::printf(" %d\n", clip::Tokenizer::kEndToken);
            }
        } else if (*encode_text) {
            const clip::Tokenizer tok(c.vocab);
            const auto model = clip::load<float>(c.model_path);
            print_rows(encode_texts(*model, tokens_for(tok, read_lines(std::cin), *model, c.truncate)), c.json);
        } else if (*encode_image) {
            const auto model = clip::load<float>(c.model_path);
            print_rows(encode_images(*model, images), c.json);
        } else if (*zeroshot) {
            const clip::Tokenizer tok(c.vocab);
            const auto texts = read_lines(std::cin);
            const auto model = clip::load<float>(c.model_path);
            const auto img = encode_images(*model, {image});                           // [1, E]
            const auto txt = encode_texts(*model, tokens_for(tok, texts, *model, c.truncate));  // [M, E]
            const auto p = softmax(model->logits(img, txt), -1).contiguous();           // [1, M]
            if (c.json) {
                print_rows(p, true);
            } else {
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
    } catch (const std::exception& e) {
        std::fprintf(stderr, "clip: %s\n", e.what());
        return 1;
    }
    return 0;
}
