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
// normalisation, printed with 9 significant digits (float round trip). --device cuda runs the
// encoders on the GPU (a build configured with -DWEFT_CUDA=ON).
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "../clip_pretrain/synthetic_pairs.hpp"
#include "encode_commands.hpp"
#include "train_command.hpp"

using namespace weft;
using clip_cli::EncodeCommand;

int main(int argc, char** argv) {
    CLI::App app{"clip: OpenAI CLIP's tokenizer, encoders and zero-shot classification (weft)"};
    app.require_subcommand(1);
    clip_cli::EncodeOptions c;
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
        s->add_option("--device", c.device, "where the model runs: cpu, or cuda (a build with -DWEFT_CUDA=ON)")
            ->check(CLI::IsMember({"cpu", "cuda"}))
            ->capture_default_str();
    };

    auto* tokenize = app.add_subcommand("tokenize", "stdin texts (one per line) -> token ids, one line each");
    add_vocab(tokenize);

    auto* encode_text = app.add_subcommand("encode-text", "stdin texts -> text embeddings, one line each");
    add_model(encode_text);
    add_vocab(encode_text);
    encode_text->add_flag("--truncate", c.truncate, "cut texts longer than the context (else an error)");

    auto* encode_image = app.add_subcommand("encode-image", "images -> image embeddings, one line each");
    add_model(encode_image);
    encode_image->add_option("images", c.images, "image files (JPEG, PNG, BMP, ...)")->required()->check(CLI::ExistingFile);

    auto* zeroshot = app.add_subcommand("zeroshot", "stdin candidate texts -> their probabilities for --image");
    add_model(zeroshot);
    add_vocab(zeroshot);
    zeroshot->add_option("--image", c.image, "the image to classify")->required()->check(CLI::ExistingFile);
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
            for (const auto& line : clip_cli::read_lines(std::cin)) {
                std::printf("%d", clip::Tokenizer::kStartToken);
                for (auto id : tok.encode(line)) std::printf(" %d", int(id));
                std::printf(" %d\n", clip::Tokenizer::kEndToken);
            }
        } else if (*encode_text || *encode_image || *zeroshot) {
            const auto command = *encode_text    ? EncodeCommand::text
                                 : *encode_image ? EncodeCommand::image
                                                 : EncodeCommand::zeroshot;
            if (c.device == "cuda") clip_cli::run_encode_cuda(command, c);
            else clip_cli::run_encode<Cpu>(command, c);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "clip: %s\n", e.what());
        return 1;
    }
    return 0;
}
