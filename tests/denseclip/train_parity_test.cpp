// DenseCLIP training parity: the first 10 iterations of the tiny model in tests/denseclip/parity.json
// give PyTorch's losses (tests/reference/denseclip_train.py) from the same initial weights and batches.
// The whole path is exercised: the dense ViT with its adapters, the text encoder with learnable
// contexts, the context decoder and gamma update, the score map into the neck, the FPN head, both
// losses, backward through all of it, AdamW with mmcv's parameter groups, and the poly schedule
// with its warmup and min_lr floor (which moves the lr-0 text encoder).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "../../examples/denseclip/step.hpp"
#include "support/fixture.hpp"

namespace {

using namespace weft;
using weft::test::check_close;
using weft::test::fixture;

constexpr int kIters = 10;  // as many iterations as the fixture recorded
const std::string kFixture = "denseclip_train";

denseclip::DenseClipConfig parity_config() {
    return denseclip::read_config(std::string(WEFT_SOURCE_DIR) + "/tests/denseclip/parity.json");
}

// The model of the fixture, its initial state loaded, and the fixture's batches.
template <Element T>
struct Run {
    SafetensorsFile ref = fixture(kFixture);
    denseclip::DenseClipConfig cfg = parity_config();
    denseclip::DenseClip<T> model{cfg, ref.get<std::int64_t, 2>("tokens")};
    Tensor<std::uint8_t, 5> images = ref.get<std::uint8_t, 5>("images");  // [N, B, 3, H, W]
    Tensor<std::uint8_t, 4> labels = ref.get<std::uint8_t, 4>("labels");  // [N, B, H, W]

    Run() { load_init(); }

    void load_init() {
        if constexpr (std::same_as<T, double>) {
            // Also checks that weft's state names, in order, are PyTorch's state_dict keys.
            test::load_fixture_state(model, kFixture, "init");
        } else {
            const auto report = nn::load_state(
                model, std::string(WEFT_SOURCE_DIR) + "/tests/reference/data/" + kFixture + ".safetensors", true,
                "init.state.");
            REQUIRE(report.ok());
        }
    }

    // The model's input: (x - 128) / 64, as the reference maps it.
    Tensor<T, 4> batch_images(index_t t) const { return eval((cast<T>(images.select(0, t)) - T(128)) / T(64)); }
    Tensor<std::int64_t, 3> batch_labels(index_t t) const { return eval(cast<std::int64_t>(labels.select(0, t))); }

    template <int R>
    Tensor<T, R> state(const std::string& name) {
        return model.state_dict().template get<R>(name);
    }
};

double relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

// The current lr of the group holding parameter `name`.
template <Element T>
double group_lr(const optim::AdamW<T>& opt, const std::string& name) {
    for (const auto& g : opt.groups())
        for (const auto& p : g.params)
            if (p.name == name) return g.lr;
    FAIL("no optimizer group holds " << name);
    return 0;
}

// Runs the 10 iterations and compares losses and learning rates; returns the worst relative
// loss difference.
template <Element T>
double train_and_compare(Run<T>& run, optim::AdamW<T>& opt, double tol) {
    const auto sched = denseclip::make_schedule(run.cfg.train);
    const auto total = run.ref.template get<double, 1>("loss.total");
    const auto decode = run.ref.template get<double, 1>("loss.decode");
    const auto aux = run.ref.template get<double, 1>("loss.aux");
    // One parameter of each group, with the fixture's lr per iteration for that group.
    const std::pair<const char*, const char*> groups[] = {{"lr.base", "gamma"},
                                                          {"lr.backbone", "backbone.conv1.weight"},
                                                          {"lr.norm", "context_decoder.decoder.0.norm1.weight"},
                                                          {"lr.text_encoder", "text_encoder.text_projection"}};
    double worst = 0;
    for (index_t t = 0; t < kIters; ++t) {
        const auto terms = denseclip::train_step(run.model, opt, sched, t, run.batch_images(t), run.batch_labels(t));
        INFO("iteration " << t << ": weft " << terms.total << " (" << terms.decode << " + " << terms.aux
                          << "), PyTorch " << total(t) << " (" << decode(t) << " + " << aux(t) << ")");
        CHECK(relative(terms.total, total(t)) <= tol);
        CHECK(relative(terms.decode, decode(t)) <= tol);
        CHECK(relative(terms.aux, aux(t)) <= tol);
        worst = std::max({worst, relative(terms.total, total(t)), relative(terms.decode, decode(t)),
                          relative(terms.aux, aux(t))});
        for (const auto& [key, param] : groups) {
            if (std::string(param) == "text_encoder.text_projection" && !run.model.text_encoder.text_projection.requires_grad())
                continue;  // frozen: not in any group
            const double expected = run.ref.template get<double, 1>(key)(t);
            INFO(key << " at iteration " << t);
            CHECK(std::abs(group_lr(opt, param) - expected) <= 1e-15 * std::abs(expected) + 1e-300);
        }
    }
    return worst;
}

}  // namespace

TEST_CASE("denseclip parity config is the complete tiny model", "[denseclip]") {
    const auto cfg = parity_config();
    REQUIRE(cfg.is_vit());
    CHECK(cfg.num_classes() == 6);
    CHECK(cfg.neck_in_channels == std::vector<index_t>{16, 16, 22, 16});
    // Determinism: no dropout and no drop path, so both runs draw nothing.
    CHECK(cfg.context_decoder.dropout == 0);
    CHECK(cfg.head.dropout_ratio == 0);
    CHECK(std::get<denseclip::ViTBackboneConfig>(cfg.backbone).vit.drop_path_rate == 0);
    CHECK(cfg.train.iters >= kIters);
}

TEST_CASE("denseclip first 10 training losses equal PyTorch in double", "[denseclip]") {
    Run<double> run;
    const auto& ref = run.ref;
    // Every tensor of the fixture's initial state is one of weft's (load_fixture_state checks the
    // other direction and the order).
    const auto names = ref.names();
    REQUIRE(std::count_if(names.begin(), names.end(), [](const std::string& k) { return k.starts_with("init.state."); }) ==
            std::ptrdiff_t(run.model.named_state().size()));

    // Iteration 0's intermediates, from the initial state (training mode: batch statistics).
    {
        NoGrad no_grad;
        check_close(run.model.text_embeddings(), ref.get<double, 3>("step0.text"), 1e-12, 1e-10, "text embeddings");
        const auto out = run.model(run.batch_images(0));
        check_close(out.score_map, ref.get<double, 4>("step0.score_map"), 1e-12, 1e-10, "score map");
        check_close(out.logits, ref.get<double, 4>("step0.logits"), 1e-12, 1e-10, "logits");
    }
    run.load_init();  // that forward moved the BatchNorm running statistics: start afresh

    auto opt = denseclip::make_optimizer(run.model, run.cfg.train);
    const auto init_projection = run.state<2>("text_encoder.text_projection").clone();
    // Measured: 1.1e-15 relative (rounding only); the bound leaves room for other BLAS kernels.
    const double worst = train_and_compare(run, opt, 1e-11);
    INFO("worst relative loss difference " << worst);
    CHECK(worst <= 1e-11);

    check_close(run.state<1>("gamma"), ref.get<double, 1>("final.gamma"), 1e-12, 1e-8, "gamma");
    check_close(run.state<3>("contexts"), ref.get<double, 3>("final.contexts"), 1e-12, 1e-8, "contexts");
    check_close(run.state<4>("decode_head.conv_seg.weight"), ref.get<double, 4>("final.decode_head.conv_seg.weight"),
                1e-12, 1e-8, "conv_seg weight");
    check_close(run.state<1>("backbone.fpn1.2.running_var"), ref.get<double, 1>("final.backbone.fpn1.2.running_var"),
                1e-12, 1e-8, "fpn1 BatchNorm running_var");
    // The text encoder has lr multiplier 0, yet mmcv's min_lr floor moves it (by ~1e-6): the
    // difference from the initial value must match PyTorch's to far better than its size.
    const auto projection = run.state<2>("text_encoder.text_projection");
    const auto expected = ref.get<double, 2>("final.text_encoder.text_projection");
    check_close(projection, expected, 1e-12, 1e-10, "text_projection");
    CHECK(max(abs(projection - init_projection)).item() > 1e-7);
    check_close(eval(projection - init_projection), eval(expected - init_projection), 1e-11, 1e-4,
                "text_projection update");
}

TEST_CASE("denseclip first 10 training losses equal PyTorch in float", "[denseclip]") {
    Run<float> run;
    auto opt = denseclip::make_optimizer(run.model, run.cfg.train);
    // The same fixture in float (initial values are float32 numbers): measured 3.8e-7 relative.
    const double worst = train_and_compare(run, opt, 1e-5);
    INFO("worst relative loss difference (float) " << worst);
    CHECK(worst <= 1e-5);
    check_close(run.state<1>("gamma"), run.ref.get<double, 1>("final.gamma"), 1e-5, 1e-3, "gamma (float)");
}

TEST_CASE("denseclip freeze_text_encoder keeps the text encoder while contexts train", "[denseclip]") {
    Run<double> run;
    denseclip::freeze_text_encoder(run.model);
    auto opt = denseclip::make_optimizer(run.model, run.cfg.train);
    for (const auto& g : opt.groups())
        for (const auto& p : g.params) CHECK_FALSE(p.name.starts_with("text_encoder."));
    const auto projection = run.state<2>("text_encoder.text_projection").clone();
    const auto token_embedding = run.state<2>("text_encoder.token_embedding.weight").clone();
    const auto contexts = run.state<3>("contexts").clone();
    const auto sched = denseclip::make_schedule(run.cfg.train);
    for (index_t t = 0; t < 3; ++t)
        denseclip::train_step(run.model, opt, sched, t, run.batch_images(t), run.batch_labels(t));
    CHECK(max(abs(run.state<2>("text_encoder.text_projection") - projection)).item() == 0);
    CHECK(max(abs(run.state<2>("text_encoder.token_embedding.weight") - token_embedding)).item() == 0);
    CHECK(max(abs(run.state<3>("contexts") - contexts)).item() > 1e-6);  // the gradient flows through the encoder
}

TEST_CASE("denseclip loads a released-style mmcv .pth by name", "[denseclip]") {
    // tests/reference/data/denseclip_mmcv.pth: torch.save of {"meta", "state_dict", "optimizer"},
    // the layout of DenseCLIP's released checkpoints, holding the fixture's initial state.
    Run<float> expected;
    const auto cfg = parity_config();
    denseclip::DenseClip<float> model(cfg, expected.ref.get<std::int64_t, 2>("tokens"));
    const auto ck = Checkpoint::open(std::string(WEFT_SOURCE_DIR) + "/tests/reference/data/denseclip_mmcv.pth");
    denseclip::load_denseclip(model, ck);
    const auto want = expected.model.named_state();
    const auto got = model.named_state();
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        INFO(got[i].name);
        got[i].tensor.visit([&](const auto& a) {
            want[i].tensor.visit([&](const auto& b) {
                if constexpr (std::same_as<decltype(a), decltype(b)>) {
                    CHECK(max(abs(a - b)).item() == 0);
                } else {
                    FAIL("ranks differ");
                }
            });
        });
    }

    // A checkpoint of another model says which keys do not fit, and loads nothing.
    auto other_cfg = cfg;
    other_cfg.gamma_init = 7;
    other_cfg.context_decoder.transformer_width = 32;
    other_cfg.context_decoder.transformer_heads = 2;
    denseclip::DenseClip<float> other(other_cfg, expected.ref.get<std::int64_t, 2>("tokens"));
    try {
        denseclip::load_denseclip(other, ck);
        FAIL("a mis-shaped checkpoint loaded");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("context_decoder.memory_proj.1.weight") != std::string::npos);
    }
    CHECK(other.gamma(0) == 7.0f);  // untouched
}
