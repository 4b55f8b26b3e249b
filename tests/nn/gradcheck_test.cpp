// Finite-difference gradient checks of the composite nn layers, in double, with respect to the
// input and to parameters. A parameter is checked by rebinding the module's member to the
// tensor gradcheck perturbs (the module refers to its members, so forward sees it).
#include <limits>

#include <weft/nn.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {
constexpr double inf = std::numeric_limits<double>::infinity();
}

TEST_CASE("gradcheck multihead self-attention with masks", "[gradcheck]") {
    Generator gen(11);
    nn::MultiheadAttention<double> m(6, 2, {}, gen);
    nn::init::normal_(m.in_proj_bias, 0.0, 0.5, gen);
    auto x = Tensor<double, 3>::randn({4, 2, 6}, gen);  // [L, N, E]
    auto pad = Tensor<bool, 2>::from({{false, false, false, false}, {false, false, true, false}});
    auto bias = Tensor<double, 2>::randn({4, 4}, gen);
    bias(0, 3) = -inf;
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_, const auto& w, const auto& b, const auto& ow) {
            m.in_proj_weight = w;
            m.in_proj_bias = b;
            m.out_proj.weight = ow;
            return m(x_, x_, x_, pad, bias).output;
        },
        x, m.in_proj_weight, m.in_proj_bias, m.out_proj.weight);
}

TEST_CASE("gradcheck multihead cross-attention with other key and value widths", "[gradcheck]") {
    Generator gen(12);
    nn::MultiheadAttention<double> m(4, 2, {.kdim = 3, .vdim = 5, .batch_first = true}, gen);
    auto q = Tensor<double, 3>::randn({2, 3, 4}, gen);  // [N, L, E]
    auto k = Tensor<double, 3>::randn({2, 5, 3}, gen);  // [N, S, kdim]
    auto v = Tensor<double, 3>::randn({2, 5, 5}, gen);  // [N, S, vdim]
    WEFT_CHECK_GRADIENT(
        [&](const auto& q_, const auto& k_, const auto& v_, const auto& wk, const auto& wv) {
            m.k_proj_weight = wk;
            m.v_proj_weight = wv;
            return m(q_, k_, v_).output;
        },
        q, k, v, m.k_proj_weight, m.v_proj_weight);
}

TEST_CASE("gradcheck multihead attention weights", "[gradcheck]") {
    Generator gen(13);
    nn::MultiheadAttention<double> m(4, 2, {}, gen);
    auto q = Tensor<double, 3>::randn({3, 2, 4}, gen);
    auto mem = Tensor<double, 3>::randn({5, 2, 4}, gen);  // key and value: one [2E, E] product
    auto pad = Tensor<bool, 2>::from({{false, true, false, false, false}, {true, true, true, true, true}});
    WEFT_CHECK_GRADIENT([&](const auto& q_, const auto& mem_) { return m(q_, mem_, mem_, pad, {}, true).weights; }, q,
                        mem);
    WEFT_CHECK_GRADIENT([&](const auto& q_, const auto& mem_) { return m(q_, mem_, mem_, pad).output; }, q, mem);
}

TEST_CASE("gradcheck pre-norm transformer encoder layer", "[gradcheck]") {
    Generator gen(14);
    nn::TransformerEncoderLayer<double> m(4, 2, {.dim_feedforward = 6, .dropout = 0.0}, gen);
    nn::init::normal_(m.norm1.weight, 1.0, 0.3, gen);
    nn::init::normal_(m.norm2.bias, 0.0, 0.3, gen);
    auto x = Tensor<double, 3>::randn({3, 2, 4}, gen);
    auto causal = Tensor<double, 2>::from({{0, -inf, -inf}, {0, 0, -inf}, {0, 0, 0}});
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_, const auto& w_attn, const auto& w1, const auto& g1, const auto& b2) {
            m.self_attn.in_proj_weight = w_attn;
            m.linear1.weight = w1;
            m.norm1.weight = g1;
            m.norm2.bias = b2;
            return m(x_, causal);
        },
        x, m.self_attn.in_proj_weight, m.linear1.weight, m.norm1.weight, m.norm2.bias);
}

TEST_CASE("gradcheck post-norm transformer encoder layer with QuickGELU, batch first", "[gradcheck]") {
    Generator gen(15);
    nn::TransformerEncoderLayer<double> m(
        4, 1,
        {.dim_feedforward = 5, .dropout = 0.0, .activation = nn::Activation::quick_gelu, .batch_first = true,
         .norm_first = false},
        gen);
    auto x = Tensor<double, 3>::randn({2, 3, 4}, gen);  // [N, L, E]
    auto pad = Tensor<bool, 2>::from({{false, false, true}, {false, false, false}});
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_, const auto& w2) {
            m.linear2.weight = w2;
            return m(x_, {}, pad);
        },
        x, m.linear2.weight);
}

TEST_CASE("gradcheck pre-norm transformer decoder layer", "[gradcheck]") {
    Generator gen(16);
    nn::TransformerDecoderLayer<double> m(4, 2, {.dim_feedforward = 6, .dropout = 0.0}, gen);
    nn::init::normal_(m.multihead_attn.in_proj_bias, 0.0, 0.3, gen);
    auto tgt = Tensor<double, 3>::randn({3, 2, 4}, gen);
    auto memory = Tensor<double, 3>::randn({4, 2, 4}, gen);
    auto causal = Tensor<double, 2>::from({{0, -inf, -inf}, {0, 0, -inf}, {0, 0, 0}});
    auto memory_pad = Tensor<bool, 2>::from({{false, false, false, true}, {false, false, false, false}});
    WEFT_CHECK_GRADIENT(
        [&](const auto& tgt_, const auto& mem_, const auto& w_cross, const auto& b_cross, const auto& g3) {
            m.multihead_attn.in_proj_weight = w_cross;
            m.multihead_attn.in_proj_bias = b_cross;
            m.norm3.weight = g3;
            return m(tgt_, mem_, causal, {}, {}, memory_pad);
        },
        tgt, memory, m.multihead_attn.in_proj_weight, m.multihead_attn.in_proj_bias, m.norm3.weight);
}

TEST_CASE("gradcheck Sequential of Linear and GELU", "[gradcheck]") {
    Generator gen(17);
    nn::Sequential<double, 2> mlp;
    auto& fc1 = mlp.emplace_back<nn::Linear<double>>(3, 5, true, gen);
    mlp.emplace_back<nn::GELU<double>>();
    auto& fc2 = mlp.emplace_back<nn::Linear<double>>(5, 2, true, gen);
    mlp.emplace_back<nn::GELU<double>>(nn::GeluApproximation::tanh);
    auto x = Tensor<double, 2>::randn({4, 3}, gen);
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_, const auto& w1, const auto& b1, const auto& w2) {
            fc1.weight = w1;
            fc1.bias = b1;
            fc2.weight = w2;
            return mlp(x_);
        },
        x, fc1.weight, fc1.bias, fc2.weight);
}

TEST_CASE("gradcheck BatchNorm2d in training mode", "[gradcheck]") {
    Generator gen(18);
    nn::BatchNorm2d<double> m(2, 1e-5, std::nullopt);
    nn::init::normal_(m.weight, 1.0, 0.3, gen);
    auto x = Tensor<double, 4>::randn({3, 2, 2, 2}, gen);
    WEFT_CHECK_GRADIENT(
        [&](const auto& x_, const auto& w, const auto& b) {
            m.weight = w;
            m.bias = b;
            return m(x_);
        },
        x, m.weight, m.bias);
}
