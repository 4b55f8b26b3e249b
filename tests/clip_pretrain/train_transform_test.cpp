// CLIP's training transform: RandomResizedCrop's boxes, and the tensor it makes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <weft/models/clip/preprocess.hpp>

#include "../../examples/clip_pretrain/train_transform.hpp"

using namespace clip_pretrain;
using weft::index_t;
using weft::Shape;
using weft::Tensor;

namespace {

// A deterministic image with structure everywhere (so any two different crops differ).
Tensor<std::uint8_t, 3> test_image(index_t h, index_t w) {
    auto img = Tensor<std::uint8_t, 3>::empty(Shape<3>{h, w, 3});
    for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x) {
            img(y, x, 0) = std::uint8_t((x * 37 + y * 11) % 256);
            img(y, x, 1) = std::uint8_t((x * x + 3 * y) % 256);
            img(y, x, 2) = std::uint8_t((y * y * 5 + x) % 256);
        }
    return img;
}

bool same(const Tensor<float, 3>& a, const Tensor<float, 3>& b) {
    return a.shape() == b.shape() && std::equal(a.data(), a.data() + a.numel(), b.data());
}

}  // namespace

TEST_CASE("clip_train_transform: shape, normalised range, determinism per (seed, epoch, sample)") {
    const auto img = test_image(45, 60);
    weft::data::SampleRandom r1(1, 0, 5), r2(1, 0, 5), r3(1, 1, 5), r4(1, 0, 6);
    const auto a = clip_train_transform(img, 32, r1);
    const auto b = clip_train_transform(img, 32, r2);
    REQUIRE(a.shape() == Shape<3>{3, 32, 32});
    REQUIRE(a.is_contiguous());
    CHECK(same(a, b));
    CHECK(!same(a, clip_train_transform(img, 32, r3)));  // another epoch
    CHECK(!same(a, clip_train_transform(img, 32, r4)));  // another sample
    for (int c = 0; c < 3; ++c) {
        const double lo = (0 - weft::clip::image_mean[std::size_t(c)]) / weft::clip::image_std[std::size_t(c)];
        const double hi = (1 - weft::clip::image_mean[std::size_t(c)]) / weft::clip::image_std[std::size_t(c)];
        for (index_t y = 0; y < 32; ++y)
            for (index_t x = 0; x < 32; ++x) {
                const double v = a(c, y, x);
                REQUIRE(v >= lo - 1e-6);
                REQUIRE(v <= hi + 1e-6);
            }
    }
}

TEST_CASE("clip_train_transform: scale 1 and ratio 1 on a square image is the plain bicubic resize") {
    const RandomResizedCropOptions whole{.scale_min = 1, .scale_max = 1, .ratio_min = 1, .ratio_max = 1};
    for (index_t side : {20, 32, 57}) {
        INFO("side " << side);
        const auto img = test_image(side, side);
        weft::data::SampleRandom rng(9, 2, 3);
        const auto x = clip_train_transform(img, 32, rng, whole);
        // clip::preprocess of a square image: PIL's bicubic resize to 32 x 32, nothing cropped.
        CHECK(same(x, weft::clip::preprocess(img, 32)));
        // Spelled out: resize, ToTensor, Normalize.
        const auto resized = weft::data::resize_bicubic_pil(img, 32, 32);
        const float expect = (float(resized(7, 5, 1)) / 255.0f - float(weft::clip::image_mean[1])) /
                             float(weft::clip::image_std[1]);
        CHECK(x(1, 7, 5) == expect);
    }
}

TEST_CASE("random_resized_crop_box: boxes within the image, the scale and the ratio range") {
    const RandomResizedCropOptions opt;  // OpenCLIP's: scale (0.9, 1), ratio (3/4, 4/3)
    for (auto [h, w] : {std::pair<index_t, index_t>{32, 32}, {100, 80}, {50, 200}}) {
        const double area = double(h * w);
        int moved = 0;
        for (std::uint64_t i = 0; i < 300; ++i) {
            weft::data::SampleRandom rng(4, 0, i);
            const CropBox b = random_resized_crop_box(h, w, opt, rng);
            INFO(h << " x " << w << " sample " << i << ": box " << b.top << " " << b.left << " " << b.height << " "
                   << b.width);
            REQUIRE(b.height > 0);
            REQUIRE(b.width > 0);
            REQUIRE(b.top >= 0);
            REQUIRE(b.left >= 0);
            REQUIRE(b.top + b.height <= h);
            REQUIRE(b.left + b.width <= w);
            moved += b.top != 0 || b.left != 0;
            if (h == 50) {
                // 1:4 fits no ratio in [3/4, 4/3] at 90% of the area: the centred fallback, the
                // full height at ratio 4/3.
                CHECK(b.height == 50);
                CHECK(b.width == 67);  // round(50 * 4/3)
                CHECK(b.top == 0);
                CHECK(b.left == (200 - 67) / 2);
                continue;
            }
            // Rounding each side moves the area and the ratio a little past the ranges.
            const double a = double(b.height * b.width) / area, r = double(b.width) / double(b.height);
            CHECK(a >= 0.9 * (1 - 4.0 / double(std::min(h, w))));
            CHECK(a <= 1.0);
            CHECK(r >= 0.75 * (1 - 2.0 / double(std::min(h, w))));
            CHECK(r <= 4.0 / 3.0 * (1 + 2.0 / double(std::min(h, w))));
        }
        if (h != 50) CHECK(moved > 100);  // the crops are not all anchored at the corner
    }
}

TEST_CASE("random_resized_crop_box: fallback when no attempt fits, and bad ranges") {
    weft::data::SampleRandom rng(0, 0, 0);
    // A ratio of 4-5 never fits a square at 90-100% of its area.
    const CropBox b = random_resized_crop_box(40, 40, {.ratio_min = 4, .ratio_max = 5}, rng);
    CHECK(b.width == 40);
    CHECK(b.height == 10);  // round(40 / 4)
    CHECK(b.top == 15);
    CHECK(b.left == 0);
    CHECK_THROWS_WITH(random_resized_crop_box(40, 40, {.scale_min = 0.5, .scale_max = 0.4}, rng),
                      Catch::Contains("scale range"));
    CHECK_THROWS_WITH(random_resized_crop_box(40, 40, {.ratio_min = 0}, rng), Catch::Contains("ratio range"));
    CHECK_THROWS_WITH(clip_train_transform(Tensor<std::uint8_t, 3>::zeros(Shape<3>{8, 8, 1}), 8, rng),
                      Catch::Contains("RGB"));
}

TEST_CASE("clip_train_batch: each sample transformed with its own stream") {
    std::vector<Tensor<std::uint8_t, 3>> images{test_image(40, 40), test_image(30, 50), test_image(64, 48)};
    const std::vector<index_t> ids{17, 3, 250};
    const auto batch = clip_train_batch(images, 24, 8, 2, ids);
    REQUIRE(batch.shape() == Shape<4>{3, 3, 24, 24});
    for (std::size_t i = 0; i < images.size(); ++i) {
        weft::data::SampleRandom rng(8, 2, std::uint64_t(ids[i]));
        const auto one = clip_train_transform(images[i], 24, rng);
        CHECK(std::equal(one.data(), one.data() + one.numel(), batch.data() + index_t(i) * one.numel()));
    }
    CHECK_THROWS_WITH(clip_train_batch(images, 24, 8, 2, {1, 2}), Catch::Contains("3 images but 2 sample ids"));
}
