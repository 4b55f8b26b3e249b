// Zero-copy interop with Eigen and xtensor: views share memory both ways, with any strides.
#include <catch2/catch.hpp>
#include <weft/interop/eigen.hpp>
#include <weft/interop/xtensor.hpp>
#include <weft/weft.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xview.hpp>

using namespace weft;

TEST_CASE("as_eigen maps a matrix without copying, transposed views included", "[interop][eigen]") {
    auto w = Tensor<float, 2>::from({{1, 2, 3}, {4, 5, 6}});
    auto m = as_eigen(w);
    REQUIRE(m.rows() == 2);
    REQUIRE(m.cols() == 3);
    REQUIRE(m.data() == w.data());
    CHECK(m(1, 2) == 6.0f);
    m(0, 1) = 20.0f;  // writes through to the tensor
    CHECK(w(0, 1) == 20.0f);

    auto mt = as_eigen(w.t());
    REQUIRE(mt.rows() == 3);
    CHECK(mt(2, 1) == 6.0f);
    CHECK(mt(1, 0) == 20.0f);

    // Eigen arithmetic on weft memory equals weft's own result.
    auto x = Tensor<float, 1>::from({1, 1, 1});
    Eigen::VectorXf y = as_eigen(w) * as_eigen(x);
    Tensor<float, 1> ref = sum(w, 1);
    CHECK(y(0) == ref(0));
    CHECK(y(1) == ref(1));
}

TEST_CASE("as_eigen maps strided vectors", "[interop][eigen]") {
    auto v = Tensor<double, 1>::arange(10).slice(0, 1, 10, 3);  // 1, 4, 7
    auto e = as_eigen(v);
    REQUIRE(e.size() == 3);
    CHECK(e(0) == 1.0);
    CHECK(e(2) == 7.0);
    CHECK(e.sum() == 12.0);
}

TEST_CASE("from_eigen views column-major, row-major, blocks and vectors", "[interop][eigen]") {
    Eigen::MatrixXd a(2, 3);  // column-major
    a << 1, 2, 3, 4, 5, 6;
    auto t = from_eigen(a);
    REQUIRE(t.shape() == Shape<2>{2, 3});
    CHECK(t.strides() == Shape<2>{1, 2});
    CHECK(t(1, 2) == 6.0);
    t(0, 0) = -1.0;
    CHECK(a(0, 0) == -1.0);

    Eigen::Matrix<float, 3, 4, Eigen::RowMajor> r = Eigen::Matrix<float, 3, 4, Eigen::RowMajor>::Random();
    auto tr = from_eigen(r);
    CHECK(tr.strides() == Shape<2>{4, 1});
    CHECK(tr(2, 3) == r(2, 3));

    auto block = a.block(0, 1, 2, 2);
    auto tb = from_eigen(block);
    CHECK(tb.shape() == Shape<2>{2, 2});
    CHECK(tb(1, 1) == 6.0);

    Eigen::VectorXf v = Eigen::VectorXf::LinSpaced(5, 0, 4);
    auto tv = from_eigen(v);
    REQUIRE(tv.shape() == Shape<1>{5});
    Tensor<float, 1> doubled = tv * 2.0f;
    CHECK(doubled(4) == 8.0f);
}

TEST_CASE("as_xtensor adapts any rank and strides without copying", "[interop][xtensor]") {
    auto x = Tensor<float, 3>::rand({2, 3, 4});
    auto v = as_xtensor(x);
    REQUIRE(v.dimension() == 3);
    CHECK(v.data() == x.data());
    CHECK(v(1, 2, 3) == x(1, 2, 3));
    CHECK(xt::sum(v)() == Approx(sum(x).item()).epsilon(1e-6));

    auto p = x.permute(2, 0, 1);
    auto vp = as_xtensor(p);
    CHECK(vp.shape()[0] == 4);
    CHECK(vp(3, 1, 2) == x(1, 2, 3));
    vp(0, 0, 0) = 42.0f;
    CHECK(x(0, 0, 0) == 42.0f);
}

TEST_CASE("from_xtensor views xtensor containers", "[interop][xtensor]") {
    xt::xtensor<double, 2> a = xt::ones<double>({3, 4});
    auto t = from_xtensor(a);
    REQUIRE(t.shape() == Shape<2>{3, 4});
    t(1, 1) = 5.0;
    CHECK(a(1, 1) == 5.0);
    Tensor<double, 0> s = sum(t);
    CHECK(s.item() == 16.0);

    xt::xtensor<float, 3> b = xt::reshape_view(xt::arange<float>(24), {2, 3, 4});
    auto tb = from_xtensor(b);
    CHECK(tb(1, 2, 3) == 23.0f);
}
