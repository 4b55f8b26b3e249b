// Mixed precision on the CPU (optim/master_weights.hpp, optim/grad_scaler.hpp): fp32 masters of
// bf16/half parameters, and dynamic loss scaling by torch.cuda.amp.GradScaler's rules. The CPU
// is the reference the CUDA tests (tests/cuda/optim_test.cu) compare against, so these pin the
// exact arithmetic wherever it is exact.
#include <catch2/catch.hpp>

#include <weft/weft.hpp>

#include <cmath>
#include <cstring>
#include <limits>

using namespace weft;
using namespace weft::optim;

namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <class T, int R>
Tensor<T, R> rounded(const Tensor<float, R>& x) {
    return cast<T>(x);
}

// The fp32 master of a rank-R parameter.
template <int R, class T, class D>
Tensor<float, R, D> master_of(const MasterWeights<T, D>& m, std::size_t i) {
    return m.parameters()[i].tensor.template get<R>().detach();
}

}  // namespace

TEST_CASE("MasterWeights: the step is the fp32 update of the masters, rounded into the bf16 parameters") {
    Generator gen(7);
    Tensor<bf16, 2> w = rounded<bf16>(Tensor<float, 2>::randn({5, 7}, gen));
    Tensor<bf16, 1> b = rounded<bf16>(Tensor<float, 1>::randn({7}, gen));
    Tensor<bf16, 1> frozen = rounded<bf16>(Tensor<float, 1>::randn({3}, gen));
    w.requires_grad_();
    b.requires_grad_();
    const Tensor<bf16, 1> b_before = b.detach().clone();

    MasterWeights<bf16> masters({{"w", w}, {"b", b}, {"frozen", frozen}});
    REQUIRE(masters.parameters().size() == 3);
    CHECK(masters.parameters()[0].name == "w");
    CHECK(masters.parameters()[0].tensor.shape() == std::vector<index_t>{5, 7});
    CHECK(masters.parameters()[0].tensor.requires_grad());
    CHECK(!masters.parameters()[2].tensor.requires_grad());  // mirrors the model: left out of groups
    CHECK(make_param_groups(masters.parameters(), std::vector<ParamRule>{})[0].params.size() == 2);

    const float lr = 0.05f;
    SGD<float> opt(make_param_groups(masters.parameters(), std::vector<ParamRule>{}), {.lr = lr});
    Tensor<float, 2> ref = cast<float>(w.detach());  // exact: the masters start as float(w)
    for (int step = 0; step < 4; ++step) {
        const Tensor<bf16, 2> c = rounded<bf16>(Tensor<float, 2>::randn({5, 7}, gen));
        sum(w * c).backward();  // w's gradient is c; b gets none
        masters.step(opt);
        INFO("step " << step);
        CHECK(!w.grad().defined());  // consumed by the step
        const Tensor<float, 2> m = master_of<2>(masters, 0);
        const Tensor<float, 2> mg = masters.parameters()[0].tensor.get<2>().grad();
        REQUIRE(mg.defined());
        CHECK(!masters.parameters()[1].tensor.get<1>().grad().defined());
        index_t bad_master = 0, bad_param = 0, bad_grad = 0;
        for (index_t i = 0; i < 5; ++i)
            for (index_t j = 0; j < 7; ++j) {
                bad_grad += !same_bits(mg(i, j), float(c(i, j)));
                ref(i, j) = ref(i, j) + (-lr) * float(c(i, j));  // SGD's p + (-lr) * g, in float
                bad_master += !same_bits(m(i, j), ref(i, j));
                bad_param += w.detach()(i, j).bits != bf16(ref(i, j)).bits;
            }
        CHECK(bad_grad == 0);
        CHECK(bad_master == 0);
        CHECK(bad_param == 0);
        opt.zero_grad();
    }
    for (index_t j = 0; j < 7; ++j) CHECK(b.detach()(j).bits == b_before(j).bits);  // never stepped
}

TEST_CASE("MasterWeights keep the updates that a bf16 optimizer rounds away") {
    // 1 - 1e-3 is 1 in bf16 (its spacing below 1 is 2^-8): plain bf16 SGD never moves.
    Tensor<bf16, 1> plain = Tensor<bf16, 1>::full({4}, bf16(1.0f));
    Tensor<bf16, 1> w = Tensor<bf16, 1>::full({4}, bf16(1.0f));
    plain.requires_grad_();
    w.requires_grad_();
    SGD<bf16> plain_opt({{"w", plain}}, {.lr = 1e-3});
    MasterWeights<bf16> masters({{"w", w}});
    SGD<float> opt(masters.parameters(), {.lr = 1e-3});
    const auto ones = Tensor<bf16, 1>::ones({4});
    float ref = 1.0f;
    for (int step = 0; step < 10; ++step) {
        sum(plain * ones).backward();
        plain_opt.step();
        plain_opt.zero_grad();
        sum(w * ones).backward();
        masters.step(opt);
        opt.zero_grad();
        ref = ref + (-float(1e-3)) * 1.0f;
    }
    CHECK(float(plain.detach()(0)) == 1.0f);
    CHECK(same_bits(master_of<1>(masters, 0)(0), ref));
    CHECK(w.detach()(0).bits == bf16(ref).bits);
    CHECK(float(w.detach()(0)) < 1.0f);
}

TEST_CASE("a bf16 linear model trained with fp32 masters follows fp32 training within bf16 rounding") {
    const index_t N = 64, K = 8;
    Generator gen(11);
    // Inputs that bf16 holds exactly, so that both models see the same data.
    const Tensor<float, 2> x = cast<float>(rounded<bf16>(Tensor<float, 2>::randn({N, K}, gen)));
    const Tensor<float, 1> w_true = Tensor<float, 1>::randn({K}, gen);
    const Tensor<float, 1> y = cast<float>(rounded<bf16>(Tensor<float, 1>(sum(x * w_true, {1}) + 0.5f)));
    const Tensor<bf16, 2> x16 = cast<bf16>(x);
    const Tensor<bf16, 1> y16 = cast<bf16>(y);

    auto w32 = Tensor<float, 1>::zeros({K}).requires_grad_();
    auto b32 = Tensor<float, 1>::zeros({1}).requires_grad_();
    auto w16 = Tensor<bf16, 1>::zeros({K}).requires_grad_();
    auto b16 = Tensor<bf16, 1>::zeros({1}).requires_grad_();
    const AdamWOptions o{.lr = 0.05, .weight_decay = 0};
    AdamW<float> opt32({{"w", w32}, {"b", b32}}, o);
    MasterWeights<bf16> masters({{"w", w16}, {"b", b16}});
    AdamW<float> opt16(masters.parameters(), o);

    double first_loss = 0, last_loss = 0;
    for (int step = 0; step < 60; ++step) {
        const Tensor<float, 0> loss32 = mean(square(sum(x * w32, {1}) + b32 - y));
        loss32.backward();
        opt32.step();
        opt32.zero_grad();
        const Tensor<bf16, 0> loss16 = mean(square(sum(x16 * w16, {1}) + b16 - y16));
        loss16.backward();
        masters.step(opt16);
        opt16.zero_grad();
        if (step == 0) first_loss = float(loss16.item());
        last_loss = float(loss16.item());
    }
    CHECK(last_loss < 0.05 * first_loss);
    // bf16 rounds the forward and backward to 8 bits (relative 2^-9); over 60 Adam steps of
    // 0.05 the fp32 and mixed trajectories stay within a few thousandths (measured: 8e-4).
    const Tensor<float, 1> mw = master_of<1>(masters, 0);
    double worst = 0;
    for (index_t k = 0; k < K; ++k) worst = std::max(worst, double(std::abs(mw(k) - w32.detach()(k))));
    INFO("largest |master - fp32| " << worst);
    CHECK(worst < 5e-3);
    CHECK(std::abs(master_of<1>(masters, 1)(0) - b32.detach()(0)) < 5e-3);
    // The model holds the rounded masters.
    for (index_t k = 0; k < K; ++k) CHECK(w16.detach()(k).bits == bf16(mw(k)).bits);
}

namespace {

// A half model whose gradients are chosen directly: loss = sum(w * c), so w's gradient is c.
struct HalfModel {
    Tensor<half, 1> w;
    explicit HalfModel(index_t n) : w(Tensor<half, 1>::full({n}, half(0.5f))) { w.requires_grad_(); }
};

}  // namespace

TEST_CASE("GradScaler: the scale follows torch's rules, and a skipped step changes nothing") {
    HalfModel model(4);
    MasterWeights<half> masters({{"w", model.w}});
    const float lr = 0.01f;
    SGD<float> opt(masters.parameters(), {.lr = lr});
    GradScaler<Cpu> scaler({.init_scale = 1024, .growth_interval = 3});
    CHECK(scaler.current_scale() == 1024.0f);

    const bool bad[] = {false, false, false, true, false, true, false, false, false, false};
    const float want_scale[] = {1024, 1024, 2048, 1024, 1024, 512, 512, 512, 1024, 1024};
    const int want_tracker[] = {1, 2, 0, 0, 1, 0, 1, 2, 0, 1};
    float ref[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    const float c_values[4] = {0.25f, -0.5f, 0.125f, 1.5f};  // exact in half, times any power of two used
    for (int step = 0; step < 10; ++step) {
        INFO("iteration " << step);
        Tensor<half, 1> c = Tensor<half, 1>::empty({4});
        for (index_t i = 0; i < 4; ++i) c(i) = half(c_values[i]);
        if (bad[step]) c(2) = half(std::numeric_limits<float>::quiet_NaN());
        scaler.scale(Tensor<half, 0>(sum(model.w * c))).backward();
        const bool stepped = scaler.step(masters, opt);
        CHECK(stepped == !bad[step]);
        CHECK(scaler.found_inf() == bad[step]);
        scaler.update();
        opt.zero_grad();
        CHECK(scaler.current_scale() == want_scale[step]);
        CHECK(scaler.growth_tracker() == want_tracker[step]);
        if (stepped)
            for (int i = 0; i < 4; ++i) ref[i] = ref[i] + (-lr) * c_values[i];  // the unscaled gradient
        const Tensor<float, 1> m = master_of<1>(masters, 0);
        for (index_t i = 0; i < 4; ++i) {
            CHECK(same_bits(m(i), ref[i]));
            CHECK(model.w.detach()(i).bits == half(ref[i]).bits);
        }
    }
}

TEST_CASE("GradScaler: a half loss scaled by 65536 overflows, so the first step is skipped") {
    HalfModel model(3);
    MasterWeights<half> masters({{"w", model.w}});
    AdamW<float> opt(masters.parameters(), {.lr = 1e-3});
    GradScaler<Cpu> scaler;  // torch's defaults
    CHECK(scaler.current_scale() == 65536.0f);
    const auto c = Tensor<half, 1>::full({3}, half(0.75f));
    for (int step = 0; step < 3; ++step) {
        scaler.scale(Tensor<half, 0>(sum(model.w * c))).backward();
        const bool stepped = scaler.step(masters, opt);
        CHECK(stepped == (step > 0));
        scaler.update();
        opt.zero_grad();
    }
    CHECK(scaler.current_scale() == 32768.0f);
    CHECK(scaler.growth_tracker() == 2);
    CHECK(opt.state("w").step == 2);  // the skipped step left AdamW's state alone
    // The masters' gradient was the true one: 0.75 (from 0.75 * 32768, exact in half).
    CHECK(masters.parameters()[0].tensor.get<1>().grad().defined() == false);  // zero_grad
}

TEST_CASE("GradScaler: growth stops short of float's overflow") {
    Tensor<bf16, 1> w = Tensor<bf16, 1>::full({2}, bf16(1.0f));
    w.requires_grad_();
    MasterWeights<bf16> masters({{"w", w}});
    SGD<float> opt(masters.parameters(), {.lr = 1.0});
    const double top = std::ldexp(1.0, 127);  // 2^128 is inf in float
    GradScaler<Cpu> scaler({.init_scale = top, .growth_interval = 1});
    const auto c = Tensor<bf16, 1>::full({2}, bf16(std::ldexp(1.0f, -20)));
    scaler.scale(Tensor<bf16, 0>(sum(w * c))).backward();  // gradient 2^107: bf16 has float's range
    CHECK(scaler.step(masters, opt));
    scaler.update();
    CHECK(double(scaler.current_scale()) == top);
    CHECK(scaler.growth_tracker() == 0);
    CHECK(same_bits(master_of<1>(masters, 0)(0), 1.0f - std::ldexp(1.0f, -20)));
}

TEST_CASE("GradScaler: unscale before clipping, and the order of calls is checked") {
    Tensor<half, 1> w = Tensor<half, 1>::zeros({2});
    w.requires_grad_();
    MasterWeights<half> masters({{"w", w}});
    SGD<float> opt(masters.parameters(), {.lr = 1.0});
    GradScaler<Cpu> scaler({.init_scale = 1024});
    auto c = Tensor<half, 1>::empty({2});
    c(0) = half(3.0f);
    c(1) = half(4.0f);

    CHECK_THROWS_WITH(scaler.update(), Catch::Contains("no unscale() or step()"));
    scaler.scale(Tensor<half, 0>(sum(w * c))).backward();
    scaler.unscale(masters);
    CHECK_THROWS_WITH(scaler.unscale(masters), Catch::Contains("already called"));
    // The masters hold the true gradient (3, 4): its norm is 5, clipped to 1.
    const double norm = clip_grad_norm(masters.parameters(), 1.0);
    CHECK(norm == Approx(5.0));
    CHECK(scaler.step(masters, opt));  // no second unscale: the clipped gradient is used
    CHECK_THROWS_WITH(scaler.step(masters, opt), Catch::Contains("already called"));
    scaler.update();
    const Tensor<float, 1> m = master_of<1>(masters, 0);
    CHECK(m(0) == Approx(-0.6).epsilon(1e-5));
    CHECK(m(1) == Approx(-0.8).epsilon(1e-5));

    // Disabled: the loss is not scaled, every step is taken.
    GradScaler<Cpu> off({.enabled = false});
    opt.zero_grad();
    const Tensor<half, 0> loss = sum(w * c);
    CHECK(off.scale(loss).item().bits == loss.item().bits);
    off.scale(loss).backward();
    CHECK(off.step(masters, opt));
    off.update();
}

TEST_CASE("MasterWeights: copy_from_model, zero_grad, and optimizer state keyed by the model's names") {
    Generator gen(3);
    Tensor<bf16, 2> w = rounded<bf16>(Tensor<float, 2>::randn({3, 4}, gen));
    w.requires_grad_();
    MasterWeights<bf16> masters({{"enc.w", w}});
    AdamW<float> opt(masters.parameters(), {.lr = 1e-2});
    const auto c = rounded<bf16>(Tensor<float, 2>::randn({3, 4}, gen));
    sum(w * c).backward();
    masters.step(opt);
    CHECK(opt.state("enc.w").step == 1);
    const auto entries = opt.state_entries("optimizer.");
    bool found = false;
    for (const auto& e : entries) found = found || e.name == "optimizer.enc.w:exp_avg";
    CHECK(found);

    sum(w * c).backward();
    masters.zero_grad();
    CHECK(!w.grad().defined());
    // A model changed behind the masters' back (a loaded 16-bit checkpoint) is read again exactly.
    {
        NoGrad no_grad;
        w.detach().flatten() = cast<bf16>(Tensor<float, 1>::full({12}, 0.375f));
    }
    masters.copy_from_model();
    CHECK(master_of<2>(masters, 0)(2, 3) == 0.375f);
}
