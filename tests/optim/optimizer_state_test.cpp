// Parameter groups from name rules (mmcv's custom_keys), optimizer bookkeeping, and optimizer
// state files: save -> load -> continue equals an uninterrupted run, bit for bit.
#include <weft/optim.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/fixture.hpp"

using namespace weft;
using namespace weft::optim;
using Catch::Matchers::Contains;

namespace {

// A temporary folder removed at the end of a test.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        path = std::filesystem::temp_directory_path() /
               ("weft_optim_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
        std::filesystem::create_directories(path);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    static int& counter() {
        static int n = 0;
        return n;
    }
};

std::vector<NamedTensor<float>> named(std::initializer_list<std::pair<const char*, Tensor<float, 2>*>> ts) {
    std::vector<NamedTensor<float>> out;
    for (auto [name, t] : ts) out.push_back({name, *t});
    return out;
}

std::vector<std::string> names_of(const ParamGroup<float>& g) {
    std::vector<std::string> out;
    for (const auto& p : g.params) out.push_back(p.name);
    return out;
}

bool bitwise_equal(const Tensor<float, 2>& a, const Tensor<float, 2>& b) {
    return a.shape() == b.shape() &&
           std::memcmp(a.contiguous().data(), b.contiguous().data(), std::size_t(a.numel()) * sizeof(float)) == 0;
}

// A small model: three parameters of a few shapes, and a deterministic stream of gradients
// (one parameter goes without a gradient every third step, so per-parameter step counts differ).
struct Model {
    Tensor<float, 2> w1, w2;
    Tensor<float, 1> b;

    explicit Model(std::uint64_t seed) {
        Generator gen(seed);
        w1 = Tensor<float, 2>::randn({8, 5}, gen).requires_grad_();
        w2 = Tensor<float, 2>::randn({3, 8}, gen).requires_grad_();
        b = Tensor<float, 1>::randn({3}, gen).requires_grad_();
    }
    Model clone() const {
        Model m(0);
        m.w1 = w1.detach().clone().requires_grad_();
        m.w2 = w2.detach().clone().requires_grad_();
        m.b = b.detach().clone().requires_grad_();
        return m;
    }
    std::vector<NamedTensor<float>> params() { return {{"enc.w1", w1}, {"head.w2", w2}, {"head.b", b}}; }
    std::vector<NamedTensor<float>> params_reversed() { return {{"head.b", b}, {"head.w2", w2}, {"enc.w1", w1}}; }

    void backward(int step) {
        Generator gen(1000 + std::uint64_t(step));
        sum(w1 * Tensor<float, 2>::randn({8, 5}, gen)).backward();
        if (step % 3 != 1) sum(square(w2) * Tensor<float, 2>::randn({3, 8}, gen)).backward();
        sum(b * Tensor<float, 1>::randn({3}, gen)).backward();
    }
};

template <class Opt>
void train(Model& m, Opt& opt, int from, int to) {
    for (int s = from; s < to; ++s) {
        opt.zero_grad();
        m.backward(s);
        opt.step();
    }
}

}  // namespace

TEST_CASE("param rules: the longest matching key wins, ties go to the alphabetically first") {
    const std::vector<ParamRule> rules{{"backbone", 0.1}, {"backbone.layer4", 0.5}, {"ab", 2}, {"bc", 3}};
    CHECK(match_param_rule("backbone.layer4.0.conv1.weight", rules)->key == "backbone.layer4");
    CHECK(match_param_rule("backbone.layer1.0.conv1.weight", rules)->key == "backbone");
    CHECK(match_param_rule("x.abc.weight", rules)->key == "ab");  // "ab" and "bc" both match
    CHECK(match_param_rule("decode_head.conv_seg.weight", rules) == nullptr);
    // A parameter of the top module is matched as mmcv sees it: ".gamma".
    const std::vector<ParamRule> dot{{".gamma", 0}};
    CHECK(match_param_rule("gamma", dot) != nullptr);
    CHECK(match_param_rule("head.gamma", dot) != nullptr);
    CHECK(match_param_rule("head.gammas", dot) != nullptr);
    CHECK(match_param_rule("head.xgamma", dot) == nullptr);
}

TEST_CASE("param groups with DenseCLIP's custom_keys") {
    Tensor<float, 2> t[7];
    for (auto& x : t) x = Tensor<float, 2>::zeros({2, 2}).requires_grad_();
    Tensor<float, 2> frozen = Tensor<float, 2>::zeros({2, 2});  // requires_grad false: left out
    const auto params = named({{"backbone.layer1.0.bn1.weight", &t[0]},
                               {"text_encoder.transformer.resblocks.0.ln_1.weight", &t[1]},
                               {"context_decoder.norm.weight", &t[2]},
                               {"decode_head.conv_seg.weight", &t[3]},
                               {"backbone.layer1.0.conv1.weight", &t[4]},
                               {"frozen.weight", &frozen},
                               {"neck.fpn_convs.0.norm.bias", &t[5]},
                               {"gamma", &t[6]}});
    // DenseCLIP's configs: paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1),
    // 'text_encoder': dict(lr_mult=0.0), 'norm': dict(decay_mult=0.0)})
    const auto groups = make_param_groups(params, {{"backbone", 0.1}, {"text_encoder", 0.0}, {"norm", 1.0, 0.0}});
    REQUIRE(groups.size() == 4);
    // "backbone" (8 characters) is tried before "norm" (4): backbone norms keep their decay, as in mmcv.
    CHECK(groups[0].lr_mult == 0.1);
    CHECK(groups[0].decay_mult == 1.0);
    CHECK(names_of(groups[0]) == std::vector<std::string>{"backbone.layer1.0.bn1.weight", "backbone.layer1.0.conv1.weight"});
    CHECK(groups[1].lr_mult == 0.0);
    CHECK(names_of(groups[1]) == std::vector<std::string>{"text_encoder.transformer.resblocks.0.ln_1.weight"});
    CHECK(groups[2].lr_mult == 1.0);
    CHECK(groups[2].decay_mult == 0.0);
    CHECK(names_of(groups[2]) == std::vector<std::string>{"context_decoder.norm.weight", "neck.fpn_convs.0.norm.bias"});
    CHECK(groups[3].lr_mult == 1.0);
    CHECK(groups[3].decay_mult == 1.0);
    CHECK(names_of(groups[3]) == std::vector<std::string>{"decode_head.conv_seg.weight", "gamma"});

    // The optimizer's groups: lr = base * lr_mult, weight decay = base * decay_mult, and set_lr
    // keeps the ratios.
    AdamW<float> opt(groups, {.lr = 1e-4, .weight_decay = 1e-2});
    CHECK(opt.groups()[0].lr == Approx(1e-5));
    CHECK(opt.groups()[1].lr == 0.0);
    CHECK(opt.groups()[2].weight_decay == 0.0);
    CHECK(opt.groups()[3].weight_decay == Approx(1e-2));
    opt.set_lr(2e-3);
    CHECK(opt.lr() == 2e-3);
    CHECK(opt.groups()[0].lr == Approx(2e-4));
    CHECK(opt.groups()[3].lr == Approx(2e-3));
    CHECK(opt.param_count() == 7);
}

TEST_CASE("param groups: bias and norm multipliers apply where no key matches") {
    Tensor<float, 2> t[4];
    for (auto& x : t) x = Tensor<float, 2>::zeros({1, 1}).requires_grad_();
    const auto params = named({{"fc.weight", &t[0]}, {"fc.bias", &t[1]}, {"bn.bias", &t[2]}, {"head.bias", &t[3]}});
    ParamGroupConfig cfg;
    cfg.custom_keys = {{"head", 0.5}};
    cfg.bias_lr_mult = 2;
    cfg.bias_decay_mult = 0;
    cfg.norm_decay_mult = 0.25;
    cfg.is_norm = [](const std::string& name) { return name.starts_with("bn."); };
    const auto groups = make_param_groups(params, cfg);
    REQUIRE(groups.size() == 4);
    CHECK(names_of(groups[0]) == std::vector<std::string>{"fc.weight"});
    CHECK((groups[0].lr_mult == 1 && groups[0].decay_mult == 1));
    CHECK(names_of(groups[1]) == std::vector<std::string>{"fc.bias"});
    CHECK((groups[1].lr_mult == 2 && groups[1].decay_mult == 0));
    CHECK(names_of(groups[2]) == std::vector<std::string>{"bn.bias"});  // a norm's bias: lr as is
    CHECK((groups[2].lr_mult == 1 && groups[2].decay_mult == 0.25));
    CHECK(names_of(groups[3]) == std::vector<std::string>{"head.bias"});  // the key decides alone
    CHECK((groups[3].lr_mult == 0.5 && groups[3].decay_mult == 1));
}

TEST_CASE("param groups and optimizers refuse duplicate names and bad options") {
    Tensor<float, 2> a = Tensor<float, 2>::zeros({1, 1}).requires_grad_();
    Tensor<float, 2> b = Tensor<float, 2>::zeros({1, 1}).requires_grad_();
    const auto twice = named({{"x.w", &a}, {"x.w", &b}});
    REQUIRE_THROWS_WITH(make_param_groups(twice, std::vector<ParamRule>{}), Contains("'x.w' appears twice"));
    REQUIRE_THROWS_WITH(SGD<float>(twice, {.lr = 0.1}), Contains("'x.w' appears twice"));
    const auto ok = named({{"x.w", &a}});
    REQUIRE_THROWS_WITH(make_param_groups(ok, {{"x", 1}, {"x", 2}}), Contains("the key 'x' is given twice"));
    REQUIRE_THROWS_WITH(SGD<float>(ok, {.lr = 0.1, .dampening = 0.1, .nesterov = true}),
                        Contains("nesterov momentum needs momentum > 0 and dampening 0"));
    REQUIRE_THROWS_WITH(SGD<float>(ok, {}), Contains("SGD: lr must be positive"));
    REQUIRE_THROWS_WITH(AdamW<float>(ok, {.betas = {0.9, 1.0}}), Contains("must lie in [0, 1)"));
}

TEST_CASE("step skips parameters without a gradient; lr_mult 0 freezes a group") {
    Model m(1);
    const Model start = m.clone();
    AdamW<float> opt(make_param_groups(m.params(), {{"enc", 0.0}}), {.lr = 0.1});
    opt.step();  // no gradient anywhere yet: nothing moves, no state
    CHECK(bitwise_equal(m.w2.detach(), start.w2.detach()));
    CHECK(opt.state("head.w2").step == 0);
    CHECK_FALSE(opt.state("head.w2", "exp_avg").defined());

    train(m, opt, 0, 2);  // step 1 gives w2 no gradient
    CHECK(opt.state("enc.w1").step == 2);
    CHECK(opt.state("head.w2").step == 1);
    CHECK(opt.state("head.b").step == 2);
    CHECK(bitwise_equal(m.w1.detach(), start.w1.detach()));  // lr 0 (and so no decay either)
    CHECK_FALSE(bitwise_equal(m.w2.detach(), start.w2.detach()));
    CHECK(opt.state("enc.w1", "exp_avg").defined());  // its moments still follow the gradients

    opt.zero_grad();
    CHECK_FALSE(m.w1.grad().defined());
    REQUIRE_THROWS_WITH(opt.state("nope"), Contains("no parameter named 'nope'"));
}

TEST_CASE("optimizer state: save, load, continue equals the uninterrupted run exactly") {
    TempDir dir;
    auto run = [&](auto make) {
        Model full(7);
        Model part = full.clone();
        auto opt_full = make(full.params());
        train(full, opt_full, 0, 7);

        auto opt_a = make(part.params());
        train(part, opt_a, 0, 4);
        const auto file = dir.path / "state.safetensors";
        opt_a.save_state(file);

        // A new process, in effect: the model restored from its values, a new optimizer over the
        // parameters listed in another order, its state loaded by name.
        Model resumed = part.clone();
        auto opt_b = make(resumed.params_reversed());
        opt_b.load_state(file);
        CHECK(opt_b.state("head.w2").step == 3);
        CHECK(opt_b.state("enc.w1").step == 4);
        train(resumed, opt_b, 4, 7);
        CHECK(bitwise_equal(resumed.w1.detach(), full.w1.detach()));
        CHECK(bitwise_equal(resumed.w2.detach(), full.w2.detach()));
        CHECK(resumed.b.detach().shape() == full.b.detach().shape());
        CHECK(std::memcmp(resumed.b.data(), full.b.data(), 3 * sizeof(float)) == 0);
        // ...and the run that kept going in memory agrees as well.
        train(part, opt_a, 4, 7);
        CHECK(bitwise_equal(part.w2.detach(), full.w2.detach()));
    };
    SECTION("AdamW with amsgrad") {
        run([](std::vector<NamedTensor<float>> p) {
            return AdamW<float>(make_param_groups(p, {{"enc", 0.5, 0.0}}),
                                {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
        });
    }
    SECTION("SGD with nesterov momentum") {
        run([](std::vector<NamedTensor<float>> p) {
            return SGD<float>(p, {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true});
        });
    }
}

TEST_CASE("optimizer state: bad files are refused with the file and key named, state untouched") {
    TempDir dir;
    Model m(3);
    AdamW<float> adam(m.params(), {.lr = 0.01});
    SGD<float> sgd(m.params(), {.lr = 0.01, .momentum = 0.9});
    train(m, adam, 0, 2);
    train(m, sgd, 0, 2);
    const auto adam_file = (dir.path / "adam.safetensors").string();
    const auto sgd_file = (dir.path / "sgd.safetensors").string();
    adam.save_state(adam_file);
    sgd.save_state(sgd_file);

    Model other(4);
    AdamW<float> target(other.params(), {.lr = 0.01});
    train(other, target, 0, 1);
    const auto before = target.state("enc.w1", "exp_avg").clone();
    auto untouched = [&] {
        CHECK(target.state("enc.w1").step == 1);
        CHECK(std::memcmp(target.state("enc.w1", "exp_avg").data(), before.data(), 40 * sizeof(float)) == 0);
    };

    SECTION("another optimizer's state") {
        REQUIRE_THROWS_WITH(target.load_state(sgd_file), Contains(sgd_file) && Contains("holds the state of SGD, not of AdamW"));
        untouched();
    }
    SECTION("a parameter this optimizer does not have") {
        Tensor<float, 2> w1 = other.w1, w2 = other.w2;
        AdamW<float> renamed(named({{"encoder.w1", &w1}, {"head.w2", &w2}}), {.lr = 0.01});
        REQUIRE_THROWS_WITH(renamed.load_state(adam_file),
                            Contains(adam_file) && Contains("holds state for parameter 'enc.w1', which this AdamW does not optimize"));
    }
    SECTION("a shape that differs from the parameter's") {
        Tensor<float, 2> w1 = Tensor<float, 2>::zeros({5, 8}).requires_grad_();
        Tensor<float, 2> w2 = other.w2;
        Tensor<float, 1> b = other.b;
        AdamW<float> reshaped(std::vector<NamedTensor<float>>{{"enc.w1", w1}, {"head.w2", w2}, {"head.b", b}},
                              {.lr = 0.01});
        REQUIRE_THROWS_WITH(reshaped.load_state(adam_file),
                            Contains(adam_file) &&
                                Contains("key 'enc.w1:exp_avg' has shape [8, 5], but parameter 'enc.w1' has shape [5, 8]"));
    }
    SECTION("state saved without amsgrad") {
        AdamW<float> ams(other.params(), {.lr = 0.01, .amsgrad = true});
        REQUIRE_THROWS_WITH(ams.load_state(adam_file), Contains("no key 'enc.w1:max_exp_avg_sq'"));
    }
    SECTION("a dtype that differs from the parameters'") {
        Tensor<double, 2> w1 = Tensor<double, 2>::zeros({8, 5}).requires_grad_();
        Tensor<double, 2> w2 = Tensor<double, 2>::zeros({3, 8}).requires_grad_();
        Tensor<double, 1> b = Tensor<double, 1>::zeros({3}).requires_grad_();
        AdamW<double> wide(std::vector<NamedTensor<double>>{{"enc.w1", w1}, {"head.w2", w2}, {"head.b", b}},
                           {.lr = 0.01});
        REQUIRE_THROWS_WITH(wide.load_state(adam_file), Contains("enc.w1:exp_avg") && Contains("F32"));
    }
    SECTION("a file that is no optimizer state, or no file") {
        const std::string fixture = std::string(WEFT_SOURCE_DIR) + "/tests/reference/data/optim.safetensors";
        REQUIRE_THROWS_WITH(target.load_state(fixture), Contains("not an optimizer state file"));
        REQUIRE_THROWS_WITH(target.load_state(dir.path / "missing.safetensors"), Contains("cannot open"));
        std::ofstream(dir.path / "junk.safetensors") << "not a safetensors file at all";
        REQUIRE_THROWS(target.load_state(dir.path / "junk.safetensors"));
        untouched();
    }
    SECTION("a parameter never stepped has no state in the file and starts fresh") {
        Model fresh(5);
        AdamW<float> opt(fresh.params(), {.lr = 0.01});
        opt.zero_grad();
        sum(fresh.b * 2.0f).backward();  // only b gets a gradient
        opt.step();
        const auto file = dir.path / "partial.safetensors";
        opt.save_state(file);
        const auto f = SafetensorsFile::open(file);
        CHECK(f.names() == std::vector<std::string>{"head.b:exp_avg", "head.b:exp_avg_sq", "head.b:step"});
        target.load_state(file);
        CHECK(target.state("enc.w1").step == 0);
        CHECK(target.state("head.b").step == 1);
    }
}
