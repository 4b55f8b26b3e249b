// PIL-exact resize (data/resize_pil.hpp) and CLIP's preprocessing (models/clip/preprocess.hpp)
// against Pillow 9.4 and torchvision 0.14 (tests/reference/clip_preprocess.py).
#include <cstring>

#include <weft/models/clip/preprocess.hpp>

#include "image_checks.hpp"

using namespace weft;
using namespace weft::test;

namespace {

// The stb decode of the ADE20K sample that the fixture resized (the image io test checks that
// it is the same decode).
const Tensor<std::uint8_t, 3>& ade1() {
    static const auto img = data::read_image(ade_path("images/ADE_val_00000001.jpg"));
    return img;
}

Tensor<std::uint8_t, 3> input(const std::string& name) {
    return name == "ade1" ? ade1() : image_fixture().get<std::uint8_t, 3>("img." + name);
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i)
        if (i == s.size() || s[i] == sep) {
            parts.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    return parts;
}

bool bit_equal(const Tensor<float, 3>& a, const Tensor<float, 3>& b) {
    const auto x = a.contiguous(), y = b.contiguous();
    return x.shape() == y.shape() && std::memcmp(x.data(), y.data(), std::size_t(x.numel()) * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("resize_pil equals PIL's Image.resize byte for byte (bicubic and bilinear)") {
    int bicubic = 0, bilinear = 0;
    for (const auto& name : fixture_names("resize.")) {
        // resize.<filter>.<image>.<h>x<w>
        const auto parts = split(name, '.');
        REQUIRE(parts.size() == 4);
        const auto hw = split(parts[3], 'x');
        const index_t h = std::stoll(hw[0]), w = std::stoll(hw[1]);
        const bool cubic = parts[1] == "bicubic";
        const auto out = data::resize_pil(input(parts[2]), h, w,
                                          cubic ? data::PilFilter::bicubic : data::PilFilter::bilinear);
        check_bytes_equal(out, image_fixture().get<std::uint8_t, 3>(name), name);
        (cubic ? bicubic : bilinear) += 1;
    }
    // Shrinking, enlarging, one side unchanged (one pass skipped), both unchanged (a copy), to
    // and from one pixel, 1, 3 and 4 channels, and the real image.
    CHECK(bicubic >= 25);
    CHECK(bilinear >= 6);
}

TEST_CASE("resize_pil reads any strides, resamples channels independently and returns new storage") {
    const auto img = input("noise");  // [17, 23, 3]
    const auto ref = data::resize_bicubic_pil(img, 9, 31);
    // The same pixels through a transposed view of a transposed copy.
    const Tensor<std::uint8_t, 3> t = img.permute(1, 0, 2).contiguous();
    check_bytes_equal(data::resize_bicubic_pil(t.permute(1, 0, 2), 9, 31), ref, "strided input");
    // Channel c of a C-channel resize is the 1-channel resize of channel c.
    const auto two = img.narrow(2, 0, 2);  // [17, 23, 2], strided
    const auto r2 = data::resize_bilinear_pil(two, 30, 4);
    for (index_t c = 0; c < 2; ++c) {
        const Tensor<std::uint8_t, 3> one = img.narrow(2, c, 1).contiguous();
        check_bytes_equal(Tensor<std::uint8_t, 3>(r2.narrow(2, c, 1).contiguous()),
                          data::resize_bilinear_pil(one, 30, 4), "channel " + std::to_string(c));
    }
    // Same size: a copy, as PIL's.
    const auto same = data::resize_bicubic_pil(img, 17, 23);
    check_bytes_equal(same, img, "same size");
    CHECK(same.data() != img.data());
}

TEST_CASE("resize_pil refuses empty sizes") {
    const auto img = input("small");
    check_error([&] { data::resize_bicubic_pil(img, 0, 4); }, {"resize_pil", "output size 0 x 4"});
    check_error([&] { data::resize_bicubic_pil(Tensor<std::uint8_t, 3>::zeros(Shape<3>{0, 3, 3}), 2, 2); },
                {"resize_pil", "cannot resize an image of shape"});
    check_error([&] { data::resize_bicubic_pil(Tensor<std::uint8_t, 3>{}, 2, 2); }, {"undefined"});
}

TEST_CASE("clip::resized_size follows torchvision's shorter-side rule") {
    using P = std::pair<index_t, index_t>;
    CHECK(clip::resized_size(512, 683, 224) == P{224, 298});  // int(224 * 683 / 512) = 298
    CHECK(clip::resized_size(683, 512, 224) == P{298, 224});
    CHECK(clip::resized_size(40, 7, 16) == P{91, 16});
    CHECK(clip::resized_size(5, 5, 3) == P{3, 3});
    CHECK(clip::resized_size(3, 1000, 224) == P{224, 74666});
    // Truncation of the exact quotient: 224 * 299 / 224 = 299.0, 10 * 7 / 3 = 23.33 -> 23.
    CHECK(clip::resized_size(224, 299, 224) == P{224, 299});
    CHECK(clip::resized_size(3, 7, 10) == P{10, 23});
}

TEST_CASE("clip::center_crop pads and crops as torchvision's CenterCrop") {
    int cases = 0;
    for (const auto& name : fixture_names("center_crop.")) {
        const auto parts = split(name, '.');
        const auto out = clip::center_crop(input(parts[1]), std::stoll(parts[2]));
        check_bytes_equal(Tensor<std::uint8_t, 3>(out.contiguous()), image_fixture().get<std::uint8_t, 3>(name), name);
        ++cases;
    }
    CHECK(cases == 5);
    // Offsets round half to even, as Python's round: 17 -> 16 starts at 0, 19 at 2, 21 at 2.
    for (auto [h, top] : {std::pair<index_t, index_t>{17, 0}, {19, 2}, {21, 2}, {23, 4}}) {
        const auto img = Tensor<std::uint8_t, 3>::zeros(Shape<3>{h, 16, 1});
        CHECK(clip::center_crop(img, 16).data() == img.data() + top * 16);
    }
}

TEST_CASE("clip::preprocess equals torchvision's CLIP transform within 1e-6, and bit for bit in float") {
    const auto& f = image_fixture();
    int cases = 0, exact = 0;
    for (const auto& name : fixture_names("preprocess.")) {
        const auto parts = split(name, '.');
        const index_t n = std::stoll(parts[2]);
        const auto expected = f.get<float, 3>(name);
        const auto ours = clip::preprocess(input(parts[1]), n);
        check_close(ours, expected, 1e-6, 0, name);
        exact += bit_equal(ours, expected);
        check_close(clip::preprocess<double>(input(parts[1]), n), expected, 1e-6, 0, name + " (double)");
        ++cases;
    }
    CHECK(cases == 11);
    // float: the same roundings as PyTorch's div(255), sub_(mean), div_(std).
    CHECK(exact == cases);
}

TEST_CASE("clip::preprocess_batch stacks preprocess of images of different sizes") {
    const std::vector<Tensor<std::uint8_t, 3>> images{input("tall"), input("wide"), input("small"), input("odd3")};
    const auto batch = clip::preprocess_batch(images, 16);
    REQUIRE(batch.shape() == Shape<4>{4, 3, 16, 16});
    const char* names[] = {"tall", "wide", "small", "odd3"};
    for (index_t i = 0; i < 4; ++i) {
        const Tensor<float, 3> one = batch.select(0, i).contiguous();
        CHECK(bit_equal(one, image_fixture().get<float, 3>(std::string("preprocess.") + names[i] + ".16")));
    }
    // Enough images to run one per thread.
    const std::vector<Tensor<std::uint8_t, 3>> many(std::size_t(num_threads() + 1), input("noise"));
    const auto b2 = clip::preprocess_batch<double>(many, 8);
    check_close(Tensor<double, 3>(b2.select(0, index_t(many.size()) - 1).contiguous()),
                image_fixture().get<float, 3>("preprocess.noise.8"), 1e-6, 0, "batch of many");
}

TEST_CASE("clip::preprocess refuses what is not an RGB image") {
    check_error([] { clip::preprocess(Tensor<std::uint8_t, 3>::zeros(Shape<3>{4, 4, 4}), 2); },
                {"clip::preprocess", "[H, W, 3] RGB", "[4, 4, 4]"});
    check_error([] { clip::preprocess(Tensor<std::uint8_t, 3>::zeros(Shape<3>{4, 4, 3}), 0); },
                {"resolution 0"});
    check_error([] { clip::preprocess_batch({}, 4); }, {"no images"});
    CHECK(clip::image_mean[0] == 0.48145466);
    CHECK(clip::image_std[2] == 0.27577711);
}
