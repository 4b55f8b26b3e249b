// nn layers against PyTorch (tests/reference/nn.py): state_dict names and order, weights loaded
// through nn::load_state from the fixture file, outputs, and gradients of inputs and parameters.
#include <string>
#include <vector>

#include <weft/nn.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

// Loads "<name>.state.*" strictly and checks the names and their order against PyTorch's.
void load(nn::Module<double>& m, const std::string& name) { weft::test::load_fixture_state(m, "nn", name); }

// Every parameter's gradient against "<name>.grad.<param>".
void check_param_grads(const nn::Module<double>& m, const std::string& name, double tol = 1e-10) {
    weft::test::check_param_grads(m, "nn", name, tol);
}

}  // namespace

TEST_CASE("nn Linear, Conv2d and ConvTranspose2d match PyTorch") {
    const auto f = weft::test::fixture("nn");
    SECTION("Linear") {
        nn::Linear<double> m(4, 3);
        load(m, "linear");
        auto x = f.get<double, 3>("linear.in.x").requires_grad_();
        auto y = m(x);
        check_close(y, f.get<double, 3>("linear.out"), 1e-12, 1e-12, "linear out");
        sum(y * f.get<double, 3>("linear.r")).backward();
        check_close(x.grad(), f.get<double, 3>("linear.grad_in.x"), 1e-12, 1e-12, "linear grad x");
        check_param_grads(m, "linear");
    }
    SECTION("Conv2d") {
        nn::Conv2d<double> m(3, 4, 3, {.stride = {2, 2}, .padding = {1, 1}});
        load(m, "conv");
        auto x = f.get<double, 4>("conv.in.x").requires_grad_();
        auto y = m(x);
        check_close(y, f.get<double, 4>("conv.out"), 1e-12, 1e-12, "conv out");
        sum(y * f.get<double, 4>("conv.r")).backward();
        check_close(x.grad(), f.get<double, 4>("conv.grad_in.x"), 1e-12, 1e-12, "conv grad x");
        check_param_grads(m, "conv");
    }
    SECTION("ConvTranspose2d") {
        nn::ConvTranspose2d<double> m(4, 2, 3, {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}});
        load(m, "convt");
        auto x = f.get<double, 4>("convt.in.x").requires_grad_();
        auto y = m(x);
        check_close(y, f.get<double, 4>("convt.out"), 1e-12, 1e-12, "convt out");
        sum(y * f.get<double, 4>("convt.r")).backward();
        check_close(x.grad(), f.get<double, 4>("convt.grad_in.x"), 1e-12, 1e-12, "convt grad x");
        check_param_grads(m, "convt");
    }
}

TEST_CASE("nn MultiheadAttention matches PyTorch") {
    const auto f = weft::test::fixture("nn");
    SECTION("cross-attention with a padding mask, an additive mask and the weights") {
        nn::MultiheadAttention<double> m(8, 2);
        load(m, "mha");
        auto q = f.get<double, 3>("mha.in.q").requires_grad_();
        auto k = f.get<double, 3>("mha.in.k").requires_grad_();
        auto v = f.get<double, 3>("mha.in.v").requires_grad_();
        auto [y, w] = m(q, k, v, f.get<bool, 2>("mha.in.pad"), f.get<double, 2>("mha.in.bias"), true);
        check_close(y, f.get<double, 3>("mha.out"), 1e-12, 1e-10, "mha out");
        check_close(w, f.get<double, 3>("mha.weights"), 1e-12, 1e-10, "mha weights");
        sum(y * f.get<double, 3>("mha.r")).backward();
        check_close(q.grad(), f.get<double, 3>("mha.grad_in.q"), 1e-10, 1e-9, "mha grad q");
        check_close(k.grad(), f.get<double, 3>("mha.grad_in.k"), 1e-10, 1e-9, "mha grad k");
        check_close(v.grad(), f.get<double, 3>("mha.grad_in.v"), 1e-10, 1e-9, "mha grad v");
        check_param_grads(m, "mha");
    }
    SECTION("keys and values of other widths") {
        nn::MultiheadAttention<double> m(8, 4, {.kdim = 6, .vdim = 5});
        load(m, "mha_kv");
        auto q = f.get<double, 3>("mha_kv.in.q").requires_grad_();
        auto k = f.get<double, 3>("mha_kv.in.k").requires_grad_();
        auto v = f.get<double, 3>("mha_kv.in.v").requires_grad_();
        auto y = m(q, k, v).output;
        check_close(y, f.get<double, 3>("mha_kv.out"), 1e-12, 1e-10, "mha_kv out");
        sum(y * f.get<double, 3>("mha_kv.r")).backward();
        check_close(q.grad(), f.get<double, 3>("mha_kv.grad_in.q"), 1e-10, 1e-9, "mha_kv grad q");
        check_close(k.grad(), f.get<double, 3>("mha_kv.grad_in.k"), 1e-10, 1e-9, "mha_kv grad k");
        check_close(v.grad(), f.get<double, 3>("mha_kv.grad_in.v"), 1e-10, 1e-9, "mha_kv grad v");
        check_param_grads(m, "mha_kv");
    }
}

TEST_CASE("nn pre-norm transformer layers match PyTorch") {
    const auto f = weft::test::fixture("nn");
    const nn::TransformerLayerOptions opts{.dim_feedforward = 16, .dropout = 0.0};
    SECTION("TransformerEncoderLayer with a causal mask and padding") {
        nn::TransformerEncoderLayer<double> m(8, 2, opts);
        load(m, "encoder");
        auto src = f.get<double, 3>("encoder.in.src").requires_grad_();
        auto y = m(src, f.get<double, 2>("encoder.in.mask"), f.get<bool, 2>("encoder.in.pad"));
        check_close(y, f.get<double, 3>("encoder.out"), 1e-12, 1e-10, "encoder out");
        sum(y * f.get<double, 3>("encoder.r")).backward();
        check_close(src.grad(), f.get<double, 3>("encoder.grad_in.src"), 1e-10, 1e-9, "encoder grad src");
        check_param_grads(m, "encoder");
    }
    SECTION("TransformerDecoderLayer with a causal target mask") {
        nn::TransformerDecoderLayer<double> m(8, 2, opts);
        load(m, "decoder");
        auto tgt = f.get<double, 3>("decoder.in.tgt").requires_grad_();
        auto memory = f.get<double, 3>("decoder.in.memory").requires_grad_();
        auto causal = Tensor<double, 2>::zeros({4, 4});
        for (index_t i = 0; i < 4; ++i)
            for (index_t j = i + 1; j < 4; ++j) causal(i, j) = -std::numeric_limits<double>::infinity();
        auto y = m(tgt, memory, causal);
        check_close(y, f.get<double, 3>("decoder.out"), 1e-12, 1e-10, "decoder out");
        sum(y * f.get<double, 3>("decoder.r")).backward();
        check_close(tgt.grad(), f.get<double, 3>("decoder.grad_in.tgt"), 1e-10, 1e-9, "decoder grad tgt");
        check_close(memory.grad(), f.get<double, 3>("decoder.grad_in.memory"), 1e-10, 1e-9, "decoder grad memory");
        check_param_grads(m, "decoder");
    }
}

TEST_CASE("nn BatchNorm2d matches PyTorch in training and evaluation") {
    const auto f = weft::test::fixture("nn");
    nn::BatchNorm2d<double> m(3);
    load(m, "bn");  // num_batches_tracked is int64 in the file
    CHECK(m.num_batches_tracked.item() == 3.0);
    auto x = f.get<double, 4>("bn.in.x").requires_grad_();
    auto y = m(x);
    check_close(y, f.get<double, 4>("bn.out"), 1e-12, 1e-10, "bn out");
    check_close(m.running_mean, f.get<double, 1>("bn.after.running_mean"), 1e-12, 1e-10, "bn running_mean");
    check_close(m.running_var, f.get<double, 1>("bn.after.running_var"), 1e-12, 1e-10, "bn running_var");
    CHECK(m.num_batches_tracked.item() == double(f.get<std::int64_t, 0>("bn.after.num_batches_tracked").item()));
    sum(y * f.get<double, 4>("bn.r")).backward();
    check_close(x.grad(), f.get<double, 4>("bn.grad_in.x"), 1e-10, 1e-9, "bn grad x");
    check_param_grads(m, "bn");
    m.eval();
    check_close(m(x.detach()), f.get<double, 4>("bn.eval_out"), 1e-12, 1e-10, "bn eval out");
}
