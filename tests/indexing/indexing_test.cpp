// embedding, gather/index_select/scatter_add, cat/stack/split/chunk and cross-entropy against
// PyTorch (tests/reference/indexing.py), plus their errors and edge cases.
#include <cmath>
#include <limits>

#include <weft/weft.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;
using Catch::Matchers::Contains;

namespace {
using I64 = std::int64_t;
template <int R>
using TD = Tensor<double, R>;
constexpr double tol = 1e-12;
}  // namespace

TEST_CASE("embedding matches PyTorch with repeated indices") {
    auto f = weft::test::fixture("indexing");
    auto w = f.get<double, 2>("emb_w").requires_grad_();
    auto y = embedding(f.get<I64, 2>("emb_ids"), w);
    check_close(y, f.get<double, 3>("emb_out"), tol, tol, "embedding forward");
    sum(y * f.get<double, 3>("emb_r")).backward();
    check_close(w.grad(), f.get<double, 2>("emb_gw"), tol, tol, "embedding grad weight");
}

TEST_CASE("gather, index_select and scatter_add match PyTorch") {
    auto f = weft::test::fixture("indexing");
    {
        auto x = f.get<double, 3>("gat_x").requires_grad_();
        auto y = gather(x, 1, f.get<I64, 3>("gat_idx"));
        check_close(y, f.get<double, 3>("gat_out"), tol, tol, "gather forward");
        sum(y * f.get<double, 3>("gat_r")).backward();
        check_close(x.grad(), f.get<double, 3>("gat_gx"), tol, tol, "gather grad x");
    }
    {
        auto x = f.get<double, 3>("isel_x").requires_grad_();
        auto y = index_select(x, 1, f.get<I64, 1>("isel_idx"));
        check_close(y, f.get<double, 3>("isel_out"), tol, tol, "index_select forward");
        sum(y * f.get<double, 3>("isel_r")).backward();
        check_close(x.grad(), f.get<double, 3>("isel_gx"), tol, tol, "index_select grad x");
    }
    {
        auto x = f.get<double, 3>("sca_x").requires_grad_();
        auto src = f.get<double, 3>("sca_src").requires_grad_();
        auto y = scatter_add(x, 1, f.get<I64, 3>("sca_idx"), src);
        check_close(y, f.get<double, 3>("sca_out"), tol, tol, "scatter_add forward");
        sum(y * f.get<double, 3>("sca_r")).backward();
        check_close(x.grad(), f.get<double, 3>("sca_gx"), tol, tol, "scatter_add grad x");
        check_close(src.grad(), f.get<double, 3>("sca_gsrc"), tol, tol, "scatter_add grad src");
    }
}

TEST_CASE("cat, stack, split and chunk match PyTorch") {
    auto f = weft::test::fixture("indexing");
    {
        auto a = f.get<double, 2>("cat0_a").requires_grad_();
        auto b = f.get<double, 2>("cat0_b").requires_grad_();
        auto y = cat({a, b, a}, 0);
        check_close(y, f.get<double, 2>("cat0_out"), tol, tol, "cat axis 0 forward");
        sum(y * f.get<double, 2>("cat0_r")).backward();
        check_close(a.grad(), f.get<double, 2>("cat0_ga"), tol, tol, "cat axis 0 grad a (used twice)");
        check_close(b.grad(), f.get<double, 2>("cat0_gb"), tol, tol, "cat axis 0 grad b");
    }
    {
        auto a = f.get<double, 3>("cat1_a").requires_grad_();
        auto b = f.get<double, 3>("cat1_b").requires_grad_();
        auto y = cat(std::vector<TD<3>>{a, b}, 1);
        check_close(y, f.get<double, 3>("cat1_out"), tol, tol, "cat axis 1 forward");
        sum(y * f.get<double, 3>("cat1_r")).backward();
        check_close(a.grad(), f.get<double, 3>("cat1_ga"), tol, tol, "cat axis 1 grad a");
        check_close(b.grad(), f.get<double, 3>("cat1_gb"), tol, tol, "cat axis 1 grad b");
    }
    {
        auto a = f.get<double, 2>("stk_a").requires_grad_();
        auto b = f.get<double, 2>("stk_b").requires_grad_();
        auto y = stack({a, b, a}, 1);
        check_close(y, f.get<double, 3>("stk_out"), tol, tol, "stack forward");
        sum(y * f.get<double, 3>("stk_r")).backward();
        check_close(a.grad(), f.get<double, 2>("stk_ga"), tol, tol, "stack grad a");
        check_close(b.grad(), f.get<double, 2>("stk_gb"), tol, tol, "stack grad b");
    }
    // sum over pieces i of sum(piece_i ** (i + 1)).
    auto piece_loss = [](const std::vector<TD<2>>& parts) {
        TD<0> loss = sum(parts[0]);
        for (std::size_t i = 1; i < parts.size(); ++i)
            loss = eval(loss + sum(pow(parts[i], double(i + 1))));
        return loss;
    };
    {
        auto x = f.get<double, 2>("chk_x").requires_grad_();
        const auto parts = chunk(x, 3, 0);
        REQUIRE(parts.size() == 3);
        CHECK(parts[2].size(0) == 1);
        auto loss = piece_loss(parts);
        check_close(loss, f.get<double, 0>("chk_loss"), tol, tol, "chunk loss");
        loss.backward();
        check_close(x.grad(), f.get<double, 2>("chk_gx"), tol, tol, "chunk grad x");
    }
    {
        auto x = f.get<double, 2>("chk_x").requires_grad_();
        auto loss = piece_loss(split(x, {2, 4, 1}, 0));
        check_close(loss, f.get<double, 0>("spl_loss"), tol, tol, "split loss");
        loss.backward();
        check_close(x.grad(), f.get<double, 2>("spl_gx"), tol, tol, "split grad x");
    }
}

TEST_CASE("cross_entropy matches PyTorch on N by C logits") {
    auto f = weft::test::fixture("indexing");
    auto x = f.get<double, 2>("ce2_x").requires_grad_();
    auto y = cross_entropy(x, f.get<I64, 1>("ce2_t"));
    check_close(y, f.get<double, 0>("ce2_out"), tol, tol, "cross_entropy forward");
    sum(y * f.get<double, 0>("ce2_r")).backward();
    check_close(x.grad(), f.get<double, 2>("ce2_gx"), tol, tol, "cross_entropy grad logits");
}

TEST_CASE("cross_entropy matches PyTorch and mmseg on rank 4 logits for every reduction") {
    auto f = weft::test::fixture("indexing");
    const auto target = f.get<I64, 3>("ce4_t");
    struct Case {
        const char* key;
        Reduction reduction;
    };
    // meanall: the fixture computes mmseg 0.19's CrossEntropyLoss, F.cross_entropy(reduction='none').mean().
    const Case cases[] = {{"mean", Reduction::mean}, {"sum", Reduction::sum}, {"meanall", Reduction::mean_all}};
    for (const double smoothing : {0.0, 0.2}) {
        CrossEntropyOptions<double> opt;
        opt.ignore_index = 255;
        opt.weight = f.get<double, 1>("ce4_w");
        opt.label_smoothing = smoothing;
        const std::string suffix = smoothing > 0 ? "_ls" : "";
        for (const Case& c : cases) {
            const std::string key = std::string("ce4_") + c.key + suffix;
            INFO(key);
            opt.reduction = c.reduction;
            auto x = f.get<double, 4>("ce4_x").requires_grad_();
            auto y = cross_entropy(x, target, opt);
            check_close(y, f.get<double, 0>(key + "_out"), tol, tol, key + " forward");
            sum(y * f.get<double, 0>(key + "_r")).backward();
            check_close(x.grad(), f.get<double, 4>(key + "_gx"), tol, tol, key + " grad logits");
        }
        const std::string key = "ce4_none" + suffix;
        auto x = f.get<double, 4>("ce4_x").requires_grad_();
        auto y = cross_entropy_per_element(x, target, opt);
        check_close(y, f.get<double, 3>(key + "_out"), tol, tol, key + " forward");
        sum(y * f.get<double, 3>(key + "_r")).backward();
        check_close(x.grad(), f.get<double, 4>(key + "_gx"), tol, tol, key + " grad logits");
    }
}

TEST_CASE("cross_entropy plain backward functions agree with autograd") {
    auto f = weft::test::fixture("indexing");
    const auto x = f.get<double, 4>("ce4_x");
    const auto target = f.get<I64, 3>("ce4_t");
    CrossEntropyOptions<double> opt;
    opt.ignore_index = 255;
    opt.weight = f.get<double, 1>("ce4_w");
    opt.label_smoothing = 0.2;
    opt.reduction = Reduction::mean_all;
    check_close(cross_entropy_backward(f.get<double, 0>("ce4_meanall_ls_r"), x, target, opt),
                f.get<double, 4>("ce4_meanall_ls_gx"), tol, tol, "cross_entropy_backward");
    check_close(cross_entropy_per_element_backward(f.get<double, 3>("ce4_none_ls_r"), x, target, opt),
                f.get<double, 4>("ce4_none_ls_gx"), tol, tol, "cross_entropy_per_element_backward");
}

TEST_CASE("cross_entropy in float on a large map is stable and thread-count independent") {
    // Large logits would overflow a plain softmax; the sum over positions uses fixed blocks.
    auto x = Tensor<float, 4>::randn({2, 7, 33, 35});
    auto big = eval(x * 40.0f);
    auto target = Tensor<I64, 3>::randint(0, 7, {2, 33, 35});
    const auto per = cross_entropy_per_element(big, target);
    const auto per64 = cross_entropy_per_element(eval(cast<double>(big)), target);
    check_close(per, per64, 1e-3, 1e-5, "float against double");
    set_num_threads(1);
    const float a = cross_entropy(big, target).item();
    set_num_threads(3);
    const float b = cross_entropy(big, target).item();
    set_num_threads(ThreadPool::default_threads());
    CHECK(std::isfinite(a));
    CHECK(a == b);
}

TEST_CASE("cross_entropy reductions relate as documented") {
    auto x = TD<3>::randn({2, 3, 5});
    const auto target = Tensor<I64, 2>::from({{0, 2, -100, 1, 1}, {-100, -100, 2, 0, 1}});
    CrossEntropyOptions<double> opt;
    opt.weight = TD<1>::from({1.0, 2.0, 0.5});
    const auto per = cross_entropy_per_element(x, target, opt);
    CHECK(per(0, 2) == 0.0);
    CHECK(per(1, 0) == 0.0);
    const double total = sum(per).item();
    opt.reduction = Reduction::sum;
    CHECK(cross_entropy(x, target, opt).item() == Approx(total).epsilon(1e-12));
    opt.reduction = Reduction::mean_all;
    CHECK(cross_entropy(x, target, opt).item() == Approx(total / 10).epsilon(1e-12));
    opt.reduction = Reduction::mean;  // weights of targets 0, 2, 1, 1, 2, 0, 1
    CHECK(cross_entropy(x, target, opt).item() == Approx(total / (1 + 0.5 + 2 + 2 + 0.5 + 1 + 2)).epsilon(1e-12));

    // Everything ignored: mean is 0 / 0 (NaN, as in PyTorch); mean_all and sum are 0.
    const auto none = Tensor<I64, 2>::full({2, 5}, -100);
    opt.reduction = Reduction::mean;
    CHECK(std::isnan(cross_entropy(x, none, opt).item()));
    opt.reduction = Reduction::mean_all;
    CHECK(cross_entropy(x, none, opt).item() == 0.0);
}

TEST_CASE("indexing ops work on integer tensors without autograd") {
    const auto x = Tensor<I64, 2>::from({{1, 2, 3}, {4, 5, 6}});
    const auto g = gather(x, 1, Tensor<I64, 2>::from({{2, 0}, {1, 1}}));
    CHECK(g(0, 0) == 3);
    CHECK(g(1, 1) == 5);
    const auto s = index_select(x, 0, Tensor<I64, 1>::from({1, 1, 0}));
    CHECK(s.shape() == Shape<2>{3, 3});
    CHECK(s(1, 2) == 6);
    CHECK(s(2, 0) == 1);
    const auto c = cat({x, x}, 1);
    CHECK(c.shape() == Shape<2>{2, 6});
    CHECK(c(1, 4) == 5);
    const auto sa = scatter_add(x, 0, Tensor<I64, 2>::from({{1, 1, 1}}), Tensor<I64, 2>::from({{10, 20, 30}}));
    CHECK(sa(1, 2) == 36);
    CHECK(sa(0, 2) == 3);
}

TEST_CASE("split and chunk piece sizes follow PyTorch") {
    const auto x = TD<2>::randn({3, 10});
    auto sizes = [](const std::vector<TD<2>>& parts) {
        std::vector<index_t> s;
        for (const auto& p : parts) s.push_back(p.size(1));
        return s;
    };
    CHECK(sizes(split(x, 4, 1)) == std::vector<index_t>{4, 4, 2});
    CHECK(sizes(split(x, index_t(10), 1)) == std::vector<index_t>{10});
    CHECK(sizes(chunk(x, 4, 1)) == std::vector<index_t>{3, 3, 3, 1});
    CHECK(sizes(chunk(x, 6, -1)) == std::vector<index_t>{2, 2, 2, 2, 2});  // fewer than 6, as torch.chunk
    CHECK(sizes(split(x, {0, 7, 3}, 1)) == std::vector<index_t>{0, 7, 3});
    // Views: writing through a piece changes x.
    split(x, 5, 1)[1](2, 0) = 42.0;
    CHECK(x(2, 5) == 42.0);
}

TEST_CASE("indexing errors name the index, the value and the shapes") {
    const auto w = TD<2>::randn({5, 3});
    CHECK_THROWS_WITH(embedding(Tensor<I64, 1>::from({1, 7}), w), Contains("index 7") && Contains("5 rows"));
    CHECK_THROWS_WITH(embedding(Tensor<I64, 1>::from({-1}), w), Contains("index -1") && Contains("5 rows"));
    const auto x = TD<2>::randn({2, 4});
    CHECK_THROWS_WITH(gather(x, 1, Tensor<I64, 2>::from({{0, 4}})), Contains("gather: index 4") && Contains("[2, 4]"));
    CHECK_THROWS_WITH(gather(x, 0, Tensor<I64, 2>::from({{0, 0, 0, 0, 0}})),
                      Contains("index of shape [1, 5]") && Contains("x of shape [2, 4]"));
    CHECK_THROWS_WITH(index_select(x, 0, Tensor<I64, 1>::from({2})), Contains("index_select: index 2"));
    CHECK_THROWS_WITH(scatter_add(x, 1, Tensor<I64, 2>::from({{5}}), TD<2>::randn({1, 1})),
                      Contains("scatter_add: index 5"));
    CHECK_THROWS_WITH(scatter_add(x, 1, Tensor<I64, 2>::from({{0, 1}}), TD<2>::randn({1, 1})),
                      Contains("src of shape [1, 1]"));

    CHECK_THROWS_WITH(cat({x, TD<2>::randn({3, 3})}, 1), Contains("[3, 3]") && Contains("[2, 4]"));
    CHECK_THROWS_WITH(stack({x, TD<2>::randn({2, 3})}, 0), Contains("[2, 3]") && Contains("[2, 4]"));
    CHECK_THROWS_WITH(split(x, {1, 2}, 1), Contains("adding up to 3") && Contains("[2, 4]"));

    const auto logits = TD<4>::randn({2, 3, 2, 2});
    auto target = Tensor<I64, 3>::zeros({2, 2, 2});
    target(1, 0, 1) = 3;
    CHECK_THROWS_WITH(cross_entropy(logits, target), Contains("target value 3") && Contains("3 classes"));
    target(1, 0, 1) = -1;
    CHECK_THROWS_WITH(cross_entropy_per_element(logits, target), Contains("target value -1"));
    CHECK_THROWS_WITH(cross_entropy(logits, Tensor<I64, 3>::zeros({2, 3, 2})),
                      Contains("[2, 3, 2]") && Contains("[2, 3, 2, 2]") && Contains("expected [2, 2, 2]"));
    CrossEntropyOptions<double> bad;
    bad.weight = TD<1>::ones({4});
    CHECK_THROWS_WITH(cross_entropy(logits, Tensor<I64, 3>::zeros({2, 2, 2}), bad), Contains("3 classes"));
}

TEST_CASE("the example of docs/ops-indexing.md") {
    auto table = Tensor<float, 2>::randn({10, 4});                        // [V, E]
    auto ids = Tensor<std::int64_t, 2>::from({{1, 3, 3}, {0, 9, 1}});     // [B, L]
    auto x = embedding(ids, table);                                       // [2, 3, 4]
    auto y = gather(x, 2, Tensor<std::int64_t, 3>::zeros({2, 3, 1}));     // [2, 3, 1]
    auto both = cat({x, x}, 1);                                           // [2, 6, 4]
    auto parts = chunk(both, 3, 1);                                       // three [2, 2, 4] views
    auto logits = Tensor<float, 4>::randn({2, 5, 8, 8});                  // [N, C, H, W]
    auto labels = Tensor<std::int64_t, 3>::randint(0, 5, {2, 8, 8});      // [N, H, W]
    CrossEntropyOptions<float> opt;
    opt.ignore_index = 255;
    opt.reduction = Reduction::mean_all;                                  // mmseg 0.19's default
    auto loss = cross_entropy(logits, labels, opt);                       // rank 0

    CHECK(x.shape() == Shape<3>{2, 3, 4});
    CHECK(x(1, 1, 2) == table(9, 2));
    CHECK(y(0, 2, 0) == table(3, 0));
    CHECK(both.shape() == Shape<3>{2, 6, 4});
    REQUIRE(parts.size() == 3);
    CHECK(parts[2].shape() == Shape<3>{2, 2, 4});
    CHECK(parts[2](1, 1, 3) == table(1, 3));
    CHECK(std::isfinite(loss.item()));
    CHECK(loss.item() > 0);
}
