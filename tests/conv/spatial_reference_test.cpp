// The spatial ops against PyTorch (tests/reference/conv.py): forward and gradients of every
// case in double precision, then float against double on a larger convolution.
#include <weft/ops/conv2d.hpp>
#include <weft/ops/conv_transpose2d.hpp>
#include <weft/ops/interpolate.hpp>
#include <weft/ops/pool.hpp>

#include <functional>
#include <string>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

using T1 = Tensor<double, 1>;
using T4 = Tensor<double, 4>;
constexpr double tol = 1e-10;

SafetensorsFile& data() {
    static SafetensorsFile f = weft::test::fixture("conv");
    return f;
}

T4 input(const std::string& key) { return data().get<double, 4>(key).requires_grad_(); }

// Runs y = op(inputs), checks y, then backward of sum(y * r) and each input's gradient.
void check_case(const std::string& name, const std::function<T4()>& op, std::vector<T4> inputs4,
                const std::vector<std::string>& keys4, T1 bias = {}) {
    auto y = op();
    check_close(y, data().get<double, 4>(name + ".y"), tol, tol, name + " forward");
    sum(y * data().get<double, 4>(name + ".r")).backward();
    for (std::size_t i = 0; i < inputs4.size(); ++i)
        check_close(inputs4[i].grad(), data().get<double, 4>(name + ".g" + keys4[i]), tol, tol,
                    name + " gradient of " + keys4[i]);
    if (bias.defined()) check_close(bias.grad(), data().get<double, 1>(name + ".gb"), tol, tol, name + " gradient of b");
}

void conv_case(const std::string& name, const Conv2dOptions& opts, bool with_bias) {
    auto x = input(name + ".x"), w = input(name + ".w");
    T1 b = with_bias ? data().get<double, 1>(name + ".b").requires_grad_() : T1();
    check_case(name, [&] { return conv2d(x, w, b, opts); }, {x, w}, {"x", "w"}, b);
}

void conv_transpose_case(const std::string& name, const ConvTranspose2dOptions& opts, bool with_bias) {
    auto x = input(name + ".x"), w = input(name + ".w");
    T1 b = with_bias ? data().get<double, 1>(name + ".b").requires_grad_() : T1();
    check_case(name, [&] { return conv_transpose2d(x, w, b, opts); }, {x, w}, {"x", "w"}, b);
}

void unary_case(const std::string& name, const std::function<T4(const T4&)>& op) {
    auto x = input(name + ".x");
    check_case(name, [&] { return op(x); }, {x}, {"x"});
}

}  // namespace

TEST_CASE("conv2d matches PyTorch", "[conv][reference]") {
    conv_case("conv_strided", {.stride = {2, 1}, .padding = {1, 2}, .dilation = {2, 1}}, true);
    conv_case("conv_groups", {.padding = {1, 0}, .groups = 2}, true);
    conv_case("conv_depthwise_nobias", {.stride = {2, 2}, .padding = {1, 1}, .groups = 3}, false);
    conv_case("conv_pointwise", {}, true);
    conv_case("conv_pointwise_groups", {.groups = 2}, false);
    conv_case("conv_1x1_strided", {.stride = {2, 2}, .padding = {1, 1}}, true);
}

TEST_CASE("conv_transpose2d matches PyTorch", "[conv][reference]") {
    conv_transpose_case("convt_strided", {.stride = {2, 2}, .padding = {1, 0}, .output_padding = {1, 1}}, true);
    conv_transpose_case(
        "convt_groups",
        {.stride = {2, 1}, .padding = {1, 1}, .output_padding = {1, 1}, .dilation = {1, 2}, .groups = 2}, true);
    conv_transpose_case("convt_pointwise_nobias", {}, false);
}

TEST_CASE("pooling matches PyTorch", "[conv][reference]") {
    unary_case("maxpool_padded",
               [](const T4& x) { return max_pool2d(x, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}); });
    unary_case("maxpool_ceil_dilated", [](const T4& x) {
        return max_pool2d(
            x, {.kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}, .dilation = {1, 2}, .ceil_mode = true});
    });
    // Ties everywhere: the gradient must land on the same (first) maximum as PyTorch's.
    unary_case("maxpool_ties",
               [](const T4& x) { return max_pool2d(x, {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}); });
    unary_case("avgpool_include_pad_ceil", [](const T4& x) {
        return avg_pool2d(x, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true});
    });
    unary_case("avgpool_exclude_pad_ceil", [](const T4& x) {
        return avg_pool2d(x, {.kernel = {3, 2},
                              .stride = {2, 2},
                              .padding = {1, 1},
                              .ceil_mode = true,
                              .count_include_pad = false});
    });
    unary_case("adaptive_down", [](const T4& x) { return adaptive_avg_pool2d(x, {3, 4}); });
    unary_case("adaptive_up", [](const T4& x) { return adaptive_avg_pool2d(x, {5, 2}); });
}

TEST_CASE("interpolate matches PyTorch", "[conv][reference]") {
    using Size = std::array<index_t, 2>;
    using Scale = std::array<double, 2>;
    constexpr auto nearest = Interpolation::nearest;
    constexpr auto bilinear = Interpolation::bilinear;
    unary_case("nearest_size", [&](const T4& x) { return interpolate(x, Size{7, 9}, nearest); });
    unary_case("nearest_down", [&](const T4& x) { return interpolate(x, Size{2, 3}, nearest); });
    unary_case("nearest_scale", [&](const T4& x) { return interpolate_scale(x, Scale{1.7, 2.0}, nearest); });
    // 3 * 1.2 rounds down to 3 (copied unchanged); 5 * 2.1 to 10 (exactly doubled: d / 2).
    unary_case("nearest_scale_same_size", [&](const T4& x) { return interpolate_scale(x, Scale{1.2, 2.1}, nearest); });
    unary_case("bilinear_size", [&](const T4& x) { return interpolate(x, Size{5, 7}, bilinear); });
    unary_case("bilinear_down", [&](const T4& x) { return interpolate(x, Size{2, 3}, bilinear); });
    unary_case("bilinear_corners", [&](const T4& x) { return interpolate(x, Size{5, 7}, bilinear, true); });
    unary_case("bilinear_corners_down", [&](const T4& x) { return interpolate(x, Size{1, 3}, bilinear, true); });
    unary_case("bilinear_scale", [&](const T4& x) { return interpolate_scale(x, Scale{1.5, 0.75}, bilinear); });
    unary_case("bilinear_scale_same_size", [&](const T4& x) { return interpolate_scale(x, Scale{1.2, 1.7}, bilinear); });
    unary_case("bilinear_scale_corners", [&](const T4& x) { return interpolate_scale(x, Scale{1.5, 2.0}, bilinear, true); });
}

TEST_CASE("conv2d in float matches double on a 3x3 convolution", "[conv]") {
    // Large enough that the GEMM's blocking and im2col's interior and border paths all run.
    auto xd = T4::randn({2, 32, 24, 20});
    auto wd = eval(T4::randn({48, 32, 3, 3}) * 0.1);
    auto bd = T1::randn({48});
    const Conv2dOptions opts{.padding = {1, 1}};
    auto yd = conv2d(xd, wd, bd, opts);
    auto yf = conv2d(eval(cast<float>(xd)), eval(cast<float>(wd)), eval(cast<float>(bd)), opts);
    REQUIRE(yf.shape() == Shape<4>{2, 48, 24, 20});
    double scale = 0;
    for (index_t i = 0; i < yd.numel(); ++i) scale = std::max(scale, std::abs(yd.data()[i]));
    check_close(yf, yd, 1e-4 * scale, 1e-4, "float conv2d against double");

    // ...and its gradients, through the same kernels in the other direction.
    auto g = T4::randn(yd.shape());
    auto gd = conv2d_backward(g, xd, wd, true, opts);
    auto gf = conv2d_backward(eval(cast<float>(g)), eval(cast<float>(xd)), eval(cast<float>(wd)), true, opts);
    double sx = 0, sw = 0;
    for (index_t i = 0; i < gd.grad_x.numel(); ++i) sx = std::max(sx, std::abs(gd.grad_x.data()[i]));
    for (index_t i = 0; i < gd.grad_w.numel(); ++i) sw = std::max(sw, std::abs(gd.grad_w.data()[i]));
    check_close(gf.grad_x, gd.grad_x, 1e-4 * sx, 1e-4, "float grad_x against double");
    check_close(gf.grad_w, gd.grad_w, 1e-4 * sw, 1e-4, "float grad_w against double");
}
