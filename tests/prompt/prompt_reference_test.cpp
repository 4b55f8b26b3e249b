// DenseCLIP's prompting modules and losses against tests/reference/denseclip_prompt.py (a
// PyTorch rendering of DenseCLIP's models.py / denseclip.py and mmseg 0.19's loss path):
// forward values and gradients with respect to inputs and every parameter, in double.
#include <filesystem>
#include <set>

#include <weft/loss.hpp>
#include <weft/models/clip/text_context_encoder.hpp>
#include <weft/prompt.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

constexpr double tol = 1e-10;

// Copies "<prefix>.p.<name>" into each parameter of `m`.
template <class M>
void load_params(M& m, const SafetensorsFile& f, const std::string& prefix) {
    NoGrad no_grad;
    for (auto& p : m.named_parameters())
        p.tensor.visit([&](auto& t) {
            constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
            t.copy_from(f.get<double, R>(prefix + ".p." + p.name));
        });
}

// Compares each parameter's gradient with "<prefix>.grad_p.<name>".
template <class M>
void check_param_grads(M& m, const SafetensorsFile& f, const std::string& prefix) {
    for (auto& p : m.named_parameters())
        p.tensor.visit([&](auto& t) {
            constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
            REQUIRE(t.grad().defined());
            check_close(t.grad(), f.get<double, R>(prefix + ".grad_p." + p.name), tol, tol, prefix + " grad " + p.name);
        });
}

}  // namespace

TEST_CASE("ContextDecoder matches DenseCLIP forward and gradients") {
    auto f = weft::test::fixture("denseclip_prompt");
    prompt::ContextDecoder<double> dec(
        {.transformer_width = 12, .transformer_heads = 2, .transformer_layers = 2, .visual_dim = 24, .dropout = 0.1});
    dec.eval();
    load_params(dec, f, "decoder");
    auto text = f.get<double, 3>("decoder.in.text").requires_grad_();
    auto visual = f.get<double, 3>("decoder.in.visual").requires_grad_();
    auto y = dec(text, visual);
    check_close(y, f.get<double, 3>("decoder.out"), tol, tol, "decoder forward");
    sum(y * f.get<double, 3>("decoder.r")).backward();
    check_close(text.grad(), f.get<double, 3>("decoder.grad_in.text"), tol, tol, "decoder grad text");
    check_close(visual.grad(), f.get<double, 3>("decoder.grad_in.visual"), tol, tol, "decoder grad visual");
    check_param_grads(dec, f, "decoder");
}

TEST_CASE("ContextDecoder state names are DenseCLIP's") {
    prompt::ContextDecoder<float> dec({.transformer_width = 8, .transformer_heads = 2, .transformer_layers = 1,
                                       .visual_dim = 16});
    std::set<std::string> names;
    for (const auto& n : dec.state_dict().names()) names.insert(n);
    const std::set<std::string> expected = {
        "memory_proj.0.weight", "memory_proj.0.bias", "memory_proj.1.weight", "memory_proj.1.bias",
        "memory_proj.2.weight", "memory_proj.2.bias", "text_proj.0.weight", "text_proj.0.bias",
        "text_proj.1.weight", "text_proj.1.bias", "decoder.0.self_attn.q_proj.weight",
        "decoder.0.self_attn.k_proj.weight", "decoder.0.self_attn.v_proj.weight", "decoder.0.self_attn.proj.weight",
        "decoder.0.self_attn.proj.bias", "decoder.0.cross_attn.q_proj.weight", "decoder.0.cross_attn.k_proj.weight",
        "decoder.0.cross_attn.v_proj.weight", "decoder.0.cross_attn.proj.weight", "decoder.0.cross_attn.proj.bias",
        "decoder.0.norm1.weight", "decoder.0.norm1.bias", "decoder.0.norm2.weight", "decoder.0.norm2.bias",
        "decoder.0.norm3.weight", "decoder.0.norm3.bias", "decoder.0.mlp.0.weight", "decoder.0.mlp.0.bias",
        "decoder.0.mlp.3.weight", "decoder.0.mlp.3.bias", "out_proj.0.weight", "out_proj.0.bias",
        "out_proj.1.weight", "out_proj.1.bias"};
    CHECK(names == expected);
}

TEST_CASE("ContextDecoder init is DenseCLIP's") {
    Generator gen(7);
    prompt::ContextDecoder<double> dec({.visual_dim = 64}, gen);  // width 256, 4 heads, 3 layers
    double sq = 0;
    index_t n = 0, out_of_bounds = 0, bad_norm_weights = 0, nonzero_biases = 0;
    for (auto& p : dec.named_parameters())
        p.tensor.visit([&](auto& t) {
            constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
            const auto c = t.contiguous();
            const bool weight = p.name.ends_with("weight");
            for (index_t i = 0; i < c.numel(); ++i) {
                const double v = c.data()[i];
                if constexpr (R == 2) {  // Linear weights
                    sq += v * v;
                    ++n;
                    out_of_bounds += std::abs(v) > 2.0;
                } else if (weight) {     // LayerNorm weights
                    bad_norm_weights += v != 1.0;
                } else {                 // every bias
                    nonzero_biases += v != 0.0;
                }
            }
        });
    CHECK(out_of_bounds == 0);
    CHECK(bad_norm_weights == 0);
    CHECK(nonzero_biases == 0);
    CHECK(n > 500000);
    CHECK(std::sqrt(sq / double(n)) == Approx(0.02).epsilon(0.01));
}

TEST_CASE("TextContextEncoder matches DenseCLIP forward and gradients") {
    auto f = weft::test::fixture("denseclip_prompt");
    clip::TextContextEncoder<double> enc(
        {.context_length = 13, .vocab_size = 32, .width = 16, .heads = 2, .layers = 1, .embed_dim = 24});
    load_params(enc, f, "encoder");
    const auto tokens = f.get<std::int64_t, 2>("encoder.tokens");
    auto contexts = f.get<double, 3>("encoder.in.contexts").requires_grad_();
    auto y = enc(tokens, contexts);  // per-image contexts: [2, 8, 16] -> [2, 5, 24]
    check_close(y, f.get<double, 3>("encoder.out"), tol, tol, "encoder forward");
    sum(y * f.get<double, 3>("encoder.r")).backward();
    check_close(contexts.grad(), f.get<double, 3>("encoder.grad_in.contexts"), tol, tol, "encoder grad contexts");
    check_param_grads(enc, f, "encoder");

    NoGrad no_grad;  // DenseCLIP's single context set [1, 8, 16]
    check_close(enc(tokens, contexts.narrow(0, 0, 1)), f.get<double, 3>("encoder.out_single"), tol, tol,
                "encoder single context set");
}

TEST_CASE("text update and score map match DenseCLIP") {
    auto f = weft::test::fixture("denseclip_prompt");
    auto text = f.get<double, 3>("score.text").requires_grad_();
    auto gamma = f.get<double, 1>("score.gamma").requires_grad_();
    auto diff = f.get<double, 3>("score.diff").requires_grad_();
    auto visual = f.get<double, 4>("score.visual").requires_grad_();
    auto updated = prompt::update_text(text, gamma, diff);
    check_close(updated, f.get<double, 3>("score.updated"), tol, tol, "t + gamma * diff");
    auto s = prompt::score_map(visual, updated);
    check_close(s, f.get<double, 4>("score.out"), tol, tol, "score map");
    sum(s * f.get<double, 4>("score.r")).backward();
    check_close(text.grad(), f.get<double, 3>("score.grad_text"), tol, tol, "score grad text");
    check_close(gamma.grad(), f.get<double, 1>("score.grad_gamma"), tol, tol, "score grad gamma");
    check_close(diff.grad(), f.get<double, 3>("score.grad_diff"), tol, tol, "score grad diff");
    check_close(visual.grad(), f.get<double, 4>("score.grad_visual"), tol, tol, "score grad visual");
}

TEST_CASE("pixel-text matching loss matches mmseg 0.19") {
    auto f = weft::test::fixture("denseclip_prompt");
    auto score = f.get<double, 4>("ptm.score").requires_grad_();
    const auto labels = f.get<std::int64_t, 3>("ptm.labels");
    auto l = loss::pixel_text_matching_loss(score, labels);
    check_close(l, f.get<double, 0>("ptm.loss"), tol, tol, "pixel-text matching loss");
    l.backward();
    check_close(score.grad(), f.get<double, 4>("ptm.grad"), tol, tol, "pixel-text matching grad");
}

TEST_CASE("decode loss matches mmseg 0.19") {
    auto f = weft::test::fixture("denseclip_prompt");
    auto logits = f.get<double, 4>("decode.logits").requires_grad_();
    const auto labels = f.get<std::int64_t, 3>("decode.labels");
    auto l = loss::decode_loss(logits, labels);
    check_close(l, f.get<double, 0>("decode.loss"), tol, tol, "decode loss");
    l.backward();
    check_close(logits.grad(), f.get<double, 4>("decode.grad"), tol, tol, "decode loss grad");
}

TEST_CASE("TextContextEncoder loads CLIP's text tower with 13 positions") {
    const auto path = std::filesystem::path(WEFT_SOURCE_DIR) / "tests/reference/data/clip_vit_tiny.pt";
    const auto ck = Checkpoint::open(path);
    const auto config = clip::text_context_encoder_config(ck, 13);
    CHECK(config.context_length == 13);
    CHECK(config.vocab_size == 256);
    CHECK(config.width == 64);
    CHECK(config.heads == 1);
    clip::TextContextEncoder<double> enc(config);
    clip::load_text_context_encoder(enc, ck);
    check_close(enc.positional_embedding, ck.get<double, 2>("positional_embedding").narrow(0, 0, 13), 0, 0,
                "positional_embedding = CLIP's first 13 rows");
    check_close(enc.text_projection, ck.get<double, 2>("text_projection"), 0, 0, "text_projection");

    auto f = weft::test::fixture("denseclip_prompt");
    NoGrad no_grad;
    check_close(enc(f.get<std::int64_t, 2>("tiny.tokens"), f.get<double, 3>("tiny.contexts")),
                f.get<double, 3>("tiny.out"), tol, tol, "loaded encoder forward");

    // A context longer than the checkpoint's positional rows cannot be loaded, and nothing changes.
    auto c20 = config;
    c20.context_length = 20;
    clip::TextContextEncoder<double> too_long(c20);
    const auto before = too_long.text_projection.clone();
    CHECK_THROWS_WITH(clip::load_text_context_encoder(too_long, ck),
                      Catch::Contains("positional_embedding") && Catch::Contains("nothing was loaded"));
    check_close(too_long.text_projection, before, 0, 0, "unchanged after a failed load");
}

TEST_CASE("learnable contexts and gamma have DenseCLIP's init") {
    Generator gen(3);
    prompt::LearnableContext<double> ctx(8, 512, gen);
    CHECK(ctx().shape() == Shape<3>{1, 8, 512});
    CHECK(ctx.state_dict().names() == std::vector<std::string>{"contexts"});
    double sq = 0, lo = 0, hi = 0;
    const auto c = ctx.contexts.contiguous();
    for (index_t i = 0; i < c.numel(); ++i) {
        sq += c.data()[i] * c.data()[i];
        lo = std::min(lo, c.data()[i]);
        hi = std::max(hi, c.data()[i]);
    }
    CHECK(lo >= -2.0);
    CHECK(hi <= 2.0);
    CHECK(lo < -1.9);  // the truncation bound is ±2, not ±2σ of something smaller
    CHECK(std::sqrt(sq / double(c.numel())) == Approx(0.8796).epsilon(0.03));  // std of N(0,1) cut at ±2
    const auto g = prompt::make_gamma<double>(1024);
    CHECK(g.shape() == Shape<1>{1024});
    CHECK(g(0) == 1e-4);
    CHECK(g(1023) == 1e-4);
}

TEST_CASE("pre-model prompt gives one context set per image for the text encoder") {
    Generator gen(5);
    prompt::PreModelPrompt<double> pre({.n_ctx = 3, .visual_dim = 12, .text_width = 8, .transformer_width = 8,
                                        .transformer_heads = 2, .transformer_layers = 1},
                                       gen);
    pre.eval();
    clip::TextContextEncoder<double> enc(
        {.context_length = 7, .vocab_size = 20, .width = 8, .heads = 2, .layers = 1, .embed_dim = 12}, gen);
    const auto visual = Tensor<double, 3>::randn({2, 5, 12}, gen);
    const auto tokens = Tensor<std::int64_t, 2>::from({{18, 3, 19, 0}, {18, 4, 5, 19}});
    const auto contexts = pre(visual);
    REQUIRE(contexts.shape() == Shape<3>{2, 3, 8});
    const auto text = enc(tokens, contexts);
    REQUIRE(text.shape() == Shape<3>{2, 2, 12});
    // Image b's text equals the encoder run on image b's contexts alone.
    for (index_t b = 0; b < 2; ++b) {
        const auto one = enc(tokens, pre(Tensor<double, 3>(visual.narrow(0, b, 1).contiguous())));
        check_close(Tensor<double, 3>(text.narrow(0, b, 1).contiguous()), one, 1e-12, 1e-12, "per-image text");
    }
    std::set<std::string> names;
    for (const auto& n : pre.state_dict().names()) names.insert(n);
    CHECK(names.count("queries") == 1);
    CHECK(names.count("decoder.memory_proj.1.weight") == 1);
    CHECK(names.count("decoder.out_proj.1.weight") == 1);
    CHECK(pre.decoder.out_proj.named_parameters().back().tensor.shape() == std::vector<index_t>{8});
}
