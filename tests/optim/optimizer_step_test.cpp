// Optimizer::step checks every parameter before it changes any (optim/optimizer.hpp), then hands
// them all to update_many: a refused step leaves parameters and state as they were.
#include <catch2/catch.hpp>

#include <weft/optim.hpp>

#include <cstring>

using namespace weft;
using Catch::Matchers::Contains;

TEST_CASE("step checks every parameter before it updates any") {
    auto a = Tensor<float, 1>::ones({3}).requires_grad_();
    auto b = Tensor<float, 1>::ones({2}).requires_grad_();
    optim::AdamW<float> opt({{"a", a}, {"b", b}}, {.lr = 0.1});
    sum(a).backward();
    sum(b).backward();
    opt.step();
    opt.zero_grad();

    // b is replaced by a tensor of another shape: its state no longer fits. a comes first in the
    // step; it must not move either.
    b = Tensor<float, 1>::ones({5}).requires_grad_();
    const Tensor<float, 1> a_before = a.detach().clone();
    const Tensor<float, 1> m_before = opt.state("a", "exp_avg").clone();
    sum(a).backward();
    sum(b).backward();
    CHECK_THROWS_WITH(opt.step(), Contains("the tensor was replaced"));
    CHECK(opt.state("a").step == 1);
    CHECK(std::memcmp(a.detach().data(), a_before.data(), 3 * sizeof(float)) == 0);
    CHECK(std::memcmp(opt.state("a", "exp_avg").data(), m_before.data(), 3 * sizeof(float)) == 0);
}
