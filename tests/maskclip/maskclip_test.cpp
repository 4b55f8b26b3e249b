// MaskCLIP dense features (models/clip/maskclip.hpp) against tests/reference/maskclip.py: the tiny
// ViT and ResNet CLIP checkpoints of tests/reference/clip_model.py, loaded by clip::load, on the
// dense images stored in clip_model.safetensors, compared with PyTorch's float64 values.
#include <catch2/catch.hpp>

#include <filesystem>

#include <weft/models/clip/load.hpp>
#include <weft/models/clip/maskclip.hpp>

#include "support/fixture.hpp"
#include "support/gradcheck.hpp"

using namespace weft;
using weft::test::check_close;
using weft::test::fixture;

namespace {

std::filesystem::path reference_file(const std::string& file) {
    return std::filesystem::path(WEFT_SOURCE_DIR) / "tests/reference/data" / file;
}

// Expected values are float64; each tensor is held to tol relative to its largest element.
template <Element T, int R>
void check_output(const Tensor<T, R>& got, const Tensor<double, R>& want, const std::string& what) {
    const auto w = want.contiguous();
    double scale = 0;
    for (index_t i = 0; i < w.numel(); ++i) scale = std::max(scale, std::abs(w.data()[i]));
    const double tol = std::same_as<T, double> ? 1e-9 : 1e-4;
    check_close(got, want, tol * scale, tol, what);
}

// model "vit" or "rn": dense features through the Clip overload and the encoder's own overload,
// then the cosine map with the stored text features.
template <Element T>
void check_model(const std::string& m) {
    const auto model = clip::load<T>(reference_file("clip_" + m + "_tiny.pt"));
    const auto ref = fixture("maskclip");
    NoGrad no_grad;
    const Tensor<T, 4> images = cast<T>(fixture("clip_model").get<float, 4>(m + ".dense.images"));
    const auto features = clip::dense_value_features(*model, images);
    check_output(features, ref.get<double, 4>(m + ".features"), m + " dense_value_features (Clip)");
    const auto direct = m == "vit" ? clip::dense_value_features(*model->vit, images)
                                   : clip::dense_value_features(*model->resnet, images);
    check_output(direct, ref.get<double, 4>(m + ".features"), m + " dense_value_features (encoder)");
    const Tensor<T, 2> text = cast<T>(ref.get<double, 2>("text"));
    check_output(clip::dense_class_logits(features, text), ref.get<double, 4>(m + ".logits"),
                 m + " dense_class_logits");
}

}  // namespace

TEST_CASE("maskclip ViT value features match the MaskCLIP reference in double and float", "[maskclip]") {
    check_model<double>("vit");
    check_model<float>("vit");
}

TEST_CASE("maskclip ResNet value features match the MaskCLIP reference in double and float", "[maskclip]") {
    check_model<double>("rn");
    check_model<float>("rn");
}

TEST_CASE("maskclip ViT features are not forward_dense's attended embeddings", "[maskclip]") {
    // Same model, same tokens up to the last block: only the skipped query-key mixing differs, so
    // the two must disagree. The class-token option must matter too: the class token reaches the
    // patches through the attention of the blocks before the last.
    const auto model = clip::load<double>(reference_file("clip_vit_tiny.pt"));
    NoGrad no_grad;
    const Tensor<double, 4> images = cast<double>(fixture("clip_model").get<float, 4>("vit.dense.images"));
    const auto value = clip::dense_value_features(*model, images);
    const auto dense = model->vit->forward_dense(images, {.out_indices = {}, .class_embedding_twice = false});
    REQUIRE(dense.local.shape() == value.shape());
    CHECK(eval(max(abs(dense.local - value))).item() > 1e-3);
    const auto twice = clip::dense_value_features(*model, images, {.class_embedding_twice = true});
    CHECK(eval(max(abs(twice - value))).item() > 1e-6);
}

TEST_CASE("maskclip rejects images without 3 channels and mismatched text widths", "[maskclip]") {
    const auto vit = clip::load<float>(reference_file("clip_vit_tiny.pt"));
    const auto rn = clip::load<float>(reference_file("clip_rn_tiny.pt"));
    NoGrad no_grad;
    const auto four = Tensor<float, 4>::randn({1, 4, 32, 32});
    CHECK_THROWS_AS(clip::dense_value_features(*vit, four), weft::Error);
    CHECK_THROWS_WITH(clip::dense_value_features(*vit, four), Catch::Contains("3 channels"));
    CHECK_THROWS_WITH(clip::dense_value_features(*rn, four), Catch::Contains("3 channels"));
    const auto tiny = Tensor<float, 4>::randn({1, 3, 4, 4});  // smaller than one 8×8 patch
    CHECK_THROWS_WITH(clip::dense_value_features(*vit->vit, tiny), Catch::Contains("patch"));
    const auto features = Tensor<float, 4>::randn({1, 64, 2, 2});
    CHECK_THROWS_WITH(clip::dense_class_logits(features, Tensor<float, 2>::randn({3, 32})),
                      Catch::Contains("dense_class_logits"));
}

TEST_CASE("gradcheck maskclip ViT value features with respect to the images", "[gradcheck]") {
    const auto model = clip::load<double>(reference_file("clip_vit_tiny.pt"));
    const auto images = Tensor<double, 4>::randn({1, 3, 8, 16});  // a 1×2 patch grid
    WEFT_CHECK_GRADIENT([&](const Tensor<double, 4>& x) { return clip::dense_value_features(*model->vit, x); },
                        images);
}

TEST_CASE("gradcheck maskclip ResNet value features with respect to the images", "[gradcheck]") {
    const auto model = clip::load<double>(reference_file("clip_rn_tiny.pt"));
    const auto images = Tensor<double, 4>::randn({1, 3, 32, 32});  // one position after stride 32
    WEFT_CHECK_GRADIENT([&](const Tensor<double, 4>& x) { return clip::dense_value_features(*model->resnet, x); },
                        images);
}

TEST_CASE("gradcheck maskclip dense_class_logits", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const Tensor<double, 4>& f, const Tensor<double, 2>& t) { return clip::dense_class_logits(f, t); },
                        Tensor<double, 4>::randn({2, 5, 2, 3}), Tensor<double, 2>::randn({4, 5}));
}
