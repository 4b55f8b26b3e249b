#include <catch2/catch.hpp>

#include <weft/autograd.hpp>

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
