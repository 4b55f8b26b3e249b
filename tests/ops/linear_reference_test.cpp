// linear and matmul against PyTorch (tests/reference/linear.py), forward and backward.
#include <weft/weft.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

TEST_CASE("linear and matmul match PyTorch") {
    auto f = weft::test::fixture("linear");
    auto x = f.get<double, 3>("x").requires_grad_();
    auto w = f.get<double, 2>("w").requires_grad_();
    auto b = f.get<double, 1>("b").requires_grad_();
    auto y = linear(x, w, b);
    check_close(y, f.get<double, 3>("y"), 1e-12, 1e-12, "linear forward");
    sum(y * f.get<double, 3>("r")).backward();
    check_close(x.grad(), f.get<double, 3>("gx"), 1e-12, 1e-12, "linear grad x");
    check_close(w.grad(), f.get<double, 2>("gw"), 1e-12, 1e-12, "linear grad w");
    check_close(b.grad(), f.get<double, 1>("gb"), 1e-12, 1e-12, "linear grad b");

    auto a = f.get<double, 3>("a").requires_grad_();
    auto m = f.get<double, 2>("m").requires_grad_();
    auto z = matmul(a, m);
    check_close(z, f.get<double, 3>("z"), 1e-12, 1e-12, "matmul forward");
    sum(z * f.get<double, 3>("rz")).backward();
    check_close(a.grad(), f.get<double, 3>("ga"), 1e-12, 1e-12, "matmul grad a");
    check_close(m.grad(), f.get<double, 2>("gm"), 1e-12, 1e-12, "matmul grad m");
}
