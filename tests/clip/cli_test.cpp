// The clip command (examples/clip) end to end: a small random CLIP with the full vocabulary is
// written as safetensors, and every subcommand's output is compared with the library's own
// computation.
#include <catch2/catch.hpp>

#ifdef WEFT_CLIP_EXE

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <weft/data/image.hpp>
#include <weft/models/clip/load.hpp>
#include <weft/models/clip/preprocess.hpp>
#include <weft/models/clip/tokenizer.hpp>
#include <weft/nn/state_file.hpp>
#include <weft/ops/softmax.hpp>

#include "support/fixture.hpp"

using namespace weft;

namespace {

const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("weft_clip_cli_" + std::to_string(::getpid()));
const std::string vocab = std::string(WEFT_SHARED_DIR) + "/data/clip/bpe_simple_vocab_16e6.txt.gz";
const std::string image = std::string(WEFT_SHARED_DIR) + "/data/ade20k/sample/images/ADE_val_00000001.jpg";

struct Run {
    int status;
    std::string out, err;
};

// Runs `clip <args>` with `input` on stdin.
Run run(const std::string& args, const std::string& input = "") {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "stdin.txt") << input;
    const std::string cmd = std::string("WEFT_CLIP_VOCAB='") + vocab + "' '" + WEFT_CLIP_EXE + "' " + args + " < '" +
                            (dir / "stdin.txt").string() + "' > '" + (dir / "stdout.txt").string() + "' 2> '" +
                            (dir / "stderr.txt").string() + "'";
    const int status = std::system(cmd.c_str());
    auto slurp = [](const std::filesystem::path& p) {
        std::ostringstream s;
        s << std::ifstream(p).rdbuf();
        return s.str();
    };
    return {status, slurp(dir / "stdout.txt"), slurp(dir / "stderr.txt")};
}

// Each line "[a,b,...]" (or "a b ...") as a row of numbers.
std::vector<std::vector<double>> rows(const std::string& text) {
    std::vector<std::vector<double>> out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        for (char& ch : line)
            if (ch == '[' || ch == ']' || ch == ',') ch = ' ';
        std::istringstream values(line);
        out.emplace_back();
        for (double v; values >> v;) out.back().push_back(v);
    }
    return out;
}

void check_rows(const std::vector<std::vector<double>>& got, const Tensor<float, 2>& want) {
    REQUIRE(index_t(got.size()) == want.size(0));
    for (index_t i = 0; i < want.size(0); ++i) {
        REQUIRE(index_t(got[std::size_t(i)].size()) == want.size(1));
        for (index_t j = 0; j < want.size(1); ++j)
            CHECK(got[std::size_t(i)][std::size_t(j)] == Approx(want(i, j)).epsilon(1e-5).margin(1e-6));
    }
}

// A ViT CLIP small enough to build in a moment, with CLIP's whole vocabulary.
const std::string& model_file() {
    static const std::string path = [] {
        clip::ClipConfig c;
        c.embed_dim = 32;
        c.vision = clip::VisionTransformerConfig{
            .input_resolution = 32, .patch_size = 16, .width = 64, .layers = 1, .heads = 1, .output_dim = 32};
        c.text = {.context_length = 77, .vocab_size = 49408, .width = 64, .heads = 1, .layers = 1, .output_dim = 32};
        Generator gen(7);
        clip::Clip<float> model(c, gen);
        std::filesystem::create_directories(dir);
        const auto p = (dir / "tiny-clip.safetensors").string();
        nn::save_state(model, p);
        return p;
    }();
    return path;
}

}  // namespace

TEST_CASE("clip tokenize prints OpenAI's ids with start and end tokens", "[clip]") {
    const auto r = run("tokenize", "a photo of a dog.\nHello World!\nit's 2022\nskyscraper\n\n");
    REQUIRE(r.status == 0);
    CHECK(r.out ==
          "49406 320 1125 539 320 1929 269 49407\n"
          "49406 3306 1002 256 49407\n"
          "49406 585 568 273 271 273 273 49407\n"
          "49406 3075 11187 1284 49407\n"
          "49406 49407\n");
}

TEST_CASE("clip encode-text prints the library's text embeddings", "[clip]") {
    const auto model = clip::load<float>(model_file());
    const clip::Tokenizer tok(vocab);
    const std::vector<std::string> texts{"a photo of a dog", "a diagram", "ADE20K: wall, floor, ceiling"};
    NoGrad no_grad;
    const auto want = model->encode_text(tok.tokenize(texts, 77));
    for (const char* flag : {"", " --json"}) {
        const auto r = run("encode-text --model '" + model_file() + "'" + flag, texts[0] + "\n" + texts[1] + "\r\n" + texts[2] + "\n");
        INFO(r.err);
        REQUIRE(r.status == 0);
        check_rows(rows(r.out), want);
    }
}

TEST_CASE("clip encode-image prints the library's image embedding of a preprocessed photo", "[clip]") {
    const auto model = clip::load<float>(model_file());
    NoGrad no_grad;
    std::vector<Tensor<std::uint8_t, 3>> photos{data::read_image(image)};
    const auto want = model->encode_image(clip::preprocess_batch<float>(photos, 32));
    const auto r = run("encode-image --json --model '" + model_file() + "' '" + image + "'");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.front() == '[');
    check_rows(rows(r.out), want);
}

TEST_CASE("clip zeroshot prints softmax probabilities in input order", "[clip]") {
    const auto model = clip::load<float>(model_file());
    const clip::Tokenizer tok(vocab);
    const std::vector<std::string> labels{"a photo of a bedroom", "a photo of a street", "a photo of a cat"};
    NoGrad no_grad;
    std::vector<Tensor<std::uint8_t, 3>> photos{data::read_image(image)};
    const auto img = model->encode_image(clip::preprocess_batch<float>(photos, 32));
    const auto want = softmax(model->logits(img, model->encode_text(tok.tokenize(labels, 77))), -1);
    const std::string input = labels[0] + "\n" + labels[1] + "\n" + labels[2] + "\n";

    const auto json = run("zeroshot --json --model '" + model_file() + "' --image '" + image + "'", input);
    INFO(json.err);
    REQUIRE(json.status == 0);
    const auto got = rows(json.out);
    check_rows(got, want);
    double total = 0;
    for (double p : got.at(0)) total += p;
    CHECK(total == Approx(1.0).epsilon(1e-6));

    const auto table = run("zeroshot --model '" + model_file() + "' --image '" + image + "'", input);
    REQUIRE(table.status == 0);
    std::size_t at = 0;
    for (const auto& l : labels) {  // every label, in input order
        const auto next = table.out.find(l, at);
        CHECK(next != std::string::npos);
        at = next;
    }
}

TEST_CASE("clip reports bad input with the file's name and a failing status", "[clip]") {
    SECTION("a corrupt image") {
        std::filesystem::create_directories(dir);
        std::ofstream(dir / "broken.jpg") << "\xff\xd8\xff\xe0 not really a jpeg";
        const auto r = run("encode-image --model '" + model_file() + "' '" + (dir / "broken.jpg").string() + "'");
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Catch::Contains("broken.jpg"));
    }
    SECTION("a model file that is not a checkpoint") {
        std::ofstream(dir / "junk.pt") << "junk junk junk junk";
        const auto r = run("encode-text --model '" + (dir / "junk.pt").string() + "'", "a dog\n");
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Catch::Contains("junk.pt"));
    }
    SECTION("a model without CLIP's vocabulary") {
        const auto r = run("encode-text --model '" + std::string(WEFT_SOURCE_DIR) +
                               "/tests/reference/data/clip_vit_tiny.pt'",
                           "a dog\n");
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Catch::Contains("vocabulary has 256 entries"));
    }
    SECTION("a text too long for the context") {
        std::string long_text;
        for (int i = 0; i < 100; ++i) long_text += "dog ";
        const auto r = run("encode-text --model '" + model_file() + "'", long_text + "\n");
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Catch::Contains("too long"));
        CHECK(run("encode-text --truncate --model '" + model_file() + "'", long_text + "\n").status == 0);
    }
}

#endif  // WEFT_CLIP_EXE
