#include <catch2/catch.hpp>

#include <weft/autograd.hpp>
#include <weft/ops/matmul.hpp>

using namespace weft;

TEST_CASE("backward of a fused expression sums broadcast gradients") {
    auto a = Tensor<double, 2>::from({{1, 2, 3}, {4, 5, 6}}).requires_grad_();
    auto b = Tensor<double, 1>::from({10, 20, 30}).requires_grad_();
    Tensor<double, 2> y = a * b + exp(a);
    auto loss = sum(y);
    loss.backward();
    auto ga = a.grad();
    auto gb = b.grad();
    REQUIRE(ga.defined());
    CHECK(ga(0, 0) == Approx(10 + std::exp(1.0)));
    CHECK(ga(1, 2) == Approx(30 + std::exp(6.0)));
    CHECK(gb(0) == Approx(5));
    CHECK(gb(2) == Approx(9));
}

TEST_CASE("gradients accumulate across backward calls") {
    auto x = Tensor<double, 1>::from({1, 2}).requires_grad_();
    sum(x * x).backward();
    sum(x * x).backward();
    CHECK(x.grad()(1) == Approx(8));
    autograd::clear_grad(x);
    CHECK(!x.grad().defined());
}

TEST_CASE("NoGrad records nothing and detach cuts the graph") {
    auto x = Tensor<double, 1>::from({1, 2}).requires_grad_();
    {
        NoGrad no_grad;
        Tensor<double, 1> y = x * 2;
        CHECK(!y.requires_grad());
    }
    Tensor<double, 1> z = x.detach() * 2;
    CHECK(!z.requires_grad());
    Tensor<double, 1> w = x * 2;
    CHECK(w.requires_grad());
}

TEST_CASE("views pass gradients back to their base") {
    auto x = Tensor<double, 2>::from({{1, 2, 3}, {4, 5, 6}}).requires_grad_();
    auto loss = eval(sum(x.t().slice(0, 1, 3) * x.t().slice(0, 1, 3)) + sum(x[1]));
    loss.backward();
    auto g = x.grad();
    CHECK(g(0, 0) == Approx(0));
    CHECK(g(0, 1) == Approx(4));
    CHECK(g(1, 0) == Approx(1));
    CHECK(g(1, 2) == Approx(13));
}

TEST_CASE("reductions and expand differentiate") {
    auto x = Tensor<double, 2>::randn({3, 4}).requires_grad_();
    auto r1 = gradcheck([](const auto& x) { return eval(x - max(x, {1}, keepdim)); }, x);
    INFO(r1.message);
    CHECK(r1.ok);
    auto r2 = gradcheck([](const auto& x) { return var(x, {0}); }, x);
    INFO(r2.message);
    CHECK(r2.ok);
    auto r3 = gradcheck([](const auto& x) { return eval(x.unsqueeze(0).expand(2, -1, -1) * 3.0); }, x);
    INFO(r3.message);
    CHECK(r3.ok);
    auto r4 = gradcheck([](const auto& x) { return mean(x.t().reshape(2, 6), {1}); }, x);
    INFO(r4.message);
    CHECK(r4.ok);
}

TEST_CASE("second backward through a freed graph is an error") {
    auto x = Tensor<double, 1>::from({1, 2}).requires_grad_();
    Tensor<double, 1> y = exp(x);
    auto loss = sum(y);
    loss.backward();
    CHECK_THROWS_WITH(loss.backward(), Catch::Contains("already freed"));
}

TEST_CASE("writing a differentiable expression into an existing tensor is an error") {
    auto x = Tensor<double, 1>::from({1, 2}).requires_grad_();
    auto y = Tensor<double, 1>::zeros({2});
    CHECK_THROWS_WITH(y = x * 2, Catch::Contains("existing tensor"));
}

// A view of a view links straight to the first tensor that is not a view (autograd/tape.hpp):
// the split of a packed projection into heads, as multi-head attention does it.
TEST_CASE("chains of views send exact gradients to their base", "[gradcheck]") {
    const index_t N = 2, L = 3, H = 2, hd = 2, E = H * hd;
    auto w = Tensor<double, 2>::randn({E, 3 * E}).requires_grad_();
    auto x = Tensor<double, 3>::randn({N, L, E});
    auto heads = [&](const Tensor<double, 3>& t) { return t.reshape(N, L, H, hd).permute(0, 2, 1, 3); };
    auto split = [&](const auto& w) {
        const Tensor<double, 3> qkv = matmul(x.reshape(N * L, E), w).reshape(N, L, 3 * E);  // dense base
        auto q = heads(qkv.narrow(2, 0, E)), k = heads(qkv.narrow(2, E, E)), v = heads(qkv.narrow(2, 2 * E, E));
        return eval(q * k * 2.0 + exp(v) + sum(q.transpose(2, 3), {2}, keepdim).transpose(2, 3));
    };
    auto r = gradcheck(split, w);
    INFO(r.message);
    CHECK(r.ok);

    // Views of a strided base (a transpose), of an expand (positions shared), and of a copy.
    auto y = Tensor<double, 2>::randn({3, 4}).requires_grad_();
    auto r2 = gradcheck([](const auto& y) { return eval(y.t().narrow(0, 1, 2).reshape(6).narrow(0, 1, 4) * 3.0); }, y);
    INFO(r2.message);
    CHECK(r2.ok);
    auto r3 = gradcheck([](const auto& y) { return eval(y.unsqueeze(0).expand(2, -1, -1).permute(2, 0, 1).narrow(0, 1, 2)); }, y);
    INFO(r3.message);
    CHECK(r3.ok);
    auto r4 = gradcheck([](const auto& y) { return eval(exp(y.clone().t().narrow(1, 1, 2).contiguous().reshape(8))); }, y);
    INFO(r4.message);
    CHECK(r4.ok);
}

TEST_CASE("a view's gradient adds into a base gradient another op already shares") {
    auto x = Tensor<double, 1>::from({1, 2, 3, 4}).requires_grad_();
    Tensor<double, 1> y = x * 1.0;             // y's gradient arrives first from the sum, shared
    auto loss = eval(sum(y) + sum(y.narrow(0, 1, 2) * 5.0));
    loss.backward();
    auto g = x.grad();
    CHECK(g(0) == Approx(1));
    CHECK(g(1) == Approx(6));
    CHECK(g(2) == Approx(6));
    CHECK(g(3) == Approx(1));
}

TEST_CASE("retain_grad on a view keeps the gradients of views taken after it") {
    auto x = Tensor<double, 2>::from({{1, 2}, {3, 4}}).requires_grad_();
    Tensor<double, 2> y = x * 1.0;
    auto middle = y.t();
    middle.retain_grad();
    auto loss = sum(middle.narrow(0, 1, 1) * 2.0);
    loss.backward();
    CHECK(middle.grad()(1, 0) == Approx(2));
    CHECK(middle.grad()(0, 0) == Approx(0));
    CHECK(x.grad()(0, 1) == Approx(2));

    auto x2 = Tensor<double, 2>::from({{1, 2}, {3, 4}}).requires_grad_();
    Tensor<double, 2> y2 = x2 * 1.0;
    auto middle2 = y2.t();
    auto later = middle2.narrow(0, 1, 1);  // links past middle2, to y2
    CHECK_THROWS_WITH(middle2.retain_grad(), Catch::Contains("before taking views"));
    CHECK(later.requires_grad());
}
