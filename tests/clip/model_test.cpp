// CLIP against tests/reference/clip_model.py: tiny ViT and ResNet models with random weights,
// stored as OpenAI ships them (TorchScript and torch.save, fp16), loaded by clip::load, and their
// embeddings compared with PyTorch's float64 outputs.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <weft/io/safetensors.hpp>
#include <weft/models/clip/load.hpp>
#include <weft/nn/state_file.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;
using weft::test::fixture;

namespace {

std::filesystem::path reference_file(const std::string& file) {
    return std::filesystem::path(WEFT_SOURCE_DIR) / "tests/reference/data" / file;
}

std::filesystem::path scratch(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("weft_clip_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir / name;
}

// Expected values computed in float64; float32 is held to 1e-5 relative of each tensor's scale.
template <Element T, int R>
void check_model_output(const Tensor<T, R>& got, const Tensor<double, R>& want, const std::string& what) {
    double scale = 0;
    for (index_t i = 0; i < want.numel(); ++i) scale = std::max(scale, std::abs(want.contiguous().data()[i]));
    const double tol = std::same_as<T, double> ? 1e-10 : 1e-5;
    check_close(got, want, tol * scale, tol, what);
}

template <Element T>
void check_global(const clip::Clip<T>& model, const std::string& m) {
    const auto ref = fixture("clip_model");
    NoGrad no_grad;
    const Tensor<T, 4> images = cast<T>(ref.get<float, 4>(m + ".images"));
    const auto text = ref.get<std::int64_t, 2>(m + ".text");
    const auto img = model.encode_image(images);
    const auto txt = model.encode_text(text);
    check_model_output(img, ref.get<double, 2>(m + ".image_features"), m + " encode_image");
    check_model_output(txt, ref.get<double, 2>(m + ".text_features"), m + " encode_text");
    check_model_output(model.logits(img, txt), ref.get<double, 2>(m + ".logits_per_image"), m + " logits");
}

}  // namespace

TEST_CASE("clip infers the ViT configuration from a TorchScript archive as build_model does", "[clip]") {
    const auto c = clip::infer_config(Checkpoint::open(reference_file("clip_vit_tiny.pt")));
    REQUIRE(c.is_vit());
    const auto& v = std::get<clip::VisionTransformerConfig>(c.vision);
    CHECK(c.embed_dim == 64);
    CHECK(v.input_resolution == 32);
    CHECK(v.patch_size == 8);
    CHECK(v.width == 128);
    CHECK(v.layers == 2);
    CHECK(v.heads == 2);
    CHECK(c.text.context_length == 16);
    CHECK(c.text.vocab_size == 256);
    CHECK(c.text.width == 64);
    CHECK(c.text.heads == 1);
    CHECK(c.text.layers == 2);
}

TEST_CASE("clip infers the ResNet configuration from a torch.save archive", "[clip]") {
    const auto c = clip::infer_config(Checkpoint::open(reference_file("clip_rn_tiny.pt")));
    REQUIRE(!c.is_vit());
    const auto& r = std::get<clip::ModifiedResNetConfig>(c.vision);
    CHECK(r.layers == std::array<index_t, 4>{1, 2, 1, 1});
    CHECK(r.width == 8);
    CHECK(r.heads == 4);
    CHECK(r.input_resolution == 64);
    CHECK(c.embed_dim == 64);
}

TEST_CASE("clip ViT from an fp16 TorchScript archive matches PyTorch in float and double", "[clip]") {
    check_global(*clip::load<float>(reference_file("clip_vit_tiny.pt")), "vit");
    check_global(*clip::load<double>(reference_file("clip_vit_tiny.pt")), "vit");
}

TEST_CASE("clip ResNet from an fp16 torch.save archive matches PyTorch in float and double", "[clip]") {
    check_global(*clip::load<float>(reference_file("clip_rn_tiny.pt")), "rn");
    check_global(*clip::load<double>(reference_file("clip_rn_tiny.pt")), "rn");
}

TEST_CASE("clip model saved as safetensors loads back to the same embeddings", "[clip]") {
    const auto model = clip::load<float>(reference_file("clip_rn_tiny.pt"));
    const auto path = scratch("rn.safetensors");
    nn::save_state(*model, path);
    CHECK(Checkpoint::open(path).format() == Checkpoint::Format::safetensors);
    check_global(*clip::load<float>(path), "rn");
}

TEST_CASE("clip dense ViT: taps, global and per-patch embeddings at another size match DenseCLIP's", "[clip]") {
    const auto model = clip::load<double>(reference_file("clip_vit_tiny.pt"));
    const auto ref = fixture("clip_model");
    NoGrad no_grad;
    const Tensor<double, 4> images = cast<double>(ref.get<float, 4>("vit.dense.images"));  // [2, 3, 48, 40]
    const auto out = model->vit->forward_dense(images, {.out_indices = {0, 1}});
    REQUIRE(out.features.size() == 2);
    check_model_output(out.features[0], ref.get<double, 4>("vit.dense.taps.0"), "tap 0");
    check_model_output(out.features[1], ref.get<double, 4>("vit.dense.taps.1"), "tap 1");
    check_model_output(out.global, ref.get<double, 2>("vit.dense.global"), "global");
    check_model_output(out.local, ref.get<double, 4>("vit.dense.visual"), "visual");

    // Without DenseCLIP's doubled class embedding, at the native size, the dense global
    // embedding is CLIP's.
    const Tensor<double, 4> native = cast<double>(ref.get<float, 4>("vit.images"));
    const auto plain = model->vit->forward_dense(native, {.out_indices = {}, .class_embedding_twice = false});
    check_model_output(plain.global, ref.get<double, 2>("vit.image_features"), "global at native size");
}

TEST_CASE("clip dense ResNet: stages and the all-token attention pool match DenseCLIP's", "[clip]") {
    const auto model = clip::load<double>(reference_file("clip_rn_tiny.pt"));
    const auto ref = fixture("clip_model");
    NoGrad no_grad;
    const Tensor<double, 4> images = cast<double>(ref.get<float, 4>("rn.dense.images"));  // [1, 3, 96, 64]
    const auto out = model->resnet->forward_dense(images);
    for (int i = 0; i < 4; ++i)
        check_model_output(out.stages[std::size_t(i)], ref.get<double, 4>("rn.dense.layer" + std::to_string(i + 1)),
                           "stage " + std::to_string(i + 1));
    check_model_output(out.global, ref.get<double, 2>("rn.dense.global"), "global");
    check_model_output(out.local, ref.get<double, 4>("rn.dense.local"), "local");
}

TEST_CASE("clip positional grids resize bilinearly as DenseCLIP does at load time", "[clip]") {
    const auto vit = clip::load<double>(reference_file("clip_vit_tiny.pt"));
    const auto rn = clip::load<double>(reference_file("clip_rn_tiny.pt"));
    const auto ref = fixture("clip_model");
    check_model_output(clip::resize_positional_embedding(vit->vit->positional_embedding.detach(), {7, 7}),
                       ref.get<double, 2>("vit.resized_positional_embedding"), "ViT 4 -> 7");
    check_model_output(clip::resize_positional_embedding(rn->resnet->attnpool.positional_embedding.detach(), {4, 4}),
                       ref.get<double, 2>("rn.resized_positional_embedding"), "attention pool 2 -> 4");
}

TEST_CASE("clip state names are OpenAI's", "[clip]") {
    const auto model = clip::load<float>(reference_file("clip_vit_tiny.pt"));
    const auto ck = Checkpoint::open(reference_file("clip_vit_tiny.pt"));
    std::size_t n = 0;
    for (const auto& e : model->named_state()) {
        INFO(e.name);
        CHECK(ck.contains(e.name));
        ++n;
    }
    // Every archive tensor but OpenAI's three scalars is the model's.
    CHECK(n + 3 == ck.names().size());
}

TEST_CASE("clip load errors name the file and the key", "[clip]") {
    SECTION("not a CLIP checkpoint") {
        CHECK_THROWS_WITH(clip::load<float>(reference_file("linear.safetensors")),
                          Catch::Contains("linear.safetensors") && Catch::Contains("text_projection"));
    }
    SECTION("a tensor of the wrong shape") {
        const auto ck = Checkpoint::open(reference_file("clip_rn_tiny.pt"));
        std::vector<SafetensorsEntry> entries;
        for (const auto& name : ck.names()) {
            const auto shape = ck.shape(name);
            if (name == "visual.layer2.1.conv2.weight") {
                entries.emplace_back(name, Tensor<float, 4>::zeros({32, 32, 3, 1}));
                continue;
            }
            switch (shape.size()) {
                case 0: entries.emplace_back(name, ck.get<float, 0>(name)); break;
                case 1: entries.emplace_back(name, ck.get<float, 1>(name)); break;
                case 2: entries.emplace_back(name, ck.get<float, 2>(name)); break;
                default: entries.emplace_back(name, ck.get<float, 4>(name)); break;
            }
        }
        const auto path = scratch("misshaped.safetensors");
        save_safetensors(path, entries);
        CHECK_THROWS_WITH(clip::load<float>(path), Catch::Contains("misshaped.safetensors") &&
                                                       Catch::Contains("visual.layer2.1.conv2.weight") &&
                                                       Catch::Contains("[32, 32, 3, 1]"));
    }
    SECTION("an official file name with other content") {
        const auto path = scratch("ViT-B-16.pt");
        std::filesystem::copy_file(reference_file("clip_vit_tiny.pt"), path, std::filesystem::copy_options::overwrite_existing);
        CHECK_THROWS_WITH(clip::load<float>(path), Catch::Contains("SHA-256") && Catch::Contains("ViT-B-16.pt"));
        CHECK_NOTHROW(clip::load<float>(path, {.verify_official_hash = false}));
    }
    SECTION("a missing file") {
        CHECK_THROWS_WITH(clip::load<float>(scratch("absent.pt")), Catch::Contains("absent.pt"));
    }
}

TEST_CASE("clip image encoders built for another resolution load CLIP weights with a resized grid", "[clip]") {
    const auto ck = Checkpoint::open(reference_file("clip_vit_tiny.pt"));
    const auto ref = fixture("clip_model");
    clip::VisionTransformer<double> vit({.input_resolution = 56, .patch_size = 8, .width = 128, .layers = 2, .heads = 2,
                                         .output_dim = 64});  // a 7×7 grid; the file's is 4×4
    clip::load_image_encoder(vit, ck);
    check_model_output(vit.positional_embedding.detach(), ref.get<double, 2>("vit.resized_positional_embedding"),
                       "ViT grid 4 -> 7 at load");
    const auto full = clip::load<double>(reference_file("clip_vit_tiny.pt"));
    check_close(vit.proj.detach(), full->vit->proj.detach(), 0, 0, "other tensors as stored");

    const auto rck = Checkpoint::open(reference_file("clip_rn_tiny.pt"));
    clip::ModifiedResNet<double> rn({.layers = {1, 2, 1, 1}, .output_dim = 64, .heads = 4, .input_resolution = 128,
                                     .width = 8});  // a 4×4 grid; the file's is 2×2
    clip::load_image_encoder(rn, rck);
    check_model_output(rn.attnpool.positional_embedding.detach(), ref.get<double, 2>("rn.resized_positional_embedding"),
                       "attention pool grid 2 -> 4 at load");

    clip::VisionTransformer<double> wrong({.input_resolution = 56, .patch_size = 8, .width = 64, .layers = 2,
                                           .heads = 1, .output_dim = 64});
    CHECK_THROWS_WITH(clip::load_image_encoder(wrong, ck), Catch::Contains("clip_vit_tiny.pt"));
}

// VisionTransformer::forward runs its last block for the class token alone; the embedding and
// every parameter's gradient must be those of the whole last block (forward_tokens).
TEST_CASE("clip ViT's class-token-only last block gives the full block's embedding and gradients", "[clip]") {
    clip::VisionTransformer<double> vit(
        {.input_resolution = 32, .patch_size = 8, .width = 16, .layers = 2, .heads = 2, .output_dim = 8});
    vit.train();
    const auto images = Tensor<double, 4>::randn({2, 3, 32, 32});
    const auto weights = Tensor<double, 2>::randn({2, 8});
    auto grads_of = [&](bool class_only) {
        vit.zero_grad();
        const Tensor<double, 2> e =
            class_only ? vit(images) : matmul(vit.ln_post(Tensor<double, 2>(vit.forward_tokens(images).select(1, 0))), vit.proj);
        sum(e * weights).backward();
        std::vector<Tensor<double, 1>> g{e.detach().reshape(e.numel())};
        for (auto& p : vit.named_parameters()) g.push_back(p.tensor.grad_flat().clone());
        return g;
    };
    const auto pruned = grads_of(true), full = grads_of(false);
    REQUIRE(pruned.size() == full.size());
    for (std::size_t i = 0; i < full.size(); ++i) check_close(pruned[i], full[i], 1e-12, 1e-10, "tensor " + std::to_string(i));
}
