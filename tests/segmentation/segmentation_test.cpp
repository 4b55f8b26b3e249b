// The segmentation modules' names (as in mmseg / DenseCLIP checkpoints at the released
// configurations), their initialisation (mmcv's ConvModule rule, PyTorch's defaults elsewhere),
// channel dropout, shapes through adapters -> FPN -> head, and their error messages.
#include <cmath>
#include <string>
#include <vector>

#include <weft/models/segmentation/fpn.hpp>
#include <weft/models/segmentation/fpn_head.hpp>
#include <weft/models/segmentation/vit_adapters.hpp>

#include <catch2/catch.hpp>

using namespace weft;

namespace {

template <class T>
std::vector<std::string> state_names(const nn::Module<T>& m) {
    return m.state_dict().names();
}

const std::vector<std::string> bn_suffixes = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};

double sample_std(const Tensor<float, 4>& w) {
    const auto c = w.contiguous();
    double s = 0, s2 = 0;
    for (index_t i = 0; i < c.numel(); ++i) {
        s += c.data()[i];
        s2 += double(c.data()[i]) * c.data()[i];
    }
    const double mean = s / double(c.numel());
    return std::sqrt(s2 / double(c.numel()) - mean * mean);
}

}  // namespace

TEST_CASE("segmentation FPNHead names match mmseg at DenseCLIP's configuration") {
    seg::FPNHead<float> head;  // 4 levels, strides 4..32, 256 channels, 150 classes
    std::vector<std::string> expected = {"conv_seg.weight", "conv_seg.bias"};
    // The Upsample stages take the odd indices of levels 1..3 (they hold no tensors).
    for (const std::string block : {"0.0", "1.0", "2.0", "2.2", "3.0", "3.2", "3.4"}) {
        expected.push_back("scale_heads." + block + ".conv.weight");
        for (const auto& s : bn_suffixes) expected.push_back("scale_heads." + block + ".bn." + s);
    }
    CHECK(state_names(head) == expected);
    CHECK(head.conv_seg.weight.shape() == Shape<4>{150, 256, 1, 1});
    CHECK(head.scale_heads[3].size() == 6);
    CHECK(head.scale_heads[0].size() == 1);
    CHECK_FALSE(head.scale_heads[2].at<seg::ConvModule<float>>(2).conv.bias.defined());
}

TEST_CASE("segmentation FPN names match mmseg") {
    seg::FPN<float> fpn({768, 768, 918, 768}, 256);
    std::vector<std::string> expected;
    for (const std::string list : {"lateral_convs", "fpn_convs"})
        for (int i = 0; i < 4; ++i)
            for (const std::string p : {"weight", "bias"})
                expected.push_back(list + "." + std::to_string(i) + ".conv." + p);
    CHECK(state_names(fpn) == expected);
    CHECK(fpn.lateral_convs[2].conv.weight.shape() == Shape<4>{256, 918, 1, 1});
    CHECK(fpn.fpn_convs[1].conv.weight.shape() == Shape<4>{256, 256, 3, 3});
}

TEST_CASE("segmentation ViT adapter names match DenseCLIP") {
    seg::ViTAdapters<float> adapters(768);
    std::vector<std::string> expected = {"fpn1.0.weight", "fpn1.0.bias", "fpn1.1.weight", "fpn1.1.bias"};
    for (const auto& s : bn_suffixes) expected.push_back("fpn1.2." + s);
    for (const std::string n : {"fpn1.4.weight", "fpn1.4.bias", "fpn2.0.weight", "fpn2.0.bias", "fpn2.1.weight",
                                "fpn2.1.bias", "fpn3.weight", "fpn3.bias", "fpn4.0.weight", "fpn4.0.bias"})
        expected.push_back(n);
    CHECK(state_names(adapters) == expected);
    CHECK(adapters.fpn1.at<nn::ConvTranspose2d<float>>(1).weight.shape() == Shape<4>{768, 768, 2, 2});
    CHECK(adapters.fpn3.groups() == 1);
}

TEST_CASE("segmentation ConvModule initialises as mmcv") {
    Generator gen(3);
    SECTION("conv alone: kaiming normal on fan_out with the relu gain, zero bias") {
        seg::ConvModule<float> m(64, 128, {.kernel_size = 3, .padding = 1}, gen);
        REQUIRE(m.conv.bias.defined());
        CHECK_FALSE(m.has_norm());
        CHECK(state_names(m) == std::vector<std::string>{"conv.weight", "conv.bias"});
        const double expected = std::sqrt(2.0 / (128.0 * 9.0));  // fan_out = out * kh * kw
        CHECK(sample_std(m.conv.weight) == Approx(expected).epsilon(0.02));
        for (index_t i = 0; i < 128; ++i) CHECK(m.conv.bias(i) == 0.0f);
    }
    SECTION("with a norm: no bias (mmcv's bias='auto'), BN weight 1 and bias 0") {
        seg::ConvModule<float> m(8, 4, {.kernel_size = 3, .padding = 1, .norm = true, .relu = true}, gen);
        CHECK_FALSE(m.conv.bias.defined());
        REQUIRE(m.has_norm());
        for (index_t i = 0; i < 4; ++i) {
            CHECK(m.bn->weight(i) == 1.0f);
            CHECK(m.bn->bias(i) == 0.0f);
        }
        seg::ConvModule<float> forced(8, 4, {.norm = true, .bias = true}, gen);
        CHECK(forced.conv.bias.defined());
    }
    SECTION("ReLU last") {
        seg::ConvModule<float> m(2, 3, {.relu = true}, gen);
        nn::init::normal_(m.conv.bias, 0.0, 1.0, gen);
        const auto y = m(Tensor<float, 4>::randn({2, 2, 3, 3}, gen)).contiguous();
        bool some_positive = false;
        for (index_t i = 0; i < y.numel(); ++i) {
            CHECK(y.data()[i] >= 0.0f);
            some_positive = some_positive || y.data()[i] > 0.0f;
        }
        CHECK(some_positive);
    }
}

TEST_CASE("segmentation FPNHead conv_seg keeps PyTorch's default init") {
    Generator gen(4);
    seg::FPNHead<float> head({.num_classes = 150}, gen);
    // kaiming_uniform(a = sqrt 5) on fan_in 256: uniform on +-1/16, std 1/(16 sqrt 3); not normal(0.01).
    const auto w = head.conv_seg.weight.contiguous();
    float largest = 0;
    for (index_t i = 0; i < w.numel(); ++i) largest = std::max(largest, std::abs(w.data()[i]));
    CHECK(largest <= 1.0f / 16.0f);
    CHECK(largest > 0.9f / 16.0f);
    CHECK(sample_std(w) == Approx(1.0 / (16.0 * std::sqrt(3.0))).epsilon(0.03));
}

TEST_CASE("segmentation dropout2d drops whole channel maps") {
    Generator data(5), drop(6);
    auto x = Tensor<double, 4>::randn({4, 32, 3, 2}, data);
    const auto y = seg::dropout2d(x, 0.25, true, drop);
    int dropped = 0;
    for (index_t n = 0; n < 4; ++n)
        for (index_t c = 0; c < 32; ++c) {
            const bool zero = y(n, c, 0, 0) == 0.0;
            dropped += zero;
            for (index_t h = 0; h < 3; ++h)
                for (index_t w = 0; w < 2; ++w)
                    CHECK(y(n, c, h, w) == Approx(zero ? 0.0 : x(n, c, h, w) / 0.75).margin(1e-15));
        }
    CHECK(dropped > 10);   // about 32 of 128 maps
    CHECK(dropped < 60);
    SECTION("evaluation and p = 0 return the input itself; p = 1 gives zeros") {
        CHECK(seg::dropout2d(x, 0.25, false, drop).data() == x.data());
        CHECK(seg::dropout2d(x, 0.0, true, drop).data() == x.data());
        const auto z = seg::dropout2d(x, 1.0, true, drop).contiguous();
        for (index_t i = 0; i < z.numel(); ++i) CHECK(z.data()[i] == 0.0);
    }
    SECTION("the same seed gives the same maps") {
        Generator again(6);
        const auto y2 = seg::dropout2d(x, 0.25, true, again);
        CHECK(eval(sum(abs(y - y2))).item() == 0.0);
    }
}

TEST_CASE("segmentation FPNHead dropout acts in training only") {
    Generator gen(7), drop(8);
    seg::FPNHead<double> head({.in_channels = {4, 4}, .feature_strides = {4, 8}, .channels = 4, .num_classes = 3,
                               .dropout_ratio = 0.5}, gen);
    head.set_generator(drop);
    std::vector<Tensor<double, 4>> xs{Tensor<double, 4>::randn({2, 4, 4, 4}, gen),
                                      Tensor<double, 4>::randn({2, 4, 2, 2}, gen)};
    head.eval();
    const auto a = head(xs), b = head(xs);
    CHECK(eval(sum(abs(a - b))).item() == 0.0);
    head.train();
    const auto c = head(xs), d = head(xs);
    CHECK(eval(sum(abs(c - d))).item() > 0.0);  // other channel masks on each call
}

TEST_CASE("segmentation shapes from ViT taps through FPN to logits") {
    Generator gen(9);
    seg::ViTAdapters<float> adapters(16, 16, gen);
    seg::FPN<float> neck({16, 16, 16, 16}, 8, -1, gen);
    seg::FPNHead<float> head({.in_channels = {8, 8, 8, 8}, .channels = 8, .num_classes = 5}, gen);
    std::vector<Tensor<float, 4>> taps;
    for (int i = 0; i < 4; ++i) taps.push_back(Tensor<float, 4>::randn({2, 16, 4, 6}, gen));  // 64 x 96 image
    const auto pyramid = adapters(taps);
    CHECK(pyramid[0].shape() == Shape<4>{2, 16, 16, 24});
    CHECK(pyramid[1].shape() == Shape<4>{2, 16, 8, 12});
    CHECK(pyramid[2].shape() == Shape<4>{2, 16, 4, 6});
    CHECK(pyramid[3].shape() == Shape<4>{2, 16, 2, 3});
    const auto feats = neck(pyramid);
    REQUIRE(feats.size() == 4);
    CHECK(feats[3].shape() == Shape<4>{2, 8, 2, 3});
    const auto logits = head(feats);
    CHECK(logits.shape() == Shape<4>{2, 5, 16, 24});  // stride 4
}

TEST_CASE("segmentation modules report wrong inputs") {
    seg::FPN<float> fpn({4, 6}, 8);
    auto a = Tensor<float, 4>::randn({1, 4, 4, 4});
    auto wrong = Tensor<float, 4>::randn({1, 5, 2, 2});
    CHECK_THROWS_WITH(fpn({a, wrong}), Catch::Contains("FPN: level 1") && Catch::Contains("6 channels"));
    CHECK_THROWS_WITH(fpn({a}), Catch::Contains("expected 2 input levels"));
    CHECK_THROWS_WITH(seg::ViTAdapters<float>(8, 8), Catch::Contains("patch size 16"));
    CHECK_THROWS_WITH(seg::FPNHead<float>({.in_channels = {8, 8}}), Catch::Contains("same length"));
    seg::FPNHead<float> head({.in_channels = {4, 4}, .feature_strides = {4, 8}, .channels = 4, .num_classes = 2});
    CHECK_THROWS_WITH(head({a, wrong}), Catch::Contains("FPNHead: input 1"));
    seg::FPNHead<float> picky({.in_channels = {4, 4}, .in_index = {0, 2}, .feature_strides = {4, 8}, .channels = 4,
                               .num_classes = 2});
    CHECK_THROWS_WITH(picky({a, a}), Catch::Contains("in_index 2 is out of range for 2 inputs"));
}
