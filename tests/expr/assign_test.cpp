// Assigning expressions to tensors (weft/expr/assign.hpp): views, broadcasting into the
// destination, allocation, errors, and aliasing between the destination and the operands.
#include <catch2/catch.hpp>

#include <cstdint>
#include <sstream>
#include <type_traits>
#include <vector>

#include <weft/weft.hpp>

#include "support/tensor_values.hpp"

using namespace weft;
using weft::test::iota;
using weft::test::logical_values;
using Catch::Contains;

namespace {

}  // namespace

TEST_CASE("assignment writes into a slice and leaves the rest alone") {
    auto y = Tensor<float, 2>::zeros({4, 5});
    auto x = iota(Shape<2>{4, 2});
    y.slice(1, 1, 5, 2) = x * 10.0f;  // columns 1 and 3
    REQUIRE(logical_values(y) == std::vector<float>{0, 0, 0, 10, 0,   //
                                                    0, 20, 0, 30, 0,  //
                                                    0, 40, 0, 50, 0,  //
                                                    0, 60, 0, 70, 0});
    y.slice(0, -1, 4) = -1.0f;  // a number fills the last row
    REQUIRE(logical_values(y[3]) == std::vector<float>{-1, -1, -1, -1, -1});
    REQUIRE(y(2, 3) == 50.0f);
    // Through a named view: the view's elements change, not the handle.
    auto col = y.select(1, 0);
    col = x.select(1, 1) + 100.0f;
    REQUIRE(logical_values(y.select(1, 0)) == std::vector<float>{101, 103, 105, 107});
    REQUIRE(same_storage(col.storage(), y.storage()));
    // A transposed destination.
    auto sq = Tensor<float, 2>::zeros({3, 3});
    sq.t() = iota(Shape<2>{3, 3});
    REQUIRE(logical_values(sq) == std::vector<float>{0, 3, 6, 1, 4, 7, 2, 5, 8});
}

TEST_CASE("expressions broadcast into the destination") {
    auto y = Tensor<float, 3>::zeros({2, 3, 4});
    auto row = iota(Shape<1>{4});
    y = row + 1.0f;  // [4] -> [2, 3, 4]
    for (index_t i = 0; i < 2; ++i)
        for (index_t j = 0; j < 3; ++j)
            for (index_t k = 0; k < 4; ++k) REQUIRE(y(i, j, k) == float(k + 1));
    auto col = iota(Shape<2>{3, 1});
    y = col * 2.0f;  // [3, 1] -> [2, 3, 4]
    REQUIRE(y(1, 2, 3) == 4.0f);
    REQUIRE(y(0, 1, 0) == 2.0f);
    // A tensor of another rank is an expression too: it is copied with broadcasting.
    y = iota(Shape<2>{1, 4});
    REQUIRE(y(1, 2, 3) == 3.0f);
    // A rank-0 value fills everything.
    auto s = sum(iota(Shape<1>{4}));  // 0 + 1 + 2 + 3
    y = s;
    for (float v : logical_values(y)) REQUIRE(v == 6.0f);
    y = s * 0.5f;
    REQUIRE(y(1, 1, 1) == 3.0f);
    // Numbers of any arithmetic type convert to the element type.
    auto i = Tensor<std::int32_t, 1>::zeros({3});
    i = 7;
    REQUIRE(logical_values(i) == std::vector<std::int32_t>{7, 7, 7});
    auto b = Tensor<bool, 1>::zeros({2});
    b = true;
    REQUIRE(b(1));
    auto h = Tensor<bf16, 1>::zeros({2});
    h = 1.5;
    REQUIRE(h(0).bits == bf16(1.5f).bits);
}

TEST_CASE("an empty handle is allocated with the expression's shape") {
    Tensor<float, 2> y;
    REQUIRE_FALSE(y.defined());
    auto a = iota(Shape<2>{3, 1});
    auto b = iota(Shape<1>{4});
    y = a + b;
    REQUIRE(y.defined());
    REQUIRE(y.shape() == Shape<2>{3, 4});
    REQUIRE(y.is_contiguous());
    REQUIRE(y(2, 3) == 5.0f);

    // A lower-rank expression into an empty higher-rank handle gets leading 1s.
    Tensor<float, 3> z;
    z = b * 2.0f;
    REQUIRE(z.shape() == Shape<3>{1, 1, 4});
    REQUIRE(z(0, 0, 3) == 6.0f);

    // Construction from an expression allocates too.
    Tensor<double, 2> w = cast<double>(a) / 2.0;
    REQUIRE(w.shape() == Shape<2>{3, 1});
    REQUIRE(w(2, 0) == 1.0);
    // An empty expression allocates an empty tensor.
    Tensor<float, 2> e = Tensor<float, 2>::zeros({0, 3}) + 1.0f;
    REQUIRE(e.defined());
    REQUIRE(e.shape() == Shape<2>{0, 3});
}

TEST_CASE("assignment with mismatched shapes throws naming both") {
    auto y = Tensor<float, 2>::zeros({3, 4});
    auto bad = Tensor<float, 1>::zeros({3});
    REQUIRE_THROWS_WITH(y = bad * 2.0f, Contains("[3]") && Contains("[3, 4]"));
    REQUIRE_THROWS_WITH((y = Tensor<float, 2>::zeros({4, 4}) + 1.0f), Contains("[4, 4]") && Contains("[3, 4]"));
    // The destination never grows: [3, 1] cannot receive a [3, 4] expression.
    auto narrow = Tensor<float, 2>::zeros({3, 1});
    REQUIRE_THROWS_AS(narrow = y + 1.0f, Error);
    REQUIRE_THROWS_AS(y.slice(1, 0, 2) = y + 1.0f, Error);
    // Nothing was written by the failed assignments.
    for (float v : logical_values(y)) REQUIRE(v == 0.0f);
}

TEST_CASE("x = x.t() on a square matrix gives the true transpose") {
    // As a handle assignment, x becomes the transposed view.
    auto x = iota(Shape<2>{4, 4});
    x = x.t();
    REQUIRE(logical_values(x) == logical_values(iota(Shape<2>{4, 4}).t()));

    // As an element write into the same memory, the operand is read before it is overwritten.
    auto y = iota(Shape<2>{4, 4});
    const auto expected = logical_values(y.t());
    y = y.t() + 0.0f;
    REQUIRE(y.is_contiguous());
    REQUIRE(logical_values(y) == expected);

    auto z = iota(Shape<2>{5, 5});
    z = z.t() * 2.0f - z;  // both layouts of the same memory in one expression
    for (index_t i = 0; i < 5; ++i)
        for (index_t j = 0; j < 5; ++j) REQUIRE(z(i, j) == 2.0f * float(j * 5 + i) - float(i * 5 + j));

    // Writing into a view of a tensor from the tensor's own transpose.
    auto w = iota(Shape<2>{3, 3});
    w.slice(0, 0, 3) = w.t();
    REQUIRE(logical_values(w) == std::vector<float>{0, 3, 6, 1, 4, 7, 2, 5, 8});
}

TEST_CASE("x = 2x + 1 in place reads each element before writing it") {
    auto x = iota(Shape<2>{64, 33});
    const auto before = x.data();
    x = x * 2.0f + 1.0f;
    REQUIRE(x.data() == before);  // same memory, no reallocation
    for (index_t i = 0; i < 64; ++i)
        for (index_t j = 0; j < 33; ++j) REQUIRE(x(i, j) == 2.0f * float(i * 33 + j) + 1.0f);
    // On a strided view of itself.
    auto v = x.slice(1, 0, 33, 3);
    v = v - 1.0f;
    REQUIRE(x(3, 3) == 2.0f * float(3 * 33 + 3));
    REQUIRE(x(3, 4) == 2.0f * float(3 * 33 + 4) + 1.0f);
}

TEST_CASE("overlapping shifted slices copy as if through a temporary") {
    // Shift right by one: a naive front-to-back loop would smear element 0 everywhere.
    auto y = iota(Shape<1>{10});
    y.slice(0, 1, 10) = y.slice(0, 0, 9);
    REQUIRE(logical_values(y) == std::vector<float>{0, 0, 1, 2, 3, 4, 5, 6, 7, 8});
    // Shift left by one.
    auto z = iota(Shape<1>{10});
    z.slice(0, 0, 9) = z.slice(0, 1, 10);
    REQUIRE(logical_values(z) == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 9});
    // Rows of a matrix, shifted down, through an expression.
    auto m = iota(Shape<2>{4, 3});
    m.slice(0, 1, 4) = m.slice(0, 0, 3) * 1.0f;
    REQUIRE(logical_values(m) == std::vector<float>{0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8});
    // A stride-0 view of its own first row, broadcast over every row (the row is read as it is
    // being written only if no temporary is used).
    auto b = iota(Shape<2>{3, 4});
    b = b[2] + b[0];
    REQUIRE(logical_values(b) == std::vector<float>{8, 10, 12, 14, 8, 10, 12, 14, 8, 10, 12, 14});
    // Columns shifted within a row-major matrix.
    auto c = iota(Shape<2>{2, 5});
    c.slice(1, 1, 5) = c.slice(1, 0, 4) + 0.0f;
    REQUIRE(logical_values(c) == std::vector<float>{0, 0, 1, 2, 3, 5, 5, 6, 7, 8});
}

TEST_CASE("rank-0 results and eval") {
    auto x = iota(Shape<2>{2, 3});
    auto total = sum(x);  // Tensor<float, 0>
    auto r = eval(total * 2.0f + 1.0f);
    STATIC_REQUIRE(std::is_same_v<decltype(r), Tensor<float, 0>>);
    REQUIRE(r.item() == 31.0f);
    REQUIRE(r() == 31.0f);
    Tensor<float, 0> s;
    s = total - 15.0f;
    REQUIRE(s.item() == 0.0f);
    // A rank-0 destination receives a rank-0 expression in place.
    auto d = Tensor<float, 0>::full({}, 1.0f);
    const auto p = d.data();
    d = d + total;
    REQUIRE(d.data() == p);
    REQUIRE(d.item() == 16.0f);
    // eval always returns a fresh dense tensor.
    auto e = eval(x.t());
    REQUIRE(e.is_contiguous());
    REQUIRE_FALSE(same_storage(e.storage(), x.storage()));
    REQUIRE(logical_values(e) == logical_values(x.t()));
    // A comparison evaluates to bool, an int expression to int.
    auto m = eval(x > 2.0f);
    STATIC_REQUIRE(std::is_same_v<decltype(m), Tensor<bool, 2>>);
    REQUIRE(logical_values(m) == std::vector<bool>{false, false, false, true, true, true});
}

TEST_CASE("printing an expression prints its value") {
    auto x = Tensor<float, 1>::from({1.0f, -2.0f});
    std::ostringstream os;
    os << abs(x) * 2.0f;
    REQUIRE(os.str() == "tensor([2.0000, 4.0000], dtype=float32, shape=[2])");
}
