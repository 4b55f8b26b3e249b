// Finite-difference checks of the hand-written backward functions of softmax, log_softmax,
// layer_norm, group_norm, batch_norm, normalize, dropout and drop_path (tiny shapes, double).
#include <weft/ops/batch_norm.hpp>
#include <weft/ops/dropout.hpp>
#include <weft/ops/group_norm.hpp>
#include <weft/ops/layer_norm.hpp>
#include <weft/ops/normalize.hpp>
#include <weft/ops/softmax.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {
using T1 = Tensor<double, 1>;
using T2 = Tensor<double, 2>;
using T3 = Tensor<double, 3>;
using T4 = Tensor<double, 4>;
}  // namespace

TEST_CASE("gradcheck softmax over the last axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return softmax(x, -1); }, T2::randn({3, 5}));
}

TEST_CASE("gradcheck softmax over a middle axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T3& x) { return softmax(x, 1); }, T3::randn({2, 4, 3}));
}

TEST_CASE("gradcheck softmax of a transposed view", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return softmax(x.t(), -1); }, T2::randn({4, 3}));
}

TEST_CASE("gradcheck log_softmax over the last axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return log_softmax(x, 1); }, T2::randn({3, 6}));
}

TEST_CASE("gradcheck log_softmax over the first axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T3& x) { return log_softmax(x, 0); }, T3::randn({4, 2, 3}));
}

TEST_CASE("gradcheck layer_norm with weight and bias", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T3& x, const T1& w, const T1& b) { return layer_norm(x, w, b); },
                        T3::randn({2, 3, 5}), T1::randn({5}), T1::randn({5}));
}

TEST_CASE("gradcheck layer_norm without affine transform", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return layer_norm(x); }, T2::randn({4, 6}));
}

TEST_CASE("gradcheck group_norm on a 4-D input", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T4& x, const T1& w, const T1& b) { return group_norm(x, 2, w, b); },
                        T4::randn({2, 4, 2, 3}), T1::randn({4}), T1::randn({4}));
}

TEST_CASE("gradcheck group_norm on a 3-D input", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T3& x, const T1& w) { return group_norm(x, 3, w); }, T3::randn({2, 6, 4}),
                        T1::randn({6}));
}

TEST_CASE("gradcheck group_norm on a 2-D input without affine transform", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return group_norm(x, 2); }, T2::randn({3, 6}));
}

TEST_CASE("gradcheck batch_norm in training", "[gradcheck]") {
    // The running statistics change with every call but do not enter a training output.
    auto rm = T1::zeros({3}), rv = T1::ones({3});
    WEFT_CHECK_GRADIENT(
        [&](const T4& x, const T1& w, const T1& b) { return batch_norm(x, rm, rv, w, b, true); },
        T4::randn({3, 3, 2, 2}), T1::randn({3}), T1::randn({3}));
}

TEST_CASE("gradcheck batch_norm in training on a 2-D input", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x, const T1& w) { return batch_norm(x, {}, {}, w, {}, true); },
                        T2::randn({5, 3}), T1::randn({3}));
}

TEST_CASE("gradcheck batch_norm in evaluation", "[gradcheck]") {
    const auto rm = T1::randn({3});
    const auto rv = eval(T1::rand({3}) + 0.5);
    WEFT_CHECK_GRADIENT(
        [&](const T3& x, const T1& w, const T1& b) { return batch_norm(x, rm, rv, w, b, false); },
        T3::randn({2, 3, 4}), T1::randn({3}), T1::randn({3}));
}

TEST_CASE("gradcheck normalize over the last axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T2& x) { return normalize(x); }, T2::randn({3, 5}));
}

TEST_CASE("gradcheck normalize over a middle axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T3& x) { return normalize(x, 1); }, T3::randn({2, 4, 3}));
}

TEST_CASE("gradcheck dropout with a fixed seed", "[gradcheck]") {
    // A fresh generator per call: every evaluation draws the same mask.
    WEFT_CHECK_GRADIENT(
        [](const T3& x) {
            Generator gen(42);
            return dropout(x, 0.4, true, gen);
        },
        T3::randn({3, 4, 5}));
}

TEST_CASE("gradcheck drop_path", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const T3& x) {
            Generator gen(7);
            return drop_path(x, 0.5, true, gen);
        },
        T3::randn({6, 2, 3}));
}

TEST_CASE("gradcheck drop_path over a sequence-first tensor", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const T3& x) {
            Generator gen(11);
            return drop_path(x, 0.5, true, gen, 1);
        },
        T3::randn({3, 6, 2}));
}
