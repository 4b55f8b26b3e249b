// The segmentation modules against PyTorch (tests/reference/segmentation.py, which rebuilds
// mmseg's FPN and FPNHead with mmcv's ConvModule, and DenseCLIP's ViT adapters, under the same
// names): state_dict names and order, weights loaded by name through nn::load_state, outputs,
// gradients of the inputs and of every parameter, and BN running statistics after a training
// forward. Double precision, 1e-10.
#include <string>
#include <vector>

#include <weft/models/segmentation/fpn.hpp>
#include <weft/models/segmentation/fpn_head.hpp>
#include <weft/models/segmentation/vit_adapters.hpp>
#include <weft/nn/state_file.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

constexpr double tol = 1e-10;

// Loads "<name>.state.*" strictly; the names (and their order) must be PyTorch's exactly.
void load(nn::Module<double>& m, const std::string& name) { weft::test::load_fixture_state(m, "segmentation", name); }

std::vector<Tensor<double, 4>> inputs(const SafetensorsFile& f, const std::string& name, int n) {
    std::vector<Tensor<double, 4>> xs;
    for (int i = 0; i < n; ++i) xs.push_back(f.get<double, 4>(name + ".in." + std::to_string(i)).requires_grad_());
    return xs;
}

// Compares the outputs (named "<name>.out.<i>", or "<name>.out" for one) and runs the backward
// of sum_i sum(out_i * r_i).
void check_outputs_and_backward(const SafetensorsFile& f, const std::string& name,
                                const std::vector<Tensor<double, 4>>& outs, bool listed) {
    Tensor<double, 0> loss = Tensor<double, 0>::zeros({});
    for (std::size_t i = 0; i < outs.size(); ++i) {
        const std::string suffix = listed ? "." + std::to_string(i) : "";
        check_close(outs[i], f.get<double, 4>(name + ".out" + suffix), tol, tol, name + " out" + suffix);
        loss = Tensor<double, 0>(loss + sum(outs[i] * f.get<double, 4>(name + ".r" + suffix)));
    }
    loss.backward();
}

void check_grads(const SafetensorsFile& f, const std::string& name, const nn::Module<double>& m,
                 const std::vector<Tensor<double, 4>>& xs) {
    for (std::size_t i = 0; i < xs.size(); ++i) {
        REQUIRE(xs[i].grad().defined());
        check_close(xs[i].grad(), f.get<double, 4>(name + ".grad_in." + std::to_string(i)), tol, tol,
                    name + " grad input " + std::to_string(i));
    }
    weft::test::check_param_grads(m, "segmentation", name, tol);
}

// The BN running statistics and batch counters after a training forward.
void check_running_stats(const SafetensorsFile& f, const std::string& name, const nn::Module<double>& m) {
    int checked = 0;
    for (const auto& b : m.named_buffers())
        b.tensor.visit([&](const auto& t) {
            constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
            check_close(t, f.get<double, R>(name + ".after." + b.name), tol, tol, name + " after " + b.name);
            ++checked;
        });
    CHECK(checked > 0);
}

}  // namespace

TEST_CASE("segmentation FPN matches mmseg") {
    const auto f = weft::test::fixture("segmentation");
    seg::FPN<double> fpn({6, 8, 10, 4}, 6, 4);
    load(fpn, "fpn");
    auto xs = inputs(f, "fpn", 4);
    const auto outs = fpn(xs);
    REQUIRE(outs.size() == 4);
    check_outputs_and_backward(f, "fpn", outs, true);
    check_grads(f, "fpn", fpn, xs);
}

TEST_CASE("segmentation FPN with an extra pooled output matches mmseg") {
    const auto f = weft::test::fixture("segmentation");
    seg::FPN<double> fpn({4, 6}, 5, 3);
    load(fpn, "fpn_extra");
    auto xs = inputs(f, "fpn_extra", 2);
    const auto outs = fpn(xs);
    REQUIRE(outs.size() == 3);
    check_outputs_and_backward(f, "fpn_extra", outs, true);
    check_grads(f, "fpn_extra", fpn, xs);
}

TEST_CASE("segmentation FPNHead in evaluation matches mmseg") {
    const auto f = weft::test::fixture("segmentation");
    seg::FPNHead<double> head({.in_channels = {6, 4, 5, 4}, .channels = 4, .num_classes = 5});
    load(head, "head_eval");
    head.eval();
    auto xs = inputs(f, "head_eval", 4);
    const auto y = head(xs);
    CHECK(y.shape() == Shape<4>{2, 5, 8, 10});
    check_outputs_and_backward(f, "head_eval", {y}, false);
    check_grads(f, "head_eval", head, xs);
}

TEST_CASE("segmentation FPNHead in training uses batch statistics as mmseg") {
    const auto f = weft::test::fixture("segmentation");
    seg::FPNHead<double> head({.in_channels = {6, 4, 5, 4}, .channels = 4, .num_classes = 5, .dropout_ratio = 0.0});
    load(head, "head_train");
    REQUIRE(head.is_training());
    auto xs = inputs(f, "head_train", 4);
    const auto y = head(xs);
    check_outputs_and_backward(f, "head_train", {y}, false);
    check_grads(f, "head_train", head, xs);
    check_running_stats(f, "head_train", head);
}

TEST_CASE("segmentation ViT adapters match DenseCLIP") {
    const auto f = weft::test::fixture("segmentation");
    for (const std::string mode : {"eval", "train"}) {
        SECTION(mode) {
            const std::string name = "adapters_" + mode;
            seg::ViTAdapters<double> adapters(4);
            load(adapters, name);
            adapters.train(mode == "train");
            auto xs = inputs(f, name, 4);
            const auto outs = adapters(xs);
            REQUIRE(outs.size() == 4);
            CHECK(outs[0].shape() == Shape<4>{2, 4, 8, 12});
            CHECK(outs[3].shape() == Shape<4>{2, 4, 1, 1});
            check_outputs_and_backward(f, name, outs, true);
            check_grads(f, name, adapters, xs);
            if (mode == "train") check_running_stats(f, name, adapters);
        }
    }
}
