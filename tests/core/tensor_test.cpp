// Shape, Tensor factories, views, copies and element access (weft/core/tensor.hpp).
//
// Values are read back with `logical_values` below, which walks shape/strides/data() itself,
// so these tests do not trust weft's own copy routines to check weft's views.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <vector>

#include <weft/core.hpp>

#include "support/tensor_values.hpp"

using namespace weft;
using weft::test::iota;
using weft::test::logical_values;
using Catch::Contains;

namespace {

template <class T>
std::vector<T> vec(std::initializer_list<T> v) {
    return v;
}

}  // namespace

// ---- Shape -------------------------------------------------------------------------------------

TEST_CASE("Shape: numel and rank") {
    Shape<3> s{2, 3, 4};
    REQUIRE(s.numel() == 24);
    REQUIRE(Shape<3>::size() == 3);
    REQUIRE(Shape<1>{7}.numel() == 7);
    REQUIRE(Shape<0>{}.numel() == 1);  // a scalar has one element
    REQUIRE(Shape<2>{5, 0}.numel() == 0);
    // Deduction guide: the rank is the number of extents.
    Shape deduced{1, 2, 3, 4};
    STATIC_REQUIRE(decltype(deduced)::rank == 4);
}

TEST_CASE("Shape: at() with negative axes and its errors") {
    Shape<3> s{2, 3, 4};
    REQUIRE(s.at(0) == 2);
    REQUIRE(s.at(2) == 4);
    REQUIRE(s.at(-1) == 4);
    REQUIRE(s.at(-3) == 2);
    REQUIRE_THROWS_AS(s.at(3), Error);
    REQUIRE_THROWS_WITH(s.at(-4), Contains("axis -4") && Contains("rank 3"));
}

TEST_CASE("Shape: equality printing and from()") {
    REQUIRE(Shape<2>{2, 3} == Shape<2>{2, 3});
    REQUIRE_FALSE(Shape<2>{2, 3} == Shape<2>{3, 2});
    REQUIRE(Shape<0>{} == Shape<0>{});
    REQUIRE(Shape<3>{2, 3, 4}.str() == "[2, 3, 4]");
    REQUIRE(Shape<1>{5}.str() == "[5]");
    REQUIRE(Shape<0>{}.str() == "[]");
    std::ostringstream os;
    os << Shape<2>{10, 0};
    REQUIRE(os.str() == "[10, 0]");

    REQUIRE(Shape<2>::from({4, 5}) == Shape<2>{4, 5});
    REQUIRE_THROWS_WITH(Shape<2>::from({1, 2, 3}), Contains("rank-2") && Contains("got 3"));
}

TEST_CASE("contiguous_strides are row-major") {
    REQUIRE(contiguous_strides(Shape<3>{2, 3, 4}) == Shape<3>{12, 4, 1});
    REQUIRE(contiguous_strides(Shape<1>{9}) == Shape<1>{1});
    // A size-1 axis does not scale the strides of the axes before it.
    REQUIRE(contiguous_strides(Shape<3>{2, 1, 5}) == Shape<3>{5, 5, 1});
}

// ---- factories ---------------------------------------------------------------------------------

TEST_CASE("Tensor factories: empty zeros ones full") {
    Tensor<float, 2> undefined;
    REQUIRE_FALSE(undefined.defined());
    REQUIRE(undefined.numel() == 0);

    auto e = Tensor<double, 3>::empty({2, 3, 4});
    REQUIRE(e.defined());
    REQUIRE(e.shape() == Shape<3>{2, 3, 4});
    REQUIRE(e.strides() == Shape<3>{12, 4, 1});
    REQUIRE(e.is_contiguous());
    REQUIRE(e.offset() == 0);
    REQUIRE(e.storage().bytes() == 24 * sizeof(double));
    REQUIRE(reinterpret_cast<std::uintptr_t>(e.data()) % 64 == 0);  // cache-line aligned

    auto z = Tensor<float, 2>::zeros({3, 5});
    for (float v : logical_values(z)) REQUIRE(v == 0.0f);
    auto o = Tensor<std::int32_t, 1>::ones({4});
    REQUIRE(logical_values(o) == vec<std::int32_t>({1, 1, 1, 1}));
    auto f = Tensor<double, 2>::full({2, 2}, -2.5);
    REQUIRE(logical_values(f) == vec<double>({-2.5, -2.5, -2.5, -2.5}));
    auto b = Tensor<bool, 1>::full({3}, true);
    REQUIRE(logical_values(b) == std::vector<bool>{true, true, true});
    auto h = Tensor<half, 1>::ones({2});
    REQUIRE(h(0).bits == 0x3c00);
    auto bf = Tensor<bf16, 1>::full({2}, bf16(-2.0f));
    REQUIRE(bf(1).bits == 0xc000);

    // Zero-sized tensors are defined and empty.
    auto none = Tensor<float, 2>::zeros({0, 4});
    REQUIRE(none.defined());
    REQUIRE(none.numel() == 0);
    REQUIRE(none.size(1) == 4);

    REQUIRE_THROWS_WITH((Tensor<float, 2>::empty({2, -1})), Contains("[2, -1]"));
}

TEST_CASE("Tensor::arange: integer and fractional steps and empty ranges") {
    REQUIRE(logical_values(Tensor<std::int64_t, 1>::arange(5)) == vec<std::int64_t>({0, 1, 2, 3, 4}));
    REQUIRE(logical_values(Tensor<std::int32_t, 1>::arange(2, 11, 3)) == vec<std::int32_t>({2, 5, 8}));

    // numpy: arange(0, 1, 0.1) has 10 elements; arange(0, 1.05, 0.25) has 5.
    auto tenth = Tensor<double, 1>::arange(0.0, 1.0, 0.1);
    REQUIRE(tenth.numel() == 10);
    for (index_t i = 0; i < 10; ++i) REQUIRE(tenth(i) == Approx(0.1 * double(i)).margin(1e-15));
    auto quarter = Tensor<float, 1>::arange(0.0, 1.05, 0.25);
    REQUIRE(logical_values(quarter) == vec<float>({0.0f, 0.25f, 0.5f, 0.75f, 1.0f}));

    // Negative steps count down; stop is excluded.
    REQUIRE(logical_values(Tensor<float, 1>::arange(1.0, -1.0, -0.5)) == vec<float>({1.0f, 0.5f, 0.0f, -0.5f}));

    // Empty ranges: stop before start for a positive step, and start == stop.
    REQUIRE(Tensor<float, 1>::arange(3.0, 1.0).numel() == 0);
    REQUIRE(Tensor<float, 1>::arange(2.0, 2.0, 0.5).numel() == 0);
    REQUIRE(Tensor<float, 1>::arange(0).numel() == 0);
    REQUIRE(Tensor<float, 1>::arange(0.0, 1.0, -1.0).numel() == 0);

    REQUIRE_THROWS_WITH((Tensor<float, 1>::arange(0.0, 1.0, 0.0)), Contains("step"));
}

TEST_CASE("Tensor::from_vector copies and checks the element count") {
    std::vector<float> v{1, 2, 3, 4, 5, 6};
    auto t = Tensor<float, 2>::from_vector(v, {2, 3});
    REQUIRE(t(1, 0) == 4.0f);
    v[3] = 100.0f;  // a copy: the tensor does not see later changes
    REQUIRE(t(1, 0) == 4.0f);

    auto b = Tensor<bool, 1>::from_vector({true, false, true}, {3});
    REQUIRE(logical_values(b) == std::vector<bool>{true, false, true});

    REQUIRE_THROWS_AS((Tensor<float, 2>::from_vector({1, 2, 3, 4, 5}, {2, 3})), Error);
    REQUIRE_THROWS_WITH((Tensor<float, 2>::from_vector({1, 2, 3, 4, 5}, {2, 3})),
                        Contains("[2, 3]") && Contains("5 values"));
}

TEST_CASE("Tensor::from infers the shape from nested lists") {
    auto m = Tensor<float, 2>::from({{1, 2, 3}, {4, 5, 6}});
    REQUIRE(m.shape() == Shape<2>{2, 3});
    REQUIRE(logical_values(m) == vec<float>({1, 2, 3, 4, 5, 6}));

    auto v = Tensor<std::int64_t, 1>::from({7, 8});
    REQUIRE(v.shape() == Shape<1>{2});
    REQUIRE(v(1) == 8);

    auto c = Tensor<double, 3>::from({{{1}, {2}}, {{3}, {4}}, {{5}, {6}}});
    REQUIRE(c.shape() == Shape<3>{3, 2, 1});
    REQUIRE(c(2, 1, 0) == 6.0);

    REQUIRE_THROWS_WITH((Tensor<float, 2>::from({{1, 2, 3}, {4, 5}})), Contains("ragged"));
    REQUIRE_THROWS_WITH((Tensor<float, 2>::from({{1, 2}, {3, 4, 5}})), Contains("ragged"));
    REQUIRE_THROWS_AS((Tensor<float, 3>::from({{{1, 2}, {3, 4}}, {{5, 6}, {7}}})), Error);
    REQUIRE_THROWS_AS((Tensor<float, 2>::from({{}, {1}})), Error);
}

TEST_CASE("Tensor::wrap views external memory without copying") {
    std::vector<float> buf{0, 1, 2, 3, 4, 5};
    auto t = Tensor<float, 2>::wrap(buf.data(), {2, 3});
    REQUIRE(t.data() == buf.data());
    REQUIRE(t(1, 2) == 5.0f);
    t(0, 1) = 42.0f;
    REQUIRE(buf[1] == 42.0f);
    buf[4] = -1.0f;
    REQUIRE(t(1, 1) == -1.0f);

    // Explicit strides: a column-major view of the same buffer.
    auto cm = Tensor<float, 2>::wrap(buf.data(), {3, 2}, {1, 3});
    REQUIRE(cm(2, 1) == buf[2 + 3]);
    REQUIRE(cm(1, 0) == buf[1]);
    REQUIRE_FALSE(cm.is_contiguous());

    // With an owner, the view keeps the lender alive.
    auto owner = std::make_shared<std::vector<double>>(std::vector<double>{1.5, 2.5, 3.5});
    std::weak_ptr<std::vector<double>> watch = owner;
    {
        auto w = Tensor<double, 1>::wrap(owner->data(), {3}, owner);
        owner.reset();
        REQUIRE_FALSE(watch.expired());
        REQUIRE(w(2) == 3.5);
    }
    REQUIRE(watch.expired());
}

// ---- views -------------------------------------------------------------------------------------

TEST_CASE("slice: Python bounds and steps") {
    auto x = iota(Shape<1>{10});
    REQUIRE(logical_values(x.slice(0, 2, 5)) == vec<float>({2, 3, 4}));
    REQUIRE(logical_values(x.slice(0, -3, 10)) == vec<float>({7, 8, 9}));
    REQUIRE(logical_values(x.slice(0, -4, -1)) == vec<float>({6, 7, 8}));
    REQUIRE(logical_values(x.slice(0, 1, 10, 3)) == vec<float>({1, 4, 7}));
    REQUIRE(logical_values(x.slice(0, 0, 10, 4)) == vec<float>({0, 4, 8}));
    REQUIRE(logical_values(x.slice(0, -100, 2)) == vec<float>({0, 1}));  // clamped like Python
    REQUIRE(logical_values(x.slice(0, 8, 100)) == vec<float>({8, 9}));
    REQUIRE(x.slice(0, 5, 2).numel() == 0);  // stop before start: empty
    REQUIRE(x.slice(0, 5, 2).shape() == Shape<1>{0});

    auto m = iota(Shape<2>{3, 4});
    auto cols = m.slice(-1, 1, 4, 2);  // columns 1 and 3
    REQUIRE(cols.shape() == Shape<2>{3, 2});
    REQUIRE(cols.strides() == Shape<2>{4, 2});
    REQUIRE(cols.offset() == 1);
    REQUIRE(logical_values(cols) == vec<float>({1, 3, 5, 7, 9, 11}));
    REQUIRE_FALSE(cols.is_contiguous());

    REQUIRE_THROWS_WITH(x.slice(0, 0, 5, 0), Contains("step"));
    REQUIRE_THROWS_WITH(x.slice(0, 0, 5, -1), Contains("step"));
    REQUIRE_THROWS_AS(m.slice(2, 0, 1), Error);
}

TEST_CASE("views share storage: writes through a view are visible") {
    auto m = iota(Shape<2>{3, 4});
    auto v = m.slice(1, 1, 3);
    REQUIRE(same_storage(v.storage(), m.storage()));
    v(2, 0) = -7.0f;
    REQUIRE(m(2, 1) == -7.0f);

    auto t = m.t();
    t(3, 0) = 99.0f;
    REQUIRE(m(0, 3) == 99.0f);

    auto row = m[1];
    row(2) = 55.0f;
    REQUIRE(m(1, 2) == 55.0f);

    auto flat = m.view(12);
    flat(11) = 123.0f;
    REQUIRE(m(2, 3) == 123.0f);

    // Handle copies share; clone does not (see the clone test).
    auto alias = m;
    alias(0, 0) = 8.0f;
    REQUIRE(m(0, 0) == 8.0f);
    REQUIRE(m.storage().use_count() >= 5);
}

TEST_CASE("narrow: a length along an axis with bounds checks") {
    auto m = iota(Shape<2>{3, 5});
    auto n = m.narrow(1, 1, 3);
    REQUIRE(n.shape() == Shape<2>{3, 3});
    REQUIRE(logical_values(n) == vec<float>({1, 2, 3, 6, 7, 8, 11, 12, 13}));
    REQUIRE(m.narrow(0, 3, 0).numel() == 0);
    REQUIRE(logical_values(m.narrow(-2, 2, 1)) == vec<float>({10, 11, 12, 13, 14}));
    REQUIRE_THROWS_WITH(m.narrow(1, 3, 3), Contains("[3, 5]") && Contains("narrow"));
    REQUIRE_THROWS_AS(m.narrow(1, -1, 2), Error);
    REQUIRE_THROWS_AS(m.narrow(0, 0, -1), Error);
}

TEST_CASE("select and operator index drop an axis") {
    auto x = iota(Shape<3>{2, 3, 4});
    auto s = x.select(1, 2);
    STATIC_REQUIRE(decltype(s)::rank == 2);
    REQUIRE(s.shape() == Shape<2>{2, 4});
    REQUIRE(logical_values(s) == vec<float>({8, 9, 10, 11, 20, 21, 22, 23}));
    REQUIRE(logical_values(x.select(2, -1)) == vec<float>({3, 7, 11, 15, 19, 23}));
    REQUIRE(logical_values(x[1][2]) == vec<float>({20, 21, 22, 23}));
    REQUIRE(x[1][2][3].item() == 23.0f);
    REQUIRE(x[-1][0][0].item() == 12.0f);

    auto v = iota(Shape<1>{3});
    auto scalar = v[1];
    STATIC_REQUIRE(decltype(scalar)::rank == 0);
    REQUIRE(scalar.item() == 1.0f);
    REQUIRE(scalar() == 1.0f);

    REQUIRE_THROWS_WITH(x.select(1, 3), Contains("[2, 3, 4]"));
    REQUIRE_THROWS_AS(x.select(1, -4), Error);
    REQUIRE_THROWS_AS(x[2], Error);
    REQUIRE_THROWS_AS(x.select(3, 0), Error);
}

TEST_CASE("permute reorders axes and rejects repeated axes") {
    auto x = iota(Shape<3>{2, 3, 4});
    auto p = x.permute(2, 0, 1);
    REQUIRE(p.shape() == Shape<3>{4, 2, 3});
    REQUIRE(p.strides() == Shape<3>{1, 12, 4});
    for (index_t a = 0; a < 4; ++a)
        for (index_t b = 0; b < 2; ++b)
            for (index_t c = 0; c < 3; ++c) REQUIRE(p(a, b, c) == x(b, c, a));
    REQUIRE(same_storage(p.storage(), x.storage()));

    auto q = x.permute(-1, -3, -2);  // negative axes
    REQUIRE(q.shape() == Shape<3>{4, 2, 3});
    REQUIRE(x.permute(0, 1, 2).strides() == x.strides());

    REQUIRE_THROWS_WITH(x.permute(0, 0, 1), Contains("twice"));
    REQUIRE_THROWS_AS(x.permute(0, 1, -3), Error);  // -3 is axis 0 again
    REQUIRE_THROWS_AS(x.permute(0, 1, 3), Error);
}

TEST_CASE("transpose and t()") {
    auto x = iota(Shape<3>{2, 3, 4});
    auto y = x.transpose(0, 2);
    REQUIRE(y.shape() == Shape<3>{4, 3, 2});
    REQUIRE(y(3, 1, 0) == x(0, 1, 3));
    REQUIRE(x.transpose(-1, -2).shape() == Shape<3>{2, 4, 3});
    REQUIRE(x.transpose(1, 1).strides() == x.strides());
    REQUIRE_THROWS_AS(x.transpose(0, 3), Error);

    auto m = iota(Shape<2>{2, 3});
    auto mt = m.t();
    REQUIRE(mt.shape() == Shape<2>{3, 2});
    REQUIRE(logical_values(mt) == vec<float>({0, 3, 1, 4, 2, 5}));
    REQUIRE_FALSE(mt.is_contiguous());
    REQUIRE(logical_values(mt.t()) == logical_values(m));
}

TEST_CASE("view: no copy and -1 inference") {
    auto x = iota(Shape<2>{4, 6});
    auto v = x.view(2, -1, 3);
    REQUIRE(v.shape() == Shape<3>{2, 4, 3});
    REQUIRE(v.data() == x.data());
    REQUIRE(logical_values(v) == logical_values(x));
    REQUIRE(x.view(-1).shape() == Shape<1>{24});
    REQUIRE(x.view(1, 24, 1).strides()[1] == 1);
    REQUIRE(x.flatten().shape() == Shape<1>{24});

    // A column slice with step 2 is evenly spaced overall: it still views as a flat vector.
    auto every_other = x.slice(1, 0, 6, 2);  // [4, 3], strides [6, 2]
    auto flat = every_other.view(12);
    REQUIRE(flat.strides() == Shape<1>{2});
    REQUIRE(same_storage(flat.storage(), x.storage()));
    REQUIRE(logical_values(flat) == logical_values(every_other));
    // Splitting a non-contiguous axis keeps its stride.
    auto split = x.t().view(3, 2, 4);  // [6, 4] strides [1, 6] -> [3, 2, 4]
    REQUIRE(split.strides() == Shape<3>{2, 1, 6});
    REQUIRE(logical_values(split) == logical_values(x.t()));

    REQUIRE_THROWS_WITH(x.view(5, -1), Contains("[4, 6]"));
    REQUIRE_THROWS_WITH(x.view(5, 5), Contains("[4, 6]") && Contains("[5, 5]"));
    REQUIRE_THROWS_WITH(x.view(-1, -1), Contains("-1"));
    REQUIRE_THROWS_AS(x.view(-2, 12), Error);
}

TEST_CASE("view throws on strides that need a copy") {
    auto x = iota(Shape<2>{3, 4});
    auto t = x.t();  // [4, 3], strides [1, 4]
    REQUIRE_THROWS_AS(t.view(12), Error);
    REQUIRE_THROWS_WITH(t.view(12), Contains("[4, 3]") && Contains("[1, 4]") && Contains("[12]") &&
                                        Contains("reshape"));
    REQUIRE_THROWS_AS(t.view(2, 6), Error);
    // A slice that skips elements within rows cannot merge rows.
    REQUIRE_THROWS_AS(x.slice(1, 0, 3).view(9), Error);
    // Merging non-adjacent-in-memory axes of a permuted 3-d tensor fails too.
    REQUIRE_THROWS_AS(iota(Shape<3>{2, 3, 4}).permute(1, 0, 2).view(6, 4), Error);
    // ...but splitting one of its axes works.
    auto p = iota(Shape<3>{2, 3, 4}).permute(1, 0, 2);
    REQUIRE_NOTHROW(p.view(3, 2, 2, 2));
    REQUIRE(logical_values(p.view(3, 2, 2, 2)) == logical_values(p));
}

TEST_CASE("reshape: views when it can and copies when it must") {
    auto x = iota(Shape<2>{3, 4});
    auto r = x.reshape(4, 3);
    REQUIRE(same_storage(r.storage(), x.storage()));
    REQUIRE(logical_values(r) == logical_values(x));

    auto t = x.t();
    auto c = t.reshape(-1);
    REQUIRE_FALSE(same_storage(c.storage(), x.storage()));
    REQUIRE(c.is_contiguous());
    REQUIRE(logical_values(c) == vec<float>({0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
    c(0) = 500.0f;  // the copy is independent
    REQUIRE(x(0, 0) == 0.0f);

    auto s = x.reshape(Shape<3>{2, 2, 3});
    REQUIRE(s.shape() == Shape<3>{2, 2, 3});
    REQUIRE(x.reshape(-1, 6).shape() == Shape<2>{2, 6});
    REQUIRE(x.reshape(2, 1, -1, 1).shape() == Shape<4>{2, 1, 6, 1});

    // Zero-element tensors reshape freely; -1 cannot be inferred from a zero extent.
    auto empty = Tensor<float, 2>::zeros({0, 4});
    REQUIRE(empty.reshape(2, 0, 3).numel() == 0);
    REQUIRE_THROWS_AS(empty.reshape(0, -1), Error);

    REQUIRE_THROWS_WITH(x.reshape(5, 3), Contains("[3, 4]") && Contains("[5, 3]"));
    REQUIRE_THROWS_AS(x.reshape(-1, 5), Error);
}

TEST_CASE("expand broadcasts with stride 0") {
    auto row = iota(Shape<2>{1, 3});
    auto e = row.expand(4, 3);
    REQUIRE(e.shape() == Shape<2>{4, 3});
    REQUIRE(e.strides() == Shape<2>{0, 1});
    REQUIRE(same_storage(e.storage(), row.storage()));
    REQUIRE(logical_values(e) == vec<float>({0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2}));

    auto lead = row.expand(2, -1, -1);  // a new leading axis; -1 keeps an extent
    REQUIRE(lead.shape() == Shape<3>{2, 1, 3});
    REQUIRE(lead.strides()[0] == 0);
    auto both = row.expand(2, 5, 3);
    REQUIRE(both.shape() == Shape<3>{2, 5, 3});
    REQUIRE(both(1, 4, 2) == 2.0f);

    auto col = iota(Shape<2>{3, 1});
    auto c = col.expand(3, 2);
    REQUIRE(c.strides() == Shape<2>{1, 0});
    REQUIRE(logical_values(c) == vec<float>({0, 0, 1, 1, 2, 2}));
    // Writing through a stride-0 view hits the one shared element.
    c(1, 1) = 9.0f;
    REQUIRE(col(1, 0) == 9.0f);

    auto m = iota(Shape<2>{2, 3});
    REQUIRE_THROWS_AS(m.expand(4, 3), Error);
    REQUIRE_THROWS_WITH(m.expand(2, 4), Contains("[2, 3]") && Contains("[2, 4]"));
    REQUIRE_THROWS_AS(m.expand(-1, 2, 3), Error);  // a new axis needs an extent
}

TEST_CASE("squeeze and unsqueeze") {
    auto x = iota(Shape<3>{2, 1, 3});
    auto s = x.squeeze(1);
    REQUIRE(s.shape() == Shape<2>{2, 3});
    REQUIRE(logical_values(s) == logical_values(x));
    REQUIRE(x.squeeze(-2).shape() == Shape<2>{2, 3});
    REQUIRE_THROWS_WITH(x.squeeze(0), Contains("[2, 1, 3]") && Contains("squeeze"));
    REQUIRE_THROWS_AS(x.squeeze(3), Error);

    auto m = iota(Shape<2>{2, 3});
    auto u0 = m.unsqueeze(0);
    REQUIRE(u0.shape() == Shape<3>{1, 2, 3});
    auto u1 = m.unsqueeze(1);
    REQUIRE(u1.shape() == Shape<3>{2, 1, 3});
    auto u2 = m.unsqueeze(-1);
    REQUIRE(u2.shape() == Shape<3>{2, 3, 1});
    for (auto* u : {&u0, &u1, &u2}) {
        REQUIRE(same_storage(u->storage(), m.storage()));
        REQUIRE(logical_values(*u) == logical_values(m));
        REQUIRE(u->is_contiguous());
    }
    // unsqueeze keeps a transposed view transposed (and still viewable).
    auto tu = m.t().unsqueeze(1);
    REQUIRE(tu.shape() == Shape<3>{3, 1, 2});
    REQUIRE(logical_values(tu) == logical_values(m.t()));
    REQUIRE(logical_values(tu.squeeze(1)) == logical_values(m.t()));
    REQUIRE_THROWS_AS(m.unsqueeze(3), Error);
    REQUIRE_THROWS_AS(m.unsqueeze(-4), Error);
}

// ---- copies ------------------------------------------------------------------------------------

TEST_CASE("contiguous and clone make independent dense copies") {
    auto x = iota(Shape<2>{3, 4});
    REQUIRE(same_storage(x.contiguous().storage(), x.storage()));  // already dense: no copy

    auto t = x.t();
    auto c = t.contiguous();
    REQUIRE_FALSE(same_storage(c.storage(), x.storage()));
    REQUIRE(c.is_contiguous());
    REQUIRE(c.strides() == Shape<2>{3, 1});
    REQUIRE(logical_values(c) == logical_values(t));

    auto k = x.clone();
    REQUIRE_FALSE(same_storage(k.storage(), x.storage()));
    k(0, 0) = 100.0f;
    x(1, 1) = -100.0f;
    REQUIRE(x(0, 0) == 0.0f);
    REQUIRE(k(1, 1) == 5.0f);

    // A clone of a sliced, offset view holds only the view's elements.
    auto sl = x.slice(0, 1, 3).slice(1, 1, 4, 2);
    auto sk = sl.clone();
    REQUIRE(sk.offset() == 0);
    REQUIRE(sk.storage().bytes() == 4 * sizeof(float));
    REQUIRE(logical_values(sk) == vec<float>({-100, 7, 9, 11}));

    // A stride-0 expanded view clones into real copies.
    auto e = iota(Shape<1>{3}).expand(2, 3).clone();
    e(0, 0) = 50.0f;
    REQUIRE(e(1, 0) == 0.0f);
}

TEST_CASE("copy_from writes a same-shaped tensor into a view") {
    auto dst = Tensor<float, 2>::zeros({3, 3});
    auto src = iota(Shape<2>{3, 3});
    dst.t().copy_from(src);
    REQUIRE(logical_values(dst) == logical_values(src.t()));
    dst.slice(0, 0, 1).copy_from(Tensor<float, 2>::full({1, 3}, 7.0f));
    REQUIRE(dst(0, 2) == 7.0f);
    REQUIRE(dst(1, 0) == 1.0f);
    REQUIRE_THROWS_WITH(dst.copy_from(iota(Shape<2>{3, 2})), Contains("[3, 2]") && Contains("[3, 3]"));
}

TEST_CASE("element access is bounds-checked and names the shape") {
    auto x = iota(Shape<2>{2, 3});
    REQUIRE(x(1, 2) == 5.0f);
    x(0, 1) = 10.0f;
    REQUIRE(x(0, 1) == 10.0f);
    REQUIRE_THROWS_AS(x(2, 0), Error);
    REQUIRE_THROWS_AS(x(0, 3), Error);
    REQUIRE_THROWS_AS(x(-1, 0), Error);
    REQUIRE_THROWS_WITH(x(0, 3), Contains("[2, 3]") && Contains("index 3"));
    REQUIRE_THROWS_WITH(x.item(), Contains("[2, 3]"));
    REQUIRE(x.slice(0, 1, 2).slice(1, 2, 3).item() == 5.0f);

    // Views index relative to their own offset and strides.
    auto v = x.t().slice(0, 1, 3);
    REQUIRE(v(1, 1) == 5.0f);
    REQUIRE_THROWS_AS(v(2, 0), Error);

    auto r0 = Tensor<double, 0>::full({}, 2.5);
    REQUIRE(r0.numel() == 1);
    REQUIRE(r0() == 2.5);
    REQUIRE(r0.item() == 2.5);
}

TEST_CASE("size stride and is_contiguous") {
    auto x = iota(Shape<3>{2, 3, 4});
    REQUIRE(x.size(-1) == 4);
    REQUIRE(x.stride(0) == 12);
    REQUIRE(x.stride(-2) == 4);
    REQUIRE_THROWS_AS(x.size(3), Error);
    REQUIRE(x.is_contiguous());
    REQUIRE_FALSE(x.transpose(0, 1).is_contiguous());
    REQUIRE(x.slice(0, 1, 2).is_contiguous());  // one leading slab stays dense
    REQUIRE_FALSE(x.slice(2, 0, 2).is_contiguous());
    REQUIRE(x.select(2, 0).shape() == Shape<2>{2, 3});
    REQUIRE_FALSE(x.select(2, 0).is_contiguous());
    // Size-1 axes do not break contiguity whatever their stride.
    REQUIRE(iota(Shape<1>{4}).expand(1, 4).is_contiguous());
    REQUIRE(Tensor<float, 2>::dtype() == DType::f32);
}
