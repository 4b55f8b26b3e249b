// Finite-difference gradient checks of the segmentation modules, in double, with respect to
// their inputs and to parameters (rebound to the tensors gradcheck perturbs: a module refers to
// its members, so forward sees them). Modules with several outputs are reduced to one scalar
// sum_i sum(out_i * w_i) with fixed random w_i.
#include <vector>

#include <weft/models/segmentation/fpn.hpp>
#include <weft/models/segmentation/fpn_head.hpp>
#include <weft/models/segmentation/vit_adapters.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {

// sum_i sum(outs[i] * weights[i]) as a rank-0 tensor.
Tensor<double, 0> weighted(const std::vector<Tensor<double, 4>>& outs, const std::vector<Tensor<double, 4>>& weights) {
    Tensor<double, 0> total = Tensor<double, 0>::zeros({});
    for (std::size_t i = 0; i < outs.size(); ++i) total = Tensor<double, 0>(total + sum(outs[i] * weights[i]));
    return total;
}

std::vector<Tensor<double, 4>> random_like(const std::vector<Tensor<double, 4>>& xs, Generator& gen) {
    std::vector<Tensor<double, 4>> ws;
    for (const auto& x : xs) ws.push_back(Tensor<double, 4>::randn(x.shape(), gen));
    return ws;
}

}  // namespace

TEST_CASE("gradcheck ConvModule conv BN ReLU in training", "[gradcheck]") {
    Generator gen(21);
    seg::ConvModule<double> m(3, 4, {.kernel_size = 3, .padding = 1, .norm = true, .relu = true}, gen);
    nn::init::normal_(m.bn->bias, 0.0, 0.5, gen);
    auto x = Tensor<double, 4>::randn({2, 3, 4, 3}, gen);
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_, const auto& w, const auto& g, const auto& b) {
            m.conv.weight = w;
            m.bn->weight = g;
            m.bn->bias = b;
            return m(x_);
        },
        x, m.conv.weight, m.bn->weight, m.bn->bias);
}

TEST_CASE("gradcheck ConvModule conv with bias", "[gradcheck]") {
    Generator gen(22);
    seg::ConvModule<double> m(3, 2, {.kernel_size = 3, .padding = 1}, gen);
    nn::init::normal_(m.conv.bias, 0.0, 0.5, gen);
    auto x = Tensor<double, 4>::randn({1, 3, 4, 5}, gen);
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_, const auto& w, const auto& b) {
            m.conv.weight = w;
            m.conv.bias = b;
            return m(x_);
        },
        x, m.conv.weight, m.conv.bias);
}

TEST_CASE("gradcheck FPN top-down pathway", "[gradcheck]") {
    Generator gen(23);
    seg::FPN<double> fpn({3, 4, 2}, 3, 4, gen);  // one extra pooled output
    auto a = Tensor<double, 4>::randn({1, 3, 5, 7}, gen);
    auto b = Tensor<double, 4>::randn({1, 4, 3, 4}, gen);
    auto c = Tensor<double, 4>::randn({1, 2, 2, 2}, gen);
    const auto ws = random_like(fpn({a, b, c}), gen);
    auto& top = fpn.lateral_convs[2].conv;
    WEFT_CHECK_GRADIENT(
        [&](const auto& a_, const auto& b_, const auto& c_, const auto& w, const auto& bias) {
            top.weight = w;
            top.bias = bias;
            return weighted(fpn({a_, b_, c_}), ws);
        },
        a, b, c, top.weight, top.bias);
}

TEST_CASE("gradcheck FPNHead in evaluation", "[gradcheck]") {
    Generator gen(24);
    seg::FPNHead<double> head({.in_channels = {2, 3, 2, 2}, .channels = 2, .num_classes = 3}, gen);
    head.eval();
    for (auto& p : head.parameters_matching(nn::name_contains(".bn.")))
        p.tensor.visit([&](auto& t) { nn::init::normal_(t, 0.5, 0.3, gen); });
    std::vector<Tensor<double, 4>> xs;
    const index_t sizes[4][2] = {{4, 6}, {2, 3}, {1, 2}, {1, 1}};
    for (int i = 0; i < 4; ++i)
        xs.push_back(Tensor<double, 4>::randn({2, head.options().in_channels[i], sizes[i][0], sizes[i][1]}, gen));
    auto& deep = head.scale_heads[3].at<seg::ConvModule<double>>(4).conv;  // the third block of level 3
    WEFT_CHECK_GRADIENT(
        [&](const auto& x0, const auto& x1, const auto& x2, const auto& x3, const auto& w, const auto& cls) {
            deep.weight = w;
            head.conv_seg.weight = cls;
            return head({x0, x1, x2, x3});
        },
        xs[0], xs[1], xs[2], xs[3], deep.weight, head.conv_seg.weight);
}

TEST_CASE("gradcheck FPNHead in training with dropout", "[gradcheck]") {
    seg::FPNHead<double> head({.in_channels = {2, 2}, .feature_strides = {4, 16}, .channels = 3, .num_classes = 2,
                               .dropout_ratio = 0.5});
    Generator data(25), drop(0);
    head.set_generator(drop);
    auto x0 = Tensor<double, 4>::randn({2, 2, 4, 4}, data);
    auto x1 = Tensor<double, 4>::randn({2, 2, 1, 1}, data);
    WEFT_CHECK_GRADIENT(
        [&](const auto& a, const auto& b) {
            drop = Generator(5);  // the same channel masks on every evaluation
            return head({a, b});
        },
        x0, x1);
}

TEST_CASE("gradcheck dropout2d", "[gradcheck]") {
    Generator data(26), drop(0);
    auto x = Tensor<double, 4>::randn({3, 4, 2, 3}, data);
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_) {
            drop = Generator(9);
            return seg::dropout2d(x_, 0.4, true, drop);
        },
        x);
}

TEST_CASE("gradcheck Upsample and MaxPool2d stages", "[gradcheck]") {
    Generator gen(27);
    seg::Upsample<double> up(2.0);
    seg::MaxPool2d<double> pool(2, 2);
    auto x = Tensor<double, 4>::randn({1, 2, 3, 5}, gen);
    WEFT_CHECK_GRADIENT([&](const auto& x_) { return pool(up(x_)); }, x);
}

TEST_CASE("gradcheck ViT adapters in training", "[gradcheck]") {
    Generator gen(28);
    seg::ViTAdapters<double> adapters(2, 16, gen);
    std::vector<Tensor<double, 4>> taps;
    for (int i = 0; i < 4; ++i) taps.push_back(Tensor<double, 4>::randn({2, 2, 2, 2}, gen));
    const auto ws = random_like(adapters(taps), gen);
    auto& gn = adapters.fpn1.at<nn::GroupNorm<double>>(0);
    auto& up1 = adapters.fpn1.at<nn::ConvTranspose2d<double>>(1);
    auto& up2 = adapters.fpn1.at<nn::ConvTranspose2d<double>>(4);
    WEFT_CHECK_GRADIENT(
        [&](const auto& t0, const auto& t1, const auto& t2, const auto& t3, const auto& g, const auto& w1,
            const auto& w2, const auto& g3) {
            gn.weight = g;
            up1.weight = w1;
            up2.weight = w2;
            adapters.fpn3.weight = g3;
            return weighted(adapters({t0, t1, t2, t3}), ws);
        },
        taps[0], taps[1], taps[2], taps[3], gn.weight, up1.weight, up2.weight, adapters.fpn3.weight);
}

TEST_CASE("gradcheck ViT adapters in evaluation", "[gradcheck]") {
    Generator gen(29);
    seg::ViTAdapters<double> adapters(2, 16, gen);
    adapters.eval();
    auto& bn = adapters.fpn1.at<nn::BatchNorm2d<double>>(2);
    nn::init::normal_(bn.running_mean, 0.0, 0.5, gen);
    nn::init::uniform_(bn.running_var, 0.5, 2.0, gen);
    std::vector<Tensor<double, 4>> taps;
    for (int i = 0; i < 4; ++i) taps.push_back(Tensor<double, 4>::randn({1, 2, 2, 4}, gen));
    const auto ws = random_like(adapters(taps), gen);
    WEFT_CHECK_GRADIENT(
        [&](const auto& t0, const auto& t1, const auto& t2, const auto& t3, const auto& g, const auto& b) {
            bn.weight = g;
            bn.bias = b;
            return weighted(adapters({t0, t1, t2, t3}), ws);
        },
        taps[0], taps[1], taps[2], taps[3], bn.weight, bn.bias);
}
