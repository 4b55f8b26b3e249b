// SGD, AdamW, clip_grad_norm and the mmcv schedules against the values of
// tests/reference/optim.py (torch 1.13 optimizers; mmcv 1.x lr formulas).
#include <weft/optim.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "support/fixture.hpp"

using namespace weft;
using namespace weft::optim;
using Catch::Matchers::Contains;
using weft::test::check_close;

namespace {

// The fixture's three parameters, under names that mmcv-style rules can address.
struct Params {
    Tensor<double, 2> w;  // [3, 4]
    Tensor<double, 1> b;  // [4]
    Tensor<double, 3> c;  // [2, 3, 2]

    explicit Params(const SafetensorsFile& f)
        : w(f.get<double, 2>("p.w").requires_grad_()),
          b(f.get<double, 1>("p.b").requires_grad_()),
          c(f.get<double, 3>("p.c").requires_grad_()) {}

    std::vector<NamedTensor<double>> named() { return {{"backbone.w", w}, {"head.b", b}, {"head.c", c}}; }

    // Gives each parameter the fixture's gradient of step k through backward (d/dp sum(p * g) = g,
    // exactly); at step 3 "b" gets none, as in the script.
    void set_grads(const SafetensorsFile& f, int k) {
        const std::string s = "g" + std::to_string(k) + ".";
        sum(w * f.get<double, 2>(s + "w")).backward();
        if (k != 3) sum(b * f.get<double, 1>(s + "b")).backward();
        sum(c * f.get<double, 3>(s + "c")).backward();
    }

    void check(const SafetensorsFile& f, const std::string& config, int k) {
        const std::string s = config + "." + std::to_string(k) + ".";
        check_close(w.detach(), f.get<double, 2>(s + "w"), 1e-14, 1e-12, s + "w");
        check_close(b.detach(), f.get<double, 1>(s + "b"), 1e-14, 1e-12, s + "b");
        check_close(c.detach(), f.get<double, 3>(s + "c"), 1e-14, 1e-12, s + "c");
    }
};

template <class Make>
void check_trajectory(const std::string& config, Make make) {
    const auto f = weft::test::fixture("optim");
    Params p(f);
    auto opt = make(p.named());
    for (int k = 0; k < 5; ++k) {
        opt.zero_grad();
        p.set_grads(f, k);
        opt.step();
        p.check(f, config, k);
    }
}

}  // namespace

TEST_CASE("SGD with weight decay matches torch.optim.SGD") {
    check_trajectory("sgd", [](auto params) {
        return SGD<double>(params, {.lr = 0.1, .weight_decay = 0.01});
    });
}

TEST_CASE("SGD with momentum and dampening matches torch.optim.SGD") {
    check_trajectory("sgd_momentum", [](auto params) {
        return SGD<double>(params, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
    });
}

TEST_CASE("SGD with nesterov momentum matches torch.optim.SGD") {
    check_trajectory("sgd_nesterov", [](auto params) {
        return SGD<double>(params, {.lr = 0.05, .momentum = 0.8, .weight_decay = 0.001, .nesterov = true});
    });
}

TEST_CASE("AdamW matches torch.optim.AdamW") {
    check_trajectory("adamw", [](auto params) {
        return AdamW<double>(params, {.lr = 0.01, .betas = {0.9, 0.99}, .eps = 1e-8, .weight_decay = 0.05});
    });
}

TEST_CASE("AdamW with amsgrad matches torch.optim.AdamW") {
    check_trajectory("adamw_amsgrad", [](auto params) {
        return AdamW<double>(params, {.lr = 0.02, .betas = {0.8, 0.95}, .eps = 1e-6, .weight_decay = 0.1,
                                      .amsgrad = true});
    });
}

TEST_CASE("AdamW parameter groups from name rules match torch param_groups") {
    check_trajectory("adamw_groups", [](auto params) {
        auto groups = make_param_groups(params, {{"backbone", 0.1}, {"head", 1.0, 0.0}});
        REQUIRE(groups.size() == 2);
        return AdamW<double>(groups, {.lr = 0.01, .weight_decay = 0.05});
    });
}

TEST_CASE("SGD parameter groups from name rules match torch param_groups") {
    check_trajectory("sgd_groups", [](auto params) {
        return SGD<double>(make_param_groups(params, {{"backbone", 0.1}, {"head", 1.0, 0.0}}),
                           {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
    });
}

TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_") {
    const auto f = weft::test::fixture("optim");
    const double inf = std::numeric_limits<double>::infinity();
    struct Case {
        const char* tag;
        double max_norm, norm_type;
    };
    for (const Case& c : {Case{"l2", 1.0, 2.0}, Case{"inf", 0.5, inf}, Case{"l1", 2.0, 1.0}, Case{"l3", 1.5, 3.0},
                          Case{"noclip", 100.0, 2.0}}) {
        Params p(f);
        p.set_grads(f, 0);
        const double total = clip_grad_norm(p.named(), c.max_norm, c.norm_type);
        const std::string s = std::string("clip_") + c.tag + ".";
        INFO(s);
        CHECK(total == Approx(f.get<double, 1>(s + "total")(0)).epsilon(1e-13));
        check_close(p.w.grad(), f.get<double, 2>(s + "w"), 1e-15, 1e-13, s + "w");
        check_close(p.b.grad(), f.get<double, 1>(s + "b"), 1e-15, 1e-13, s + "b");
        check_close(p.c.grad(), f.get<double, 3>(s + "c"), 1e-15, 1e-13, s + "c");
    }
}

TEST_CASE("mmcv schedules match the lr_updater formulas") {
    const auto f = weft::test::fixture("optim");
    const auto iters = f.get<std::int64_t, 1>("sched.iters");
    auto check = [&](const std::string& key, auto lr_at) {
        const auto expected = f.get<double, 1>("sched." + key);
        for (index_t i = 0; i < iters.numel(); ++i) {
            INFO(key << " at iteration " << iters(i));
            CHECK(lr_at(iters(i)) == Approx(expected(i)).epsilon(1e-12).margin(1e-300));
        }
    };
    // DenseCLIP's ADE20K schedule, and its backbone group (lr_mult 0.1).
    const PolySchedule denseclip{.base_lr = 1e-4, .max_iters = 80000, .power = 1.0, .min_lr = 1e-6,
                                 .warmup = {Warmup::linear, 1500, 1e-6}};
    check("poly_warmup", [&](std::int64_t i) { return denseclip.lr_at(i); });
    check("poly_warmup_backbone", [&](std::int64_t i) { return denseclip.lr_at(i, 1e-5); });
    check("poly_power", [](std::int64_t i) { return PolySchedule{0.01, 80000, 0.9}.lr_at(i); });
    check("poly_constant_warmup", [](std::int64_t i) {
        return PolySchedule{0.01, 80000, 0.9, 1e-4, {Warmup::constant, 100, 0.1}}.lr_at(i);
    });
    check("poly_exp_warmup", [](std::int64_t i) {
        return PolySchedule{0.01, 80000, 1.0, 0.0, {Warmup::exp, 1500, 1e-3}}.lr_at(i);
    });
    check("cosine_min_lr", [](std::int64_t i) {
        return CosineSchedule{.base_lr = 0.01, .max_iters = 80000, .min_lr = 1e-5}.lr_at(i);
    });
    check("cosine_ratio_warmup", [](std::int64_t i) {
        return CosineSchedule{.base_lr = 0.01, .max_iters = 80000, .min_lr_ratio = 1e-3,
                              .warmup = {Warmup::linear, 1500, 0.1}}
            .lr_at(i);
    });
    check("step_list", [](std::int64_t i) {
        return StepSchedule{.base_lr = 0.1, .milestones = {1500, 40000}, .gamma = 0.1}.lr_at(i);
    });
    check("step_every", [](std::int64_t i) {
        return StepSchedule{.base_lr = 0.1, .every = 1000, .gamma = 0.5, .min_lr = 1e-3}.lr_at(i);
    });

    // apply_schedule gives each group what mmcv's hook gives it: the backbone group (lr_mult 0.1)
    // follows the poly curve from 1e-5 down to the same absolute min_lr.
    const auto fx = weft::test::fixture("optim");
    Params p(fx);
    AdamW<double> opt(make_param_groups(p.named(), {{"backbone", 0.1}}), {.lr = 1e-4});
    const auto whole = f.get<double, 1>("sched.poly_warmup"), backbone = f.get<double, 1>("sched.poly_warmup_backbone");
    for (index_t i = 0; i < iters.numel(); ++i) {
        apply_schedule(opt, denseclip, iters(i));
        CHECK(opt.lr() == Approx(whole(i)).epsilon(1e-12));
        for (const auto& g : opt.groups())
            CHECK(g.lr == Approx(g.lr_mult == 1 ? whole(i) : backbone(i)).epsilon(1e-12));
    }
}

TEST_CASE("schedules refuse iterations and settings mmcv would not run") {
    const PolySchedule poly{.base_lr = 0.01, .max_iters = 100};
    CHECK(poly.lr_at(100) == 0);
    REQUIRE_THROWS_WITH(poly.lr_at(101), Contains("PolySchedule: iteration 101 is outside [0, 100]"));
    REQUIRE_THROWS_WITH(poly.lr_at(-1), Contains("iteration -1"));
    REQUIRE_THROWS_WITH((CosineSchedule{.base_lr = 0.1, .max_iters = 10}.lr_at(0)),
                        Contains("exactly one of min_lr and min_lr_ratio"));
    REQUIRE_THROWS_WITH((StepSchedule{.base_lr = 0.1}.lr_at(0)), Contains("either milestones or every"));
    REQUIRE_THROWS_WITH((PolySchedule{0.1, 10, 1, 0, {Warmup::linear, 5, 0.0}}.lr_at(0)),
                        Contains("ratio must lie in (0, 1]"));
    // Warmup ends exactly at warmup.iters: from there the regular lr applies.
    const PolySchedule w{.base_lr = 0.01, .max_iters = 100, .warmup = {Warmup::linear, 10, 0.1}};
    CHECK(w.lr_at(0) == Approx(0.01 * 0.1));
    CHECK(w.lr_at(10) == Approx(0.01 * 0.9));
}
