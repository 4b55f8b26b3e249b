// Finite-difference checks of the DenseCLIP prompting modules and losses (double, small shapes).
#include <weft/loss.hpp>
#include <weft/models/clip/text_context_encoder.hpp>
#include <weft/prompt.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {
using T3 = Tensor<double, 3>;
using T4 = Tensor<double, 4>;
}  // namespace

TEST_CASE("gradcheck ContextAttention self and cross", "[gradcheck]") {
    Generator gen(11);
    prompt::ContextAttention<double> att(6, 2, 0.0, gen);
    WEFT_CHECK_GRADIENT([&](const T3& q, const T3& kv) { return att(q, kv, kv); }, T3::randn({2, 3, 6}, gen),
                        T3::randn({2, 4, 6}, gen));
    WEFT_CHECK_GRADIENT([&](const T3& x) { return att(x, x, x); }, T3::randn({2, 3, 6}, gen));
}

TEST_CASE("gradcheck ContextDecoderLayer", "[gradcheck]") {
    Generator gen(12);
    prompt::ContextDecoderLayer<double> layer(6, 2, 0.1, gen);
    layer.eval();
    WEFT_CHECK_GRADIENT([&](const T3& x, const T3& mem) { return layer(x, mem); }, T3::randn({2, 3, 6}, gen),
                        T3::randn({2, 4, 6}, gen));
}

TEST_CASE("gradcheck ContextDecoder", "[gradcheck]") {
    Generator gen(13);
    prompt::ContextDecoder<double> dec(
        {.transformer_width = 4, .transformer_heads = 2, .transformer_layers = 2, .visual_dim = 8}, gen);
    dec.eval();
    // DenseCLIP's 0.02 init leaves the text path nearly flat; larger weights test every path.
    {
        NoGrad no_grad;
        for (auto& p : dec.named_parameters())
            p.tensor.visit([&](auto& t) { t.copy_from(eval(t + std::remove_cvref_t<decltype(t)>::randn(t.shape(), gen) * 0.3)); });
    }
    WEFT_CHECK_GRADIENT([&](const T3& text, const T3& visual) { return dec(text, visual); }, T3::randn({2, 3, 8}, gen),
                        T3::randn({2, 4, 8}, gen));
}

TEST_CASE("gradcheck TextContextEncoder contexts", "[gradcheck]") {
    Generator gen(14);
    clip::TextContextEncoder<double> enc(
        {.context_length = 7, .vocab_size = 16, .width = 8, .heads = 2, .layers = 1, .embed_dim = 6}, gen);
    const auto tokens = Tensor<std::int64_t, 2>::from({{14, 3, 15, 0}, {14, 4, 5, 15}});
    WEFT_CHECK_GRADIENT([&](const T3& contexts) { return enc(tokens, contexts); }, T3::randn({2, 3, 8}, gen));
    WEFT_CHECK_GRADIENT([&](const T3& contexts) { return enc(tokens, contexts); }, T3::randn({1, 3, 8}, gen));
}

TEST_CASE("gradcheck update_text", "[gradcheck]") {
    Generator gen(15);
    WEFT_CHECK_GRADIENT([](const T3& t, const Tensor<double, 1>& g, const T3& d) { return prompt::update_text(t, g, d); },
                        T3::randn({2, 3, 5}, gen), Tensor<double, 1>::randn({5}, gen), T3::randn({2, 3, 5}, gen));
}

TEST_CASE("gradcheck score_map", "[gradcheck]") {
    Generator gen(16);
    WEFT_CHECK_GRADIENT([](const T4& v, const T3& t) { return prompt::score_map(v, t); }, T4::randn({2, 5, 2, 3}, gen),
                        T3::randn({2, 3, 5}, gen));
}

TEST_CASE("gradcheck visual_context", "[gradcheck]") {
    Generator gen(17);
    WEFT_CHECK_GRADIENT([](const Tensor<double, 2>& g, const T4& v) { return prompt::visual_context(g, v); },
                        Tensor<double, 2>::randn({2, 4}, gen), T4::randn({2, 4, 2, 3}, gen));
}

TEST_CASE("gradcheck PreModelPrompt", "[gradcheck]") {
    Generator gen(18);
    prompt::PreModelPrompt<double> pre({.n_ctx = 2, .visual_dim = 6, .text_width = 4, .transformer_width = 4,
                                        .transformer_heads = 2, .transformer_layers = 1},
                                       gen);
    pre.eval();
    WEFT_CHECK_GRADIENT([&](const T3& visual) { return pre(visual); }, T3::randn({2, 3, 6}, gen));
}

TEST_CASE("gradcheck pixel_text_matching_loss", "[gradcheck]") {
    Generator gen(19);
    auto labels = Tensor<std::int64_t, 3>::randint(0, 4, {2, 5, 4}, gen);
    labels(0, 1, 2) = 255;
    labels(1, 4, 0) = 255;
    WEFT_CHECK_GRADIENT([&](const T4& s) { return loss::pixel_text_matching_loss(s, labels); },
                        eval(T4::rand({2, 4, 2, 3}, gen) * 2.0 - 1.0));
}

TEST_CASE("gradcheck decode_loss", "[gradcheck]") {
    Generator gen(20);
    auto labels = Tensor<std::int64_t, 3>::randint(0, 4, {2, 6, 5}, gen);
    labels(0, 0, 0) = 255;
    WEFT_CHECK_GRADIENT([&](const T4& x) { return loss::decode_loss(x, labels); }, T4::randn({2, 4, 3, 2}, gen));
}
