// conv2d and conv_transpose2d against a direct (seven-loop) convolution on layouts and batch
// chunkings the fixtures do not reach; views as inputs; the plain backward functions; and the
// error messages of every spatial op.
#include <weft/ops/conv2d.hpp>
#include <weft/ops/conv_transpose2d.hpp>
#include <weft/ops/interpolate.hpp>
#include <weft/ops/pool.hpp>

#include <catch2/catch.hpp>

#include <weft/weft.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

using T1 = Tensor<double, 1>;
using T4 = Tensor<double, 4>;

// conv2d by its definition, one output element at a time.
T4 direct_conv2d(const T4& x, const T4& w, const T1& b, const Conv2dOptions& o) {
    const index_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const index_t O = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3), Og = O / o.groups;
    const index_t OH = (H + 2 * o.padding[0] - o.dilation[0] * (KH - 1) - 1) / o.stride[0] + 1;
    const index_t OW = (W + 2 * o.padding[1] - o.dilation[1] * (KW - 1) - 1) / o.stride[1] + 1;
    auto y = T4::zeros({N, O, OH, OW});
    for (index_t n = 0; n < N; ++n)
        for (index_t oc = 0; oc < O; ++oc)
            for (index_t oh = 0; oh < OH; ++oh)
                for (index_t ow = 0; ow < OW; ++ow) {
                    double s = b.defined() ? b(oc) : 0.0;
                    for (index_t c = 0; c < Cg; ++c)
                        for (index_t i = 0; i < KH; ++i)
                            for (index_t j = 0; j < KW; ++j) {
                                const index_t h = oh * o.stride[0] - o.padding[0] + i * o.dilation[0];
                                const index_t v = ow * o.stride[1] - o.padding[1] + j * o.dilation[1];
                                if (h >= 0 && h < H && v >= 0 && v < W)
                                    s += x(n, (oc / Og) * Cg + c, h, v) * w(oc, c, i, j);
                            }
                    y(n, oc, oh, ow) = s;
                }
    (void)C;
    return y;
}

// Shrinks conv2d's im2col buffer for one scope, so that a small batch runs in several chunks.
struct SmallColumnBuffer {
    double saved = detail::col_budget_bytes;
    explicit SmallColumnBuffer(double bytes) { detail::col_budget_bytes = bytes; }
    ~SmallColumnBuffer() { detail::col_budget_bytes = saved; }
};

}  // namespace

TEST_CASE("conv2d matches a direct convolution", "[conv]") {
    struct Case {
        Shape<4> x, w;
        Conv2dOptions opts;
    };
    const Case cases[] = {
        {{2, 3, 9, 8}, {5, 3, 3, 3}, {.padding = {1, 1}}},
        {{1, 4, 7, 11}, {4, 2, 2, 3}, {.stride = {3, 2}, .padding = {2, 0}, .dilation = {1, 3}, .groups = 2}},
        {{3, 6, 5, 5}, {6, 1, 5, 5}, {.padding = {2, 2}, .groups = 6}},     // depthwise
        {{2, 4, 6, 3}, {8, 4, 1, 1}, {}},                                     // pointwise
        {{2, 4, 6, 3}, {6, 2, 1, 1}, {.stride = {2, 1}, .groups = 2}},        // 1x1, strided: im2col
        {{1, 2, 4, 4}, {3, 2, 4, 4}, {}},                                     // kernel covers the input
        {{1, 1, 3, 3}, {1, 1, 3, 3}, {.stride = {5, 5}, .padding = {1, 1}}},  // stride beyond the input
    };
    for (const auto& c : cases) {
        INFO("input " << c.x << ", weight " << c.w << ", groups " << c.opts.groups);
        auto x = T4::randn(c.x), w = T4::randn(c.w);
        auto b = T1::randn({c.w[0]});
        check_close(conv2d(x, w, b, c.opts), direct_conv2d(x, w, b, c.opts), 1e-12, 1e-12, "with bias");
        check_close(conv2d(x, w, {}, c.opts), direct_conv2d(x, w, {}, c.opts), 1e-12, 1e-12, "without bias");
    }
}

TEST_CASE("conv2d and conv_transpose2d give the same results batch by batch", "[conv]") {
    // A buffer too small for two images: every image runs as its own chunk of im2col + GEMM.
    auto x = T4::randn({5, 4, 6, 7});
    auto w = T4::randn({6, 2, 3, 3});
    auto b = T1::randn({6});
    const Conv2dOptions opts{.stride = {2, 1}, .padding = {1, 1}, .groups = 2};
    const auto y = conv2d(x, w, b, opts);
    const auto g = T4::randn(y.shape());
    const auto grads = conv2d_backward(g, x, w, true, opts);
    const ConvTranspose2dOptions topts{.stride = {2, 1}, .padding = {1, 1}, .output_padding = {1, 0}, .groups = 2};
    const auto tb = T1::randn({4});
    const auto t = conv_transpose2d(y, w, tb, topts);
    const auto tg = T4::randn(t.shape());
    const auto tgrads = conv_transpose2d_backward(tg, y, w, true, topts);
    SmallColumnBuffer small(1000);
    check_close(conv2d(x, w, b, opts), y, 1e-12, 1e-12, "chunked forward");
    const auto chunked = conv2d_backward(g, x, w, true, opts);
    check_close(chunked.grad_x, grads.grad_x, 1e-12, 1e-12, "chunked grad_x");
    check_close(chunked.grad_w, grads.grad_w, 1e-12, 1e-12, "chunked grad_w");
    check_close(conv_transpose2d(y, w, tb, topts), t, 1e-12, 1e-12, "chunked transposed forward");
    const auto tchunked = conv_transpose2d_backward(tg, y, w, true, topts);
    check_close(tchunked.grad_x, tgrads.grad_x, 1e-12, 1e-12, "chunked transposed grad_x");
    check_close(tchunked.grad_w, tgrads.grad_w, 1e-12, 1e-12, "chunked transposed grad_w");
}

TEST_CASE("conv_transpose2d is the adjoint of conv2d", "[conv]") {
    // <conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for the options that map x's shape onto y's.
    auto x = T4::randn({2, 4, 9, 8});
    auto w = T4::randn({6, 2, 3, 2});
    const Conv2dOptions opts{.stride = {2, 3}, .padding = {1, 1}, .dilation = {2, 1}, .groups = 2};
    auto cx = conv2d(x, w, {}, opts);
    auto y = T4::randn(cx.shape());
    // 9 = (4 - 1) * 2 - 2 + 2 * (3 - 1) + 1 + 0 and 8 = (3 - 1) * 3 - 2 + 1 * (2 - 1) + 1 + 2
    auto ty = conv_transpose2d(y, w, {},
                               {.stride = {2, 3}, .padding = {1, 1}, .output_padding = {0, 2}, .dilation = {2, 1}, .groups = 2});
    REQUIRE(ty.shape() == x.shape());
    const double lhs = sum(cx * y).item(), rhs = sum(x * ty).item();
    CHECK(lhs == Approx(rhs).epsilon(1e-12));
}

TEST_CASE("spatial ops read views of any layout", "[conv]") {
    auto base = T4::randn({3, 2, 6, 5});
    auto x = base.permute(0, 1, 3, 2).slice(0, 0, 3, 2);  // [2, 2, 5, 6], strided
    auto dense = x.contiguous();
    auto w = T4::randn({3, 2, 3, 3});
    const Conv2dOptions opts{.padding = {1, 1}};
    check_close(conv2d(x, w, {}, opts), conv2d(dense, w, {}, opts), 0, 0, "conv2d");
    check_close(conv2d(x, w.permute(0, 1, 3, 2), {}, opts), conv2d(dense, w.permute(0, 1, 3, 2).contiguous(), {}, opts),
                0, 0, "conv2d with a transposed weight");
    check_close(conv_transpose2d(x, T4::ones({2, 1, 2, 2})), conv_transpose2d(dense, T4::ones({2, 1, 2, 2})), 0, 0,
                "conv_transpose2d");
    const Pool2dOptions pool{.kernel = {2, 2}};
    check_close(max_pool2d(x, pool), max_pool2d(dense, pool), 0, 0, "max_pool2d");
    check_close(avg_pool2d(x, pool), avg_pool2d(dense, pool), 0, 0, "avg_pool2d");
    check_close(adaptive_avg_pool2d(x, {2, 4}), adaptive_avg_pool2d(dense, {2, 4}), 0, 0, "adaptive_avg_pool2d");
    const std::array<index_t, 2> size{7, 4};
    check_close(interpolate(x, size, Interpolation::bilinear), interpolate(dense, size, Interpolation::bilinear), 0, 0,
                "interpolate");
}

TEST_CASE("the plain backward functions give what the tape records", "[conv]") {
    auto x = T4::randn({2, 2, 5, 5}).requires_grad_();
    auto w = T4::randn({3, 2, 3, 3}).requires_grad_();
    auto b = T1::randn({3}).requires_grad_();
    const Conv2dOptions opts{.stride = {2, 2}, .padding = {1, 1}};
    auto y = conv2d(x, w, b, opts);
    auto g = T4::randn(y.shape());
    y.backward(g);
    auto plain = conv2d_backward(g, x, w, true, opts);
    check_close(plain.grad_x, x.grad(), 0, 0, "grad_x");
    check_close(plain.grad_w, w.grad(), 0, 0, "grad_w");
    check_close(plain.grad_b, b.grad(), 0, 0, "grad_b");
    auto only_w = conv2d_backward(g, x, w, false, opts, false, true);
    CHECK(!only_w.grad_x.defined());
    CHECK(!only_w.grad_b.defined());
    CHECK(only_w.grad_w.defined());

    // max pooling: the recorded backward reuses the forward's indices.
    auto p = T4::randn({1, 2, 4, 4}).requires_grad_();
    const Pool2dOptions pool{.kernel = {2, 2}};
    auto [out, indices] = max_pool2d_with_indices(p.detach(), pool);
    auto m = max_pool2d(p, pool);
    check_close(m, out, 0, 0, "max_pool2d output");
    for (index_t i = 0; i < indices.numel(); ++i) {
        const index_t at = indices.data()[i];
        CHECK(out.data()[i] == p.detach().contiguous().data()[(i / 4) * 16 + at]);
    }
    auto gm = T4::randn(m.shape());
    m.backward(gm);
    check_close(max_pool2d_backward(gm, p, indices).grad_x, p.grad(), 0, 0, "max_pool2d gradient");
}

TEST_CASE("pooling and interpolate output sizes follow PyTorch", "[conv]") {
    auto x = T4::zeros({1, 1, 6, 7});
    // Rows: floor((6 + 2 - 3) / 2) + 1 = 3; ceil_mode: 4, the last window starting at row 6 - 1 = 5,
    // inside the input. Columns: (7 + 2 - 3) / 2 + 1 = 4 either way.
    CHECK(max_pool2d(x, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}).shape() == Shape<4>{1, 1, 3, 4});
    CHECK(max_pool2d(x, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}).shape() ==
          Shape<4>{1, 1, 4, 4});
    // 5 + 0 - 2 = 3, ceil(3 / 2) + 1 = 3 windows; the third would start at 4 < 5: kept.
    auto five = T4::zeros({1, 1, 5, 5});
    CHECK(avg_pool2d(five, {.kernel = {2, 2}, .ceil_mode = true}).shape() == Shape<4>{1, 1, 3, 3});
    // The dropped window: 4 + 2 - 2 = 4, ceil(4 / 3) + 1 = 3, but (3 - 1) * 3 = 6 >= 4 + 1.
    CHECK(avg_pool2d(T4::zeros({1, 1, 4, 4}), {.kernel = {2, 2}, .stride = {3, 3}, .padding = {1, 1}, .ceil_mode = true})
              .shape() == Shape<4>{1, 1, 2, 2});
    CHECK(interpolate_scale(x, std::array<double, 2>{1.5, 0.5}, Interpolation::nearest).shape() == Shape<4>{1, 1, 9, 3});
    // stride {0, 0} means the kernel
    CHECK(max_pool2d(x, {.kernel = {2, 3}}).shape() == Shape<4>{1, 1, 3, 2});
}

TEST_CASE("max_pool2d keeps NaN and infinities as PyTorch does", "[conv]") {
    auto x = T4::from({{{{1.0, -INFINITY}, {std::nan(""), 2.0}}}});
    auto y = max_pool2d(x, {.kernel = {2, 2}});
    CHECK(std::isnan(y(0, 0, 0, 0)));
    auto all_low = T4::full({1, 1, 2, 2}, -INFINITY);
    auto r = max_pool2d_with_indices(all_low, {.kernel = {2, 2}});
    CHECK(r.output(0, 0, 0, 0) == -INFINITY);
    CHECK(r.indices(0, 0, 0, 0) == 0);
}

TEST_CASE("spatial op errors name the op and the shapes", "[conv]") {
    using Catch::Contains;
    auto x = T4::ones({1, 4, 5, 5});
    REQUIRE_THROWS_WITH(conv2d(x, T4::ones({2, 3, 3, 3})),
                        Contains("conv2d: input of shape [1, 4, 5, 5] has 4 channels but weight of shape [2, 3, 3, 3] "
                                 "expects 3"));
    REQUIRE_THROWS_AS(conv2d(x, T4::ones({2, 3, 3, 3})), Error);
    REQUIRE_THROWS_WITH(conv2d(x, T4::ones({3, 2, 3, 3}), {}, {.groups = 2}),
                        Contains("weight of shape [3, 2, 3, 3] has 3 output channels, not divisible by groups = 2"));
    REQUIRE_THROWS_WITH(conv2d(x, T4::ones({2, 4, 3, 3}), T1::ones({3})),
                        Contains("conv2d: bias of shape [3] does not fit weight of shape [2, 4, 3, 3]"));
    REQUIRE_THROWS_WITH(conv2d(x, T4::ones({2, 4, 7, 3})),
                        Contains("conv2d: input of shape [1, 4, 5, 5] (padded by [0, 0]) is smaller than the dilated "
                                 "kernel of weight [2, 4, 7, 3]"));
    REQUIRE_THROWS_WITH(conv2d(x, T4::ones({2, 4, 3, 3}), {}, {.stride = {0, 1}}), Contains("stride must be positive"));
    REQUIRE_THROWS_WITH(conv2d_backward(T4::ones({1, 2, 4, 4}), x, T4::ones({2, 4, 3, 3}), false),
                        Contains("conv2d_backward: grad_out of shape [1, 2, 4, 4] does not match the output of input "
                                 "[1, 4, 5, 5] and weight [2, 4, 3, 3] (expected [1, 2, 3, 3])"));

    REQUIRE_THROWS_WITH(conv_transpose2d(x, T4::ones({3, 2, 3, 3})),
                        Contains("conv_transpose2d: input of shape [1, 4, 5, 5] has 4 channels but weight of shape "
                                 "[3, 2, 3, 3] expects 3"));
    REQUIRE_THROWS_WITH(conv_transpose2d(x, T4::ones({4, 2, 3, 3}), {}, {.stride = {2, 2}, .output_padding = {2, 0}}),
                        Contains("output_padding [2, 0] must be smaller than either the stride [2, 2] or the dilation"));
    REQUIRE_THROWS_WITH(conv_transpose2d(x, T4::ones({4, 2, 3, 3}), T1::ones({2}), {.groups = 2}),
                        Contains("conv_transpose2d: bias of shape [2] does not fit weight of shape [4, 2, 3, 3] with "
                                 "groups = 2 (expected [4])"));

    REQUIRE_THROWS_WITH(max_pool2d(x, {.kernel = {2, 2}, .padding = {2, 0}}),
                        Contains("max_pool2d: padding [2, 0] must be between 0 and half the kernel [2, 2]"));
    REQUIRE_THROWS_WITH(avg_pool2d(x, {.kernel = {7, 2}, .padding = {0, 0}}),
                        Contains("avg_pool2d: input of shape [1, 4, 5, 5] (padded by [0, 0]) is smaller than the "
                                 "window [7, 2]"));
    REQUIRE_THROWS_WITH(avg_pool2d(x, {.kernel = {2, 2}, .dilation = {2, 2}}),
                        Contains("only max_pool2d takes a dilation"));
    REQUIRE_THROWS_WITH(adaptive_avg_pool2d(x, {0, 3}), Contains("adaptive_avg_pool2d: output size [0, 3] must be positive"));
    REQUIRE_THROWS_WITH(avg_pool2d_backward(T4::ones({1, 4, 3, 3}), x, {.kernel = {2, 2}}),
                        Contains("avg_pool2d_backward: grad_out of shape [1, 4, 3, 3] does not match the output for "
                                 "input of shape [1, 4, 5, 5] (expected [1, 4, 2, 2])"));

    REQUIRE_THROWS_WITH(interpolate(x, std::array<index_t, 2>{8, 8}, Interpolation::nearest, true),
                        Contains("align_corners can only be set with bilinear interpolation"));
    REQUIRE_THROWS_WITH(interpolate(x, std::array<index_t, 2>{0, 8}, Interpolation::bilinear),
                        Contains("interpolate: output size [0, 8] must be positive (input of shape [1, 4, 5, 5])"));
    REQUIRE_THROWS_WITH(interpolate_scale(x, std::array<double, 2>{0.1, 1.0}, Interpolation::bilinear),
                        Contains("scale_factor (0.1, 1) on input of shape [1, 4, 5, 5] gives an empty output"));
    REQUIRE_THROWS_WITH(interpolate_scale(x, std::array<double, 2>{-1.0, 1.0}, Interpolation::bilinear),
                        Contains("must be positive and finite"));
}

TEST_CASE("the example of docs/ops-spatial.md", "[conv]") {
    auto x = Tensor<float, 4>::randn({2, 3, 32, 32});                      // [N, C, H, W]
    auto w = Tensor<float, 4>::randn({16, 3, 3, 3});                       // [O, C, kh, kw]
    auto b = Tensor<float, 1>::zeros({16});
    auto y = conv2d(x, w, b, {.stride = {2, 2}, .padding = {1, 1}});       // [2, 16, 16, 16]
    auto p = max_pool2d(y, {.kernel = {2, 2}});                            // [2, 16, 8, 8]
    auto u = interpolate(p, std::array<index_t, 2>{32, 32}, Interpolation::bilinear);  // [2, 16, 32, 32]
    auto t = conv_transpose2d(y, Tensor<float, 4>::randn({16, 8, 4, 4}), {},
                              {.stride = {2, 2}, .padding = {1, 1}});      // [2, 8, 32, 32]
    CHECK(y.shape() == Shape<4>{2, 16, 16, 16});
    CHECK(p.shape() == Shape<4>{2, 16, 8, 8});
    CHECK(u.shape() == Shape<4>{2, 16, 32, 32});
    CHECK(t.shape() == Shape<4>{2, 8, 32, 32});
}
