// Printing tensors (weft/core/format.hpp): PyTorch's layout with dtype and shape appended.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <weft/core.hpp>

#include "support/tensor_values.hpp"

using namespace weft;
using weft::test::iota;
using Catch::Contains;

namespace {

template <class T, int R>
std::string str(const Tensor<T, R>& t) {
    std::ostringstream os;
    os << t;
    return os.str();
}

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
    return n;
}

}  // namespace

TEST_CASE("format: the documented float matrix example") {
    auto x = Tensor<float, 2>::from({{0.1f, 2.0f}, {3.0f, 4.5f}});
    REQUIRE(str(x) ==
            "tensor([[0.1000, 2.0000],\n"
            "        [3.0000, 4.5000]], dtype=float32, shape=[2, 2])");
}

TEST_CASE("format: one width for all entries and nested blocks") {
    auto v = Tensor<double, 1>::from({-1.5, 20.25, 3});
    REQUIRE(str(v) == "tensor([-1.5000, 20.2500,  3.0000], dtype=float64, shape=[3])");

    auto c = iota<std::int64_t>(Shape<3>{2, 2, 3});
    REQUIRE(str(c) ==
            "tensor([[[ 0,  1,  2],\n"
            "         [ 3,  4,  5]],\n"
            "\n"
            "        [[ 6,  7,  8],\n"
            "         [ 9, 10, 11]]], dtype=int64, shape=[2, 2, 3])");
}

TEST_CASE("format: bool int uint8 and 16-bit float dtypes") {
    REQUIRE(str(Tensor<bool, 1>::from({true, false, true})) ==
            "tensor([ True, False,  True], dtype=bool, shape=[3])");
    REQUIRE(str(Tensor<std::int32_t, 2>::from({{-3, 10}, {7, 0}})) ==
            "tensor([[-3, 10],\n"
            "        [ 7,  0]], dtype=int32, shape=[2, 2])");
    REQUIRE(str(Tensor<std::uint8_t, 1>::from({0, 255, 7})) == "tensor([  0, 255,   7], dtype=uint8, shape=[3])");
    REQUIRE(str(Tensor<bf16, 1>::from({bf16(1.5f), bf16(-2.0f)})) ==
            "tensor([ 1.5000, -2.0000], dtype=bfloat16, shape=[2])");
    REQUIRE(str(Tensor<half, 1>::from({half(0.25f)})) == "tensor([0.2500], dtype=float16, shape=[1])");
}

TEST_CASE("format: rank 0 empty undefined and special values") {
    REQUIRE(str(Tensor<float, 0>::full({}, 3.5f)) == "tensor(3.5000, dtype=float32, shape=[])");
    REQUIRE(str(Tensor<float, 2>::zeros({0, 3})) == "tensor([], dtype=float32, shape=[0, 3])");
    REQUIRE(str(Tensor<float, 2>{}) == "tensor(undefined, dtype=float32)");

    const float inf = std::numeric_limits<float>::infinity();
    auto s = Tensor<float, 1>::from({std::nanf(""), inf, -inf, 1.0f});
    REQUIRE(str(s) == "tensor([   nan,    inf,   -inf, 1.0000], dtype=float32, shape=[4])");

    // Very large and very small magnitudes switch to scientific notation.
    auto sci = Tensor<float, 1>::from({1e-5f, 1e9f, 0.0f});
    REQUIRE(str(sci) == "tensor([1.0000e-05, 1.0000e+09,     0.0000], dtype=float32, shape=[3])");
}

TEST_CASE("format: views print in logical order") {
    auto m = iota<float>(Shape<2>{2, 3});
    REQUIRE(str(m.t()) ==
            "tensor([[0.0000, 3.0000],\n"
            "        [1.0000, 4.0000],\n"
            "        [2.0000, 5.0000]], dtype=float32, shape=[3, 2])");
    REQUIRE(str(m.slice(1, 1, 3, 1)[1]) == "tensor([4.0000, 5.0000], dtype=float32, shape=[2])");
    REQUIRE(str(iota<std::int32_t>(Shape<1>{2}).expand(2, 2)) ==
            "tensor([[0, 1],\n"
            "        [0, 1]], dtype=int32, shape=[2, 2])");
}

TEST_CASE("format: more than 1000 elements are summarised") {
    auto v = iota<std::int64_t>(Shape<1>{2000});
    REQUIRE(str(v) == "tensor([   0,    1,    2, ..., 1997, 1998, 1999], dtype=int64, shape=[2000])");

    // Exactly 1000 elements: printed in full.
    const std::string full = str(iota<std::int64_t>(Shape<1>{1000}));
    REQUIRE(count(full, "...") == 0);
    REQUIRE(count(full, ",") == 999 + 2);  // 999 between entries, 2 before dtype and shape
    REQUIRE(full.find(" 500,") != std::string::npos);

    // 2-d: rows and columns both summarised; the width comes from the shown entries only.
    const std::string m = str(iota<std::int32_t>(Shape<2>{40, 40}));
    REQUIRE(m ==
            "tensor([[   0,    1,    2, ...,   37,   38,   39],\n"
            "        [  40,   41,   42, ...,   77,   78,   79],\n"
            "        [  80,   81,   82, ...,  117,  118,  119],\n"
            "        ...,\n"
            "        [1480, 1481, 1482, ..., 1517, 1518, 1519],\n"
            "        [1520, 1521, 1522, ..., 1557, 1558, 1559],\n"
            "        [1560, 1561, 1562, ..., 1597, 1598, 1599]], dtype=int32, shape=[40, 40])");

    // An axis of six or fewer is never cut, even in a big tensor.
    const std::string tall = str(iota<std::int32_t>(Shape<2>{6, 300}));
    REQUIRE(count(tall, "\n") == 5);
    REQUIRE(count(tall, "...") == 6);
    REQUIRE_THAT(tall, Contains("[1500, 1501, 1502, ..., 1797, 1798, 1799]]"));
}
