// loss::clip_contrastive against open_clip's ClipLoss (values from tests/reference/clip_contrastive.py,
// inline: the case is 3 pairs of 4 features), finite differences, and the logit-scale clamp.
#include <catch2/catch.hpp>

#include <cmath>

#include <weft/loss/clip_contrastive.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {

using M = Tensor<double, 2>;
using S = Tensor<double, 0>;

void check_values(const M& actual, const M& expected, double tol) {
    REQUIRE(actual.shape() == expected.shape());
    for (index_t i = 0; i < actual.size(0); ++i)
        for (index_t j = 0; j < actual.size(1); ++j) {
            INFO("element (" << i << ", " << j << ")");
            CHECK(actual(i, j) == Approx(expected(i, j)).margin(tol).epsilon(tol));
        }
}

}  // namespace

TEST_CASE("clip_contrastive equals open_clip's ClipLoss, gradients included", "[loss]") {
    auto img = M::from(
        {{1.541, -0.293, -2.179, 0.568}, {-1.085, -1.399, 0.403, 0.838}, {-0.719, -0.403, -0.597, 0.182}});
    auto txt = M::from({{-0.857, 1.101, -1.071, 0.123}, {-0.566, 0.373, -0.892, -1.509}, {0.37, 1.457, 0.94, 0.775}});
    auto scale = S::full({}, std::log(1 / 0.07));
    img.requires_grad_();
    txt.requires_grad_();
    scale.requires_grad_();
    auto l = loss::clip_contrastive(img, txt, scale);
    CHECK(l.item() == Approx(6.251802846097711).epsilon(1e-13));
    l.backward();
    check_values(img.grad(),
                 M::from({{0.7465184809463514, -0.1029527665330873, 0.5850419973737079, 0.16594431786054195},
                          {0.6355829688068453, 0.8096343573629187, 0.6746094501110531, 1.850141263378754},
                          {0.13340058094138962, 1.957675191032541, -2.829324982994275, -4.418949973431918}}),
                 1e-12);
    check_values(txt.grad(),
                 M::from({{-2.8473279450518203, -1.972588318424019, 0.3090598221478228, 0.5094533267947424},
                          {0.9110975177323212, 0.8930592996808641, -0.7615998165119204, 0.3292093837462565},
                          {1.7673381302844156, -0.3299800862494753, 0.21037499866305664, -0.4785633823006725}}),
                 1e-12);
    CHECK(scale.grad().item() == Approx(5.895594548726358).epsilon(1e-12));
}

TEST_CASE("clip_contrastive is symmetric and ln N for unrelated features at scale 1", "[loss]") {
    Generator gen(3);
    const auto a = M::randn({5, 7}, gen), b = M::randn({5, 7}, gen);
    const auto s = S::full({}, 0.7);
    // Swapping the modalities swaps the two cross-entropies: the mean stays.
    CHECK(loss::clip_contrastive(a, b, s).item() == Approx(loss::clip_contrastive(b, a, s).item()).epsilon(1e-14));
    // Identical features of one direction each: every logit equals s, so each CE is ln N.
    const auto same = M::ones({5, 7});
    CHECK(loss::clip_contrastive(same, same, S::full({}, 0.0)).item() == Approx(std::log(5.0)).epsilon(1e-14));
    // Normalisation: scaling a feature row changes nothing.
    auto a2 = a.clone();
    for (index_t j = 0; j < 7; ++j) a2(2, j) *= 3.5;
    CHECK(loss::clip_contrastive(a2, b, s).item() == Approx(loss::clip_contrastive(a, b, s).item()).epsilon(1e-13));
}

TEST_CASE("clip_contrastive rejects features of different shapes", "[loss]") {
    const auto s = S::full({}, 1.0);
    CHECK_THROWS_WITH(loss::clip_contrastive(M::ones({3, 4}), M::ones({2, 4}), s),
                      Catch::Contains("[3, 4]") && Catch::Contains("[2, 4]"));
    CHECK_THROWS_WITH(loss::clip_contrastive(M::ones({3, 4}), M::ones({3, 5}), s), Catch::Contains("[3, 5]"));
    CHECK_THROWS_WITH(loss::clip_contrastive(M::ones({0, 4}), M::ones({0, 4}), s), Catch::Contains("empty"));
}

TEST_CASE("clamp_logit_scale_ keeps the parameter in [0, ln max] in place, off the tape", "[loss]") {
    auto p = S::full({}, 5.0);
    p.requires_grad_();
    const auto alias = p.detach();  // the same storage: the clamp writes in place
    loss::clamp_logit_scale_(p);
    CHECK(p.item() == Approx(std::log(100.0)).epsilon(1e-15));
    CHECK(alias.item() == p.item());
    CHECK(p.requires_grad());
    CHECK(p.grad_slot() != nullptr);
    loss::clamp_logit_scale_(p, 50);
    CHECK(p.item() == Approx(std::log(50.0)).epsilon(1e-15));
    {
        NoGrad no_grad;
        p.detach() = -0.25;
    }
    loss::clamp_logit_scale_(p);
    CHECK(p.item() == 0.0);
    {
        NoGrad no_grad;
        p.detach() = 1.5;
    }
    loss::clamp_logit_scale_(p);
    CHECK(p.item() == 1.5);  // inside the range: unchanged
    // Still a leaf: gradient flows into it as before.
    auto l = loss::clip_contrastive(M::from({{1.0, 0.0}, {0.0, 1.0}}), M::from({{1.0, 0.2}, {0.3, 1.0}}), p);
    l.backward();
    CHECK(p.grad().defined());
    CHECK_THROWS_WITH(loss::clamp_logit_scale_(p, 0.5), Catch::Contains("0.5"));
}

TEST_CASE("gradcheck clip_contrastive: features and logit_scale", "[gradcheck]") {
    Generator gen(21);
    WEFT_CHECK_GRADIENT([](const M& i, const M& t, const S& s) { return loss::clip_contrastive(i, t, s); },
                        M::randn({4, 3}, gen), M::randn({4, 3}, gen), S::full({}, 1.2));
    // One pair: both cross-entropies are 0 whatever the inputs (a single class); the gradient is 0.
    WEFT_CHECK_GRADIENT([](const M& i, const M& t, const S& s) { return loss::clip_contrastive(i, t, s); },
                        M::randn({1, 3}, gen), M::randn({1, 3}, gen), S::full({}, 0.3));
    // A larger scale, where the softmax is sharp.
    WEFT_CHECK_GRADIENT([](const M& i, const M& t, const S& s) { return loss::clip_contrastive(i, t, s); },
                        M::randn({5, 6}, gen), M::randn({5, 6}, gen), S::full({}, std::log(30.0)));
}
