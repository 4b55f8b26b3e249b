// Finite-difference checks of embedding, gather, index_select, scatter_add, cat, stack,
// split/chunk and cross-entropy (ops/embedding.hpp, gather.hpp, join.hpp, cross_entropy.hpp).
#include <weft/weft.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {
using I64 = std::int64_t;
template <int R>
using TD = Tensor<double, R>;

// Labels [2, 3, 3] for 4 classes with some positions set to 255 (ignored).
Tensor<I64, 3> segmentation_labels() {
    return Tensor<I64, 3>::from({{{0, 255, 3}, {1, 2, 2}, {3, 0, 1}}, {{2, 2, 0}, {1, 3, 255}, {255, 255, 1}}});
}

CrossEntropyOptions<double> weighted(Reduction r, double smoothing = 0) {
    CrossEntropyOptions<double> o;
    o.ignore_index = 255;
    o.weight = TD<1>::from({0.5, 1.5, 1.0, 2.0});
    o.reduction = r;
    o.label_smoothing = smoothing;
    return o;
}
}  // namespace

TEST_CASE("gradcheck embedding with repeated indices", "[gradcheck]") {
    const auto ids = Tensor<I64, 2>::from({{0, 2, 2}, {4, 0, 2}});
    WEFT_CHECK_GRADIENT([&](const TD<2>& w) { return embedding(ids, w); }, TD<2>::randn({5, 3}));
}

TEST_CASE("gradcheck gather along a middle axis", "[gradcheck]") {
    // The index is shorter than x on the last axis and repeats positions.
    const auto idx = Tensor<I64, 3>::from({{{0, 2, 2}, {1, 1, 0}}, {{2, 2, 2}, {0, 1, 2}}});
    WEFT_CHECK_GRADIENT([&](const TD<3>& x) { return gather(x, 1, idx); }, TD<3>::randn({2, 3, 4}));
}

TEST_CASE("gradcheck index_select with a repeated index", "[gradcheck]") {
    const auto idx = Tensor<I64, 1>::from({3, 0, 3});
    WEFT_CHECK_GRADIENT([&](const TD<3>& x) { return index_select(x, 1, idx); }, TD<3>::randn({3, 4, 2}));
    WEFT_CHECK_GRADIENT([&](const TD<2>& x) { return index_select(x, -1, idx); }, TD<2>::randn({2, 5}));
}

TEST_CASE("gradcheck scatter_add with respect to x and src", "[gradcheck]") {
    // src is wider than index on the last axis: its last column is not used (zero gradient).
    const auto idx = Tensor<I64, 3>::from({{{0, 3}, {0, 0}, {2, 3}}, {{1, 1}, {3, 2}, {1, 0}}});
    WEFT_CHECK_GRADIENT([&](const TD<3>& x, const TD<3>& src) { return scatter_add(x, 1, idx, src); },
                        TD<3>::randn({2, 4, 3}), TD<3>::randn({2, 3, 3}));
}

TEST_CASE("gradcheck cat along axis 0 with a part used twice", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const TD<2>& a, const TD<2>& b) { return cat({a, b, a}, 0); }, TD<2>::randn({1, 3}),
                        TD<2>::randn({2, 3}));
}

TEST_CASE("gradcheck cat along a middle axis of strided parts", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const TD<3>& a, const TD<3>& b) {
            return cat(std::vector<TD<3>>{a, b.transpose(0, 2).transpose(0, 2), a.slice(1, 0, 1)}, 1);
        },
        TD<3>::randn({2, 2, 3}), TD<3>::randn({2, 1, 3}));
}

TEST_CASE("gradcheck stack along a new middle axis", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const TD<2>& a, const TD<2>& b) { return stack({a, b, a}, 1); }, TD<2>::randn({2, 3}),
                        TD<2>::randn({2, 3}));
}

TEST_CASE("gradcheck split and chunk through a loss", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const TD<2>& x) {
            const auto c = chunk(x, 3, 0);           // 3, 3, 1 rows
            const auto s = split(x, {2, 4, 1}, 0);   // 2, 4, 1 rows
            const auto t = split(x.t(), 1, 0);       // two [1, 7]
            return eval(sum(c[0] * c[0], {0}) + sum(c[1], {0}) * 3.0 + c[2].reshape(2) + sum(s[1] * s[1] * s[1], {0}) +
                        t[1].reshape(7).slice(0, 0, 2) * t[0].reshape(7).slice(0, 5, 7));
        },
        TD<2>::randn({7, 2}));
}

TEST_CASE("gradcheck cross_entropy on N by C logits", "[gradcheck]") {
    const auto target = Tensor<I64, 1>::from({1, 0, 4, 1});
    WEFT_CHECK_GRADIENT([&](const TD<2>& x) { return cross_entropy(x, target); }, TD<2>::randn({4, 5}));
}

TEST_CASE("gradcheck cross_entropy rank 4 with ignore_index and class weights, mean", "[gradcheck]") {
    const auto target = segmentation_labels();
    WEFT_CHECK_GRADIENT([&](const TD<4>& x) { return cross_entropy(x, target, weighted(Reduction::mean)); },
                        TD<4>::randn({2, 4, 3, 3}));
}

TEST_CASE("gradcheck cross_entropy rank 4 with ignore_index and class weights, mean_all", "[gradcheck]") {
    const auto target = segmentation_labels();
    WEFT_CHECK_GRADIENT([&](const TD<4>& x) { return cross_entropy(x, target, weighted(Reduction::mean_all)); },
                        TD<4>::randn({2, 4, 3, 3}));
}

TEST_CASE("gradcheck cross_entropy rank 4 with ignore_index and class weights, sum", "[gradcheck]") {
    const auto target = segmentation_labels();
    WEFT_CHECK_GRADIENT([&](const TD<4>& x) { return cross_entropy(x, target, weighted(Reduction::sum)); },
                        TD<4>::randn({2, 4, 3, 3}));
}

TEST_CASE("gradcheck cross_entropy_per_element rank 4", "[gradcheck]") {
    const auto target = segmentation_labels();
    WEFT_CHECK_GRADIENT(
        [&](const TD<4>& x) { return cross_entropy_per_element(x, target, weighted(Reduction::mean, 0.1)); },
        TD<4>::randn({2, 4, 3, 3}));
}

TEST_CASE("gradcheck cross_entropy with label smoothing", "[gradcheck]") {
    const auto target = segmentation_labels();
    WEFT_CHECK_GRADIENT([&](const TD<4>& x) { return cross_entropy(x, target, weighted(Reduction::mean, 0.2)); },
                        TD<4>::randn({2, 4, 3, 3}));
    CrossEntropyOptions<double> plain;
    plain.label_smoothing = 0.3;
    const auto rows = Tensor<I64, 1>::from({2, 0, 1});
    WEFT_CHECK_GRADIENT([&](const TD<2>& x) { return cross_entropy(x, rows, plain); }, TD<2>::randn({3, 4}));
}

TEST_CASE("gradcheck cross_entropy on a permuted rank 3 view", "[gradcheck]") {
    // [N, L, C] logits permuted to [N, C, L]: the op copies the view to a dense layout.
    const auto target = Tensor<I64, 2>::from({{0, 2, 1, 2}, {1, 1, -100, 0}});
    WEFT_CHECK_GRADIENT([&](const TD<3>& x) { return cross_entropy(x.permute(0, 2, 1), target); },
                        TD<3>::randn({2, 4, 3}));
}
