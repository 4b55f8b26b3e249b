// Finite-difference checks of the spatial ops' backward functions (conv2d, conv_transpose2d,
// pooling, interpolate), one test case per op and per variant that takes its own code path.
// Shapes are tiny: gradcheck runs the forward twice per input element.
#include <weft/ops/conv2d.hpp>
#include <weft/ops/conv_transpose2d.hpp>
#include <weft/ops/interpolate.hpp>
#include <weft/ops/pool.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {
using T1 = Tensor<double, 1>;
using T4 = Tensor<double, 4>;
T4 randn4(index_t n, index_t c, index_t h, index_t w) { return T4::randn({n, c, h, w}); }
}  // namespace

TEST_CASE("gradcheck conv2d with stride, padding and dilation", "[gradcheck]") {
    const Conv2dOptions opts{.stride = {2, 1}, .padding = {1, 2}, .dilation = {2, 1}};
    WEFT_CHECK_GRADIENT([&](const T4& x, const T4& w, const T1& b) { return conv2d(x, w, b, opts); },
                        randn4(2, 2, 6, 5), randn4(3, 2, 3, 2), T1::randn({3}));
}

TEST_CASE("gradcheck conv2d with groups", "[gradcheck]") {
    const Conv2dOptions opts{.padding = {1, 0}, .groups = 2};
    WEFT_CHECK_GRADIENT([&](const T4& x, const T4& w, const T1& b) { return conv2d(x, w, b, opts); },
                        randn4(2, 4, 4, 4), randn4(4, 2, 2, 3), T1::randn({4}));
}

TEST_CASE("gradcheck conv2d depthwise without bias", "[gradcheck]") {
    const Conv2dOptions opts{.stride = {2, 2}, .padding = {1, 1}, .groups = 3};
    WEFT_CHECK_GRADIENT([&](const T4& x, const T4& w) { return conv2d(x, w, {}, opts); }, randn4(1, 3, 5, 4),
                        randn4(3, 1, 3, 3));
}

TEST_CASE("gradcheck conv2d pointwise", "[gradcheck]") {
    // 1x1, stride 1, no padding: the path that multiplies the input in place, without im2col.
    WEFT_CHECK_GRADIENT([](const T4& x, const T4& w, const T1& b) { return conv2d(x, w, b); }, randn4(2, 3, 2, 3),
                        randn4(4, 3, 1, 1), T1::randn({4}));
    const Conv2dOptions grouped{.groups = 2};
    WEFT_CHECK_GRADIENT([&](const T4& x, const T4& w) { return conv2d(x, w, {}, grouped); }, randn4(1, 4, 2, 2),
                        randn4(4, 2, 1, 1));
}

TEST_CASE("gradcheck conv_transpose2d with stride and output_padding", "[gradcheck]") {
    const ConvTranspose2dOptions opts{.stride = {2, 2}, .padding = {1, 0}, .output_padding = {1, 1}};
    WEFT_CHECK_GRADIENT([&](const T4& x, const T4& w, const T1& b) { return conv_transpose2d(x, w, b, opts); },
                        randn4(2, 3, 3, 2), randn4(3, 2, 3, 3), T1::randn({2}));
}

TEST_CASE("gradcheck conv_transpose2d with groups and dilation", "[gradcheck]") {
    const ConvTranspose2dOptions opts{
        .stride = {2, 1}, .padding = {1, 1}, .output_padding = {1, 1}, .dilation = {1, 2}, .groups = 2};
    WEFT_CHECK_GRADIENT([&](const T4& x, const T4& w, const T1& b) { return conv_transpose2d(x, w, b, opts); },
                        randn4(1, 4, 3, 3), randn4(4, 1, 2, 2), T1::randn({2}));
}

TEST_CASE("gradcheck max_pool2d with padding and ceil_mode", "[gradcheck]") {
    const Pool2dOptions opts{.kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true};
    WEFT_CHECK_GRADIENT([&](const T4& x) { return max_pool2d(x, opts); }, randn4(2, 2, 6, 5));
    const Pool2dOptions dilated{.kernel = {2, 2}, .stride = {1, 2}, .padding = {1, 0}, .dilation = {2, 1}};
    WEFT_CHECK_GRADIENT([&](const T4& x) { return max_pool2d(x, dilated); }, randn4(1, 2, 5, 5));
}

TEST_CASE("gradcheck avg_pool2d counting padding", "[gradcheck]") {
    const Pool2dOptions opts{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    WEFT_CHECK_GRADIENT([&](const T4& x) { return avg_pool2d(x, opts); }, randn4(2, 2, 5, 6));
}

TEST_CASE("gradcheck avg_pool2d without padding in the count and ceil_mode", "[gradcheck]") {
    const Pool2dOptions opts{
        .kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true, .count_include_pad = false};
    WEFT_CHECK_GRADIENT([&](const T4& x) { return avg_pool2d(x, opts); }, randn4(1, 2, 6, 7));
}

TEST_CASE("gradcheck adaptive_avg_pool2d with overlapping bins", "[gradcheck]") {
    // 7 -> 3 and 5 -> 4 do not divide: neighbouring bins share rows and columns.
    WEFT_CHECK_GRADIENT([](const T4& x) { return adaptive_avg_pool2d(x, {3, 4}); }, randn4(2, 2, 7, 5));
}

TEST_CASE("gradcheck interpolate nearest", "[gradcheck]") {
    WEFT_CHECK_GRADIENT([](const T4& x) { return interpolate(x, std::array<index_t, 2>{5, 3}, Interpolation::nearest); },
                        randn4(1, 2, 3, 4));
}

TEST_CASE("gradcheck interpolate bilinear", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const T4& x) { return interpolate(x, std::array<index_t, 2>{5, 3}, Interpolation::bilinear); },
        randn4(1, 2, 3, 4));
}

TEST_CASE("gradcheck interpolate bilinear with align_corners", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const T4& x) { return interpolate(x, std::array<index_t, 2>{5, 2}, Interpolation::bilinear, true); },
        randn4(1, 2, 3, 4));
}

TEST_CASE("gradcheck interpolate by scale_factor", "[gradcheck]") {
    WEFT_CHECK_GRADIENT(
        [](const T4& x) { return interpolate_scale(x, std::array<double, 2>{1.5, 0.75}, Interpolation::bilinear); },
        randn4(1, 2, 3, 4));
    WEFT_CHECK_GRADIENT(
        [](const T4& x) { return interpolate_scale(x, std::array<double, 2>{1.7, 2.0}, Interpolation::nearest); },
        randn4(1, 1, 3, 3));
}

TEST_CASE("gradcheck conv2d, max_pool2d and interpolate chained", "[gradcheck]") {
    // The ops' backward functions handing gradients to each other through the tape.
    WEFT_CHECK_GRADIENT(
        [](const T4& x, const T4& w) {
            auto h = conv2d(x, w, {}, {.padding = {1, 1}});
            auto p = max_pool2d(h, {.kernel = {2, 2}});
            return interpolate(p, std::array<index_t, 2>{3, 3}, Interpolation::bilinear);
        },
        randn4(1, 2, 4, 4), randn4(2, 2, 3, 3));
}
