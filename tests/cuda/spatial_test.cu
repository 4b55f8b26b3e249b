// The spatial ops on the GPU (ops/cuda/conv2d.cuh, conv_transpose2d.cuh, pool.cuh,
// interpolate.cuh) against the CPU: conv2d and conv_transpose2d with strides, padding, dilation,
// groups, 1x1 and the ViT patch embedding, several batch chunks, max/avg/adaptive pooling and
// nearest/bilinear interpolation, forward and backward, strided inputs, bf16/half/double, and one
// chain of all of them through autograd.
//
// Tolerances:
// - conv2d and conv_transpose2d go through cuBLAS, which sums the products in another order than
//   the CPU's GEMM (and may split k), so fp32 results differ by a few ulp of the sum of |terms|:
//   rtol 1e-4 and an absolute tolerance growing with sqrt(number of terms) (inputs ~N(0, 1)).
// - pooling and interpolation add the same terms in the same order as the CPU (the backward
//   passes are gathers that follow the CPU's order), so they differ at most by contraction into
//   fused multiply-adds: tight tolerances. max_pool2d's forward and indices compare exactly; its
//   backward adds with atomics where windows overlap, so the order varies: a tolerance.
// - bf16/half: the reference is the CPU in float on the rounded inputs; the GPU computes in float
//   and rounds once per stored result (col2im also sums rounded column entries): rtol 2e-2 plus
//   an absolute tolerance for sums that cancel.
#include "common.cuh"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

using namespace weft;
using namespace weft_test;

namespace {

using HostT4 = Tensor<float, 4, Cpu>;
using HostT1 = Tensor<float, 1, Cpu>;
using GpuT4 = Tensor<float, 4, Cuda>;
using GpuT1 = Tensor<float, 1, Cuda>;

// Absolute tolerance of an fp32 sum of k products of ~N(0, 1) numbers in another order.
double fp32_atol(index_t k) { return 1e-5 * std::sqrt(double(std::max<index_t>(k, 1))) + 1e-6; }

// A float copy of a GPU tensor of any element type, on the host.
template <class T, int R>
Tensor<float, R, Cpu> host_float(const Tensor<T, R, Cuda>& t) {
    return eval(cast<float>(t)).template to<Cpu>();
}

// Restores cuda::conv_col_budget_bytes at the end of a scope (also when a REQUIRE fails).
struct ColBudget {
    double saved = weft::cuda::conv_col_budget_bytes;
    explicit ColBudget(double bytes) { weft::cuda::conv_col_budget_bytes = bytes; }
    ~ColBudget() { weft::cuda::conv_col_budget_bytes = saved; }
};

struct ConvCase {
    const char* name;
    Shape<4> x, w;
    Conv2dOptions opts;
    bool bias;
};

// conv2d forward and all three gradients, GPU against CPU, on random fp32 inputs.
void check_conv2d(const ConvCase& c, std::uint64_t seed) {
    INFO("conv2d case: " << c.name << ", x " << c.x << ", w " << c.w);
    const auto x = randn_host(c.x, seed);
    const auto w = randn_host(c.w, seed + 1);
    const HostT1 b = c.bias ? randn_host(Shape<1>{c.w[0]}, seed + 2) : HostT1();
    const auto xg = to_gpu(x), wg = to_gpu(w);
    const GpuT1 bg = c.bias ? to_gpu(b) : GpuT1();
    const auto y = conv2d(x, w, b, c.opts);
    require_close(conv2d(xg, wg, bg, c.opts), y, 1e-4, fp32_atol(c.w[1] * c.w[2] * c.w[3]));

    const auto g = randn_host(y.shape(), seed + 3);
    const auto want = conv2d_backward(g, x, w, c.bias, c.opts);
    const auto got = conv2d_backward(to_gpu(g), xg, wg, c.bias, c.opts);
    const index_t pixels = y.size(0) * y.size(2) * y.size(3);
    require_close(got.grad_x, want.grad_x, 1e-4, fp32_atol(c.w[0] / c.opts.groups * c.w[2] * c.w[3]));
    require_close(got.grad_w, want.grad_w, 1e-4, fp32_atol(pixels));
    if (c.bias) require_close(got.grad_b, want.grad_b, 1e-4, fp32_atol(pixels));
    else REQUIRE_FALSE(got.grad_b.defined());
}

struct ConvTransposeCase {
    const char* name;
    Shape<4> x, w;
    ConvTranspose2dOptions opts;
    bool bias;
};

void check_conv_transpose2d(const ConvTransposeCase& c, std::uint64_t seed) {
    INFO("conv_transpose2d case: " << c.name << ", x " << c.x << ", w " << c.w);
    const auto x = randn_host(c.x, seed);
    const auto w = randn_host(c.w, seed + 1);
    const index_t out_channels = c.w[1] * c.opts.groups;
    const HostT1 b = c.bias ? randn_host(Shape<1>{out_channels}, seed + 2) : HostT1();
    const auto xg = to_gpu(x), wg = to_gpu(w);
    const GpuT1 bg = c.bias ? to_gpu(b) : GpuT1();
    const auto y = conv_transpose2d(x, w, b, c.opts);
    // Each output sums at most Cin / G * kh * kw products.
    require_close(conv_transpose2d(xg, wg, bg, c.opts), y, 1e-4, fp32_atol(c.w[0] / c.opts.groups * c.w[2] * c.w[3]));

    const auto g = randn_host(y.shape(), seed + 3);
    const auto want = conv_transpose2d_backward(g, x, w, c.bias, c.opts);
    const auto got = conv_transpose2d_backward(to_gpu(g), xg, wg, c.bias, c.opts);
    const index_t pixels = c.x[0] * c.x[2] * c.x[3];
    require_close(got.grad_x, want.grad_x, 1e-4, fp32_atol(c.w[1] * c.w[2] * c.w[3]));
    require_close(got.grad_w, want.grad_w, 1e-4, fp32_atol(pixels));
    if (c.bias) require_close(got.grad_b, want.grad_b, 1e-4, fp32_atol(y.size(0) * y.size(2) * y.size(3)));
}

}  // namespace

TEST_CASE("cuda: conv2d forward and backward match the CPU with stride, padding, dilation and groups", "[cuda]") {
    const ConvCase cases[] = {
        {"3x3, padding 1, bias", {2, 5, 11, 13}, {7, 5, 3, 3}, {.padding = {1, 1}}, true},
        {"3x5, stride (2, 3), padding (1, 2)",
         {3, 4, 17, 10},
         {6, 4, 3, 5},
         {.stride = {2, 3}, .padding = {1, 2}},
         true},
        {"dilation (2, 3)", {2, 3, 15, 14}, {5, 3, 3, 3}, {.padding = {2, 1}, .dilation = {2, 3}}, false},
        {"groups 3 on 2 images (batched over groups)",
         {2, 6, 9, 11},
         {9, 2, 3, 3},
         {.stride = {1, 2}, .padding = {1, 1}, .groups = 3},
         true},
        {"groups 2 on 5 images (batched over images)", {5, 4, 8, 7}, {6, 2, 3, 3}, {.groups = 2}, true},
        {"depthwise 3x3", {2, 8, 10, 9}, {8, 1, 3, 3}, {.padding = {1, 1}, .groups = 8}, false},
        {"1x1 (no im2col)", {3, 19, 7, 9}, {21, 19, 1, 1}, {}, true},
        {"1x1 with groups (no im2col)", {2, 6, 5, 5}, {4, 3, 1, 1}, {.groups = 2}, false},
        {"1x1 with stride 2 (im2col)", {2, 5, 9, 9}, {3, 5, 1, 1}, {.stride = {2, 2}}, true},
        {"kernel larger than the input", {1, 2, 3, 4}, {3, 2, 5, 5}, {.padding = {2, 2}}, true},
        {"FPN 3x3", {2, 64, 15, 15}, {32, 64, 3, 3}, {.padding = {1, 1}}, true},
        {"FPN 1x1 lateral", {2, 96, 14, 14}, {64, 96, 1, 1}, {}, true},
    };
    std::uint64_t seed = 100;
    for (const auto& c : cases) check_conv2d(c, seed += 10);
}

TEST_CASE("cuda: the ViT patch embedding (16x16, stride 16) matches the CPU", "[cuda]") {
    // CLIP's conv1: no bias; a small batch of 64x48 images, 4x3 patches of 3 * 16 * 16 = 768 taps.
    check_conv2d({"patch embedding", {2, 3, 64, 48}, {40, 3, 16, 16}, {.stride = {16, 16}}, false}, 200);
    // A size that does not divide into patches: the right and bottom remainders are dropped.
    check_conv2d({"patch embedding, ragged", {3, 3, 37, 50}, {24, 3, 16, 16}, {.stride = {16, 16}}, true}, 210);
}

TEST_CASE("cuda: conv2d in several batch chunks and on strided inputs matches the CPU", "[cuda]") {
    {
        // 27 * 72 floats of columns per image: a 16000-byte budget takes two images per chunk
        // (the weight gradient, which also keeps the rearranged output gradient, one), so five
        // images run in several chunks, the last one short. The second case (36 * 80 floats
        // per image) and the transposed one (27 * 30 floats) chunk too.
        const ColBudget budget(16000);
        check_conv2d({"chunks, 3x3", {5, 3, 9, 8}, {4, 3, 3, 3}, {.padding = {1, 1}}, true}, 300);
        check_conv2d({"chunks, stride 2, groups", {5, 4, 21, 17}, {6, 2, 3, 3}, {.stride = {2, 2}, .groups = 2}, true},
                     310);
        const ConvTransposeCase t{"chunks", {5, 4, 6, 5}, {4, 3, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}}, true};
        check_conv_transpose2d(t, 320);
    }
    // Transposed and sliced views: the CUDA path makes them dense as the CPU does.
    const auto base = randn_host(Shape<4>{4, 5, 10, 13}, 330);               // [N, C, W, H]
    const auto x = base.transpose(2, 3).slice(0, 1, 4).slice(1, 0, 5, 2);    // [3, 3, 13, 10], strided
    const auto wbase = randn_host(Shape<4>{6, 3, 3, 3}, 331);
    const auto w = wbase.transpose(2, 3);                                    // a transposed weight
    const auto b = randn_host(Shape<1>{6}, 332);
    const auto xg = to_gpu(base).transpose(2, 3).slice(0, 1, 4).slice(1, 0, 5, 2);
    const auto wg = to_gpu(wbase).transpose(2, 3);
    const Conv2dOptions opts{.stride = {2, 1}, .padding = {1, 1}};
    const auto y = conv2d(x, w, b, opts);
    require_close(conv2d(xg, wg, to_gpu(b), opts), y, 1e-4, fp32_atol(27));
    const auto gbase = randn_host(Shape<4>{y.size(0), y.size(1), y.size(3), y.size(2)}, 333);
    const auto g = gbase.transpose(2, 3);  // a strided output gradient too
    const auto want = conv2d_backward(g, x, w, true, opts);
    const auto got = conv2d_backward(to_gpu(gbase).transpose(2, 3), xg, wg, true, opts);
    require_close(got.grad_x, want.grad_x, 1e-4, fp32_atol(54));
    require_close(got.grad_w, want.grad_w, 1e-4, fp32_atol(y.numel() / 6));
    require_close(got.grad_b, want.grad_b, 1e-4, fp32_atol(y.numel() / 6));

    // The shape checks run before the dispatch, with the CPU's messages.
    REQUIRE_THROWS_WITH(conv2d(xg, to_gpu(randn_host(Shape<4>{6, 4, 3, 3}, 334))),
                        Catch::Contains("conv2d: input of shape"));
}

TEST_CASE("cuda: conv_transpose2d forward and backward match the CPU", "[cuda]") {
    const ConvTransposeCase cases[] = {
        {"stride 2, padding 1, output_padding 1",
         {2, 5, 7, 6},
         {5, 4, 3, 3},
         {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}},
         true},
        {"groups 3, dilation (2, 1), stride (1, 2)",
         {3, 6, 5, 8},
         {6, 2, 3, 2},
         {.stride = {1, 2}, .padding = {1, 0}, .dilation = {2, 1}, .groups = 3},
         true},
        {"1x1 (no col2im)", {2, 9, 6, 7}, {9, 5, 1, 1}, {}, false},
        {"4x4 stride 4 (non-overlapping upsampling)", {2, 8, 3, 4}, {8, 3, 4, 4}, {.stride = {4, 4}}, true},
        {"3x3 stride 1 padding 1", {2, 16, 9, 11}, {16, 12, 3, 3}, {.padding = {1, 1}}, false},
    };
    std::uint64_t seed = 400;
    for (const auto& c : cases) check_conv_transpose2d(c, seed += 10);
}

TEST_CASE("cuda: conv2d and conv_transpose2d in double, bf16 and half", "[cuda]") {
    const Shape<4> xs{3, 6, 11, 9}, ws{8, 3, 3, 3};
    const Conv2dOptions opts{.stride = {2, 1}, .padding = {1, 1}, .groups = 2};
    const auto x = randn_host(xs, 500);
    const auto w = randn_host(ws, 501);
    const auto b = randn_host(Shape<1>{8}, 502);

    // double: the same sums to double rounding.
    {
        const Tensor<double, 4, Cpu> xd = cast<double>(x), wd = cast<double>(w);
        const Tensor<double, 1, Cpu> bd = cast<double>(b);
        const auto y = conv2d(xd, wd, bd, opts);
        require_close(conv2d(to_gpu(xd), to_gpu(wd), to_gpu(bd), opts), y, 1e-10, 1e-10);
        const Tensor<double, 4, Cpu> g = cast<double>(randn_host(y.shape(), 503));
        const auto want = conv2d_backward(g, xd, wd, true, opts);
        const auto got = conv2d_backward(to_gpu(g), to_gpu(xd), to_gpu(wd), true, opts);
        require_close(got.grad_x, want.grad_x, 1e-10, 1e-10);
        require_close(got.grad_w, want.grad_w, 1e-10, 1e-10);
        require_close(got.grad_b, want.grad_b, 1e-10, 1e-10);
    }

    // bf16: against the CPU in float on the rounded inputs.
    {
        const Tensor<bf16, 4, Cpu> xb = cast<bf16>(x), wb = cast<bf16>(w);
        const Tensor<bf16, 1, Cpu> bb = cast<bf16>(b);
        const HostT4 xf = cast<float>(xb), wf = cast<float>(wb);
        const HostT1 bf = cast<float>(bb);
        const auto y = conv2d(xf, wf, bf, opts);
        require_close(host_float(conv2d(to_gpu(xb), to_gpu(wb), to_gpu(bb), opts)), y, 2e-2, 1e-2);
        const Tensor<bf16, 4, Cpu> gb = cast<bf16>(randn_host(y.shape(), 504));
        const HostT4 gf = cast<float>(gb);
        const auto want = conv2d_backward(gf, xf, wf, true, opts);
        const auto got = conv2d_backward(to_gpu(gb), to_gpu(xb), to_gpu(wb), true, opts);
        // grad_x sums up to 9 taps of rounded column entries, each ~sqrt(4) in size.
        require_close(host_float(got.grad_x), want.grad_x, 2e-2, 5e-2);
        require_close(host_float(got.grad_w), want.grad_w, 2e-2, 1e-2);
        require_close(host_float(got.grad_b), want.grad_b, 2e-2, 1e-2);

        // conv_transpose2d (its forward is the col2im path) and the patch embedding in bf16.
        const ConvTranspose2dOptions topts{.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 0}};
        const Tensor<bf16, 4, Cpu> wt = cast<bf16>(randn_host(Shape<4>{6, 5, 3, 3}, 505));
        require_close(host_float(conv_transpose2d(to_gpu(xb), to_gpu(wt), Tensor<bf16, 1, Cuda>(), topts)),
                      conv_transpose2d(xf, HostT4(cast<float>(wt)), HostT1(), topts), 2e-2, 3e-2);
        const Tensor<bf16, 4, Cpu> img = cast<bf16>(randn_host(Shape<4>{2, 3, 48, 32}, 506));
        const Tensor<bf16, 4, Cpu> patch = cast<bf16>(randn_host(Shape<4>{16, 3, 16, 16}, 507));
        const Conv2dOptions embed{.stride = {16, 16}};
        require_close(host_float(conv2d(to_gpu(img), to_gpu(patch), Tensor<bf16, 1, Cuda>(), embed)),
                      conv2d(HostT4(cast<float>(img)), HostT4(cast<float>(patch)), HostT1(), embed), 2e-2, 2e-2);
    }

    // half: the forward, one rounding of a float sum.
    {
        const Tensor<half, 4, Cpu> xh = cast<half>(x), wh = cast<half>(w);
        const Tensor<half, 1, Cpu> bh = cast<half>(b);
        const auto y = conv2d(HostT4(cast<float>(xh)), HostT4(cast<float>(wh)), HostT1(cast<float>(bh)), opts);
        require_close(host_float(conv2d(to_gpu(xh), to_gpu(wh), to_gpu(bh), opts)), y, 4e-3, 4e-3);
    }
}

TEST_CASE("cuda: max_pool2d values, indices and gradients match the CPU", "[cuda]") {
    struct Case {
        const char* name;
        Shape<4> x;
        Pool2dOptions opts;
    };
    const Case cases[] = {
        {"3x3 stride 2 padding 1", {2, 3, 13, 11}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}},
        {"2x3 ceil_mode", {2, 3, 9, 10}, {.kernel = {2, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}},
        {"3x3 dilation 2 stride 1 (overlapping)",
         {1, 4, 12, 9},
         {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}, .dilation = {2, 2}}},
        {"2x2 (stride = kernel)", {3, 5, 8, 6}, {.kernel = {2, 2}}},
    };
    std::uint64_t seed = 600;
    for (const auto& c : cases) {
        INFO("max_pool2d case: " << c.name);
        auto x = randn_host(c.x, seed += 10);
        const auto xg = to_gpu(x);
        const auto want = max_pool2d_with_indices(x, c.opts);
        const auto got = max_pool2d_with_indices(xg, c.opts);
        require_identical(got.output, want.output);
        require_identical(got.indices, want.indices);
        require_identical(max_pool2d(xg, c.opts), want.output);
        const auto g = randn_host(want.output.shape(), seed + 1);
        // Overlapping windows add in an order that varies (atomics): a tolerance.
        require_close(max_pool2d_backward(to_gpu(g), xg, got.indices).grad_x,
                      max_pool2d_backward(g, x, want.indices).grad_x, 1e-6, 1e-6);
    }

    // NaN wins its window (the last NaN, as the CPU loop), -inf stays; a window of -inf keeps
    // its first element's index.
    auto x = randn_host(Shape<4>{1, 2, 6, 6}, 650);
    x(0, 0, 1, 1) = std::numeric_limits<float>::quiet_NaN();
    x(0, 0, 4, 5) = -std::numeric_limits<float>::infinity();
    for (index_t h = 0; h < 2; ++h)
        for (index_t w = 0; w < 2; ++w) x(0, 1, h, w) = -std::numeric_limits<float>::infinity();
    const Pool2dOptions opts{.kernel = {2, 2}};
    const auto want = max_pool2d_with_indices(x, opts);
    const auto got = max_pool2d_with_indices(to_gpu(x), opts);
    require_close(got.output, want.output, 0, 0);  // NaN matches NaN
    require_identical(got.indices, want.indices);

    // bf16 and double: maxima are exact; the bf16 gradient sums in float and rounds once.
    const Tensor<bf16, 4, Cpu> xb = cast<bf16>(randn_host(Shape<4>{2, 3, 9, 7}, 660));
    const HostT4 xf = cast<float>(xb);
    const Pool2dOptions over{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    const auto wb = max_pool2d_with_indices(xf, over);
    const auto gb = max_pool2d_with_indices(to_gpu(xb), over);
    require_close(host_float(gb.output), wb.output, 0, 0);
    require_identical(gb.indices, wb.indices);
    const Tensor<bf16, 4, Cpu> gradb = cast<bf16>(randn_host(wb.output.shape(), 661));
    require_close(host_float(max_pool2d_backward(to_gpu(gradb), to_gpu(xb), gb.indices).grad_x),
                  max_pool2d_backward(HostT4(cast<float>(gradb)), xf, wb.indices).grad_x, 1e-2, 1e-3);
    const Tensor<double, 4, Cpu> xd = cast<double>(xf);
    const auto wd = max_pool2d_with_indices(xd, over);
    const auto gd = max_pool2d_with_indices(to_gpu(xd), over);
    require_identical(gd.output, wd.output);
    const Tensor<double, 4, Cpu> gradd = cast<double>(randn_host(wd.output.shape(), 662));
    require_close(max_pool2d_backward(to_gpu(gradd), to_gpu(xd), gd.indices).grad_x,
                  max_pool2d_backward(gradd, xd, wd.indices).grad_x, 1e-14, 1e-14);
}

TEST_CASE("cuda: avg_pool2d and adaptive_avg_pool2d match the CPU, forward and backward", "[cuda]") {
    struct Case {
        const char* name;
        Shape<4> x;
        Pool2dOptions opts;
    };
    const Case cases[] = {
        {"3x3 stride 2 padding 1, padding counted",
         {2, 3, 13, 11},
         {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}},
        {"3x3 stride 2 padding 1, padding not counted",
         {2, 3, 13, 11},
         {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .count_include_pad = false}},
        {"2x3 stride (1, 2) ceil_mode, padding not counted",
         {1, 4, 10, 9},
         {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 1}, .ceil_mode = true, .count_include_pad = false}},
        {"3x3 stride 2 ceil_mode, padding counted",
         {2, 2, 8, 7},
         {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}},
        {"2x2 (stride = kernel)", {3, 5, 8, 6}, {.kernel = {2, 2}}},
    };
    std::uint64_t seed = 700;
    for (const auto& c : cases) {
        INFO("avg_pool2d case: " << c.name);
        const auto x = randn_host(c.x, seed += 10);
        const auto xg = to_gpu(x);
        const auto y = avg_pool2d(x, c.opts);
        require_close(avg_pool2d(xg, c.opts), y, 1e-6, 1e-7);
        const auto g = randn_host(y.shape(), seed + 1);
        require_close(avg_pool2d_backward(to_gpu(g), xg, c.opts).grad_x, avg_pool2d_backward(g, x, c.opts).grad_x,
                      1e-6, 1e-7);
    }

    // Adaptive bins: overlapping (13 -> 5), identity, global, and more bins than inputs.
    const std::array<index_t, 2> sizes[] = {{5, 4}, {13, 11}, {1, 1}, {20, 17}, {7, 7}};
    const auto x = randn_host(Shape<4>{2, 3, 13, 11}, 750);
    const auto xg = to_gpu(x);
    for (const auto& s : sizes) {
        INFO("adaptive_avg_pool2d to " << s[0] << "x" << s[1]);
        const auto y = adaptive_avg_pool2d(x, s);
        require_close(adaptive_avg_pool2d(xg, s), y, 1e-6, 1e-7);
        const auto g = randn_host(y.shape(), 751);
        require_close(adaptive_avg_pool2d_backward(to_gpu(g), xg).grad_x, adaptive_avg_pool2d_backward(g, x).grad_x,
                      1e-6, 1e-7);
    }

    // bf16: sums in float, rounded once.
    const Tensor<bf16, 4, Cpu> xb = cast<bf16>(x);
    const HostT4 xf = cast<float>(xb);
    const Pool2dOptions opts{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .count_include_pad = false};
    const auto ya = avg_pool2d(xf, opts);
    require_close(host_float(avg_pool2d(to_gpu(xb), opts)), ya, 1e-2, 1e-3);
    const Tensor<bf16, 4, Cpu> gb = cast<bf16>(randn_host(ya.shape(), 760));
    require_close(host_float(avg_pool2d_backward(to_gpu(gb), to_gpu(xb), opts).grad_x),
                  avg_pool2d_backward(HostT4(cast<float>(gb)), xf, opts).grad_x, 1e-2, 1e-3);
    const std::array<index_t, 2> bins{5, 4};
    const auto yb = adaptive_avg_pool2d(xf, bins);
    require_close(host_float(adaptive_avg_pool2d(to_gpu(xb), bins)), yb, 1e-2, 1e-3);
    const Tensor<bf16, 4, Cpu> gab = cast<bf16>(randn_host(yb.shape(), 761));
    require_close(host_float(adaptive_avg_pool2d_backward(to_gpu(gab), to_gpu(xb)).grad_x),
                  adaptive_avg_pool2d_backward(HostT4(cast<float>(gab)), xf).grad_x, 1e-2, 1e-3);

    // A strided (transposed) input.
    const auto base = randn_host(Shape<4>{2, 3, 11, 13}, 770);
    const auto base_gpu = to_gpu(base);
    require_close(avg_pool2d(base_gpu.transpose(2, 3), cases[0].opts), avg_pool2d(base.transpose(2, 3), cases[0].opts),
                  1e-6, 1e-7);
    require_close(adaptive_avg_pool2d(base_gpu.transpose(2, 3), bins), adaptive_avg_pool2d(base.transpose(2, 3), bins),
                  1e-6, 1e-7);
}

TEST_CASE("cuda: interpolate nearest and bilinear match the CPU, forward and backward", "[cuda]") {
    struct Case {
        const char* name;
        Shape<4> x;
        std::array<index_t, 2> size;   // used when scale is {0, 0}
        std::array<double, 2> scale;
        Interpolation mode;
        bool align_corners;
    };
    const auto nearest = Interpolation::nearest, bilinear = Interpolation::bilinear;
    const Case cases[] = {
        {"nearest up, uneven", {2, 3, 7, 6}, {17, 9}, {0, 0}, nearest, false},
        {"nearest exactly doubled", {2, 3, 7, 6}, {14, 12}, {0, 0}, nearest, false},
        {"nearest down", {2, 3, 10, 9}, {3, 4}, {0, 0}, nearest, false},
        {"nearest by scale (1.5, 0.5)", {1, 4, 7, 10}, {0, 0}, {1.5, 0.5}, nearest, false},
        {"bilinear up", {2, 3, 7, 6}, {19, 13}, {0, 0}, bilinear, false},
        {"bilinear up, align_corners", {2, 3, 7, 6}, {19, 13}, {0, 0}, bilinear, true},
        {"bilinear down", {2, 3, 10, 9}, {4, 3}, {0, 0}, bilinear, false},
        {"bilinear down, align_corners", {2, 3, 10, 9}, {4, 3}, {0, 0}, bilinear, true},
        {"bilinear by scale 2", {2, 2, 5, 6}, {0, 0}, {2.0, 2.0}, bilinear, false},
        {"bilinear by scale (0.6, 1.7)", {1, 3, 11, 7}, {0, 0}, {0.6, 1.7}, bilinear, false},
        {"bilinear, one axis unchanged", {2, 3, 7, 12}, {7, 29}, {0, 0}, bilinear, false},
        {"bilinear to one row, align_corners", {2, 3, 7, 6}, {1, 5}, {0, 0}, bilinear, true},
        {"bilinear x4 (segmentation logits)", {1, 5, 8, 8}, {32, 32}, {0, 0}, bilinear, false},
    };
    std::uint64_t seed = 800;
    for (const auto& c : cases) {
        INFO("interpolate case: " << c.name);
        const auto x = randn_host(c.x, seed += 10);
        const auto xg = to_gpu(x);
        const bool by_scale = c.scale[0] > 0;
        const auto y = by_scale ? interpolate_scale(x, c.scale, c.mode, c.align_corners)
                                : interpolate(x, c.size, c.mode, c.align_corners);
        const auto yg = by_scale ? interpolate_scale(xg, c.scale, c.mode, c.align_corners)
                                 : interpolate(xg, c.size, c.mode, c.align_corners);
        if (c.mode == nearest) require_identical(yg, y);
        else require_close(yg, y, 1e-5, 1e-6);
        const auto g = randn_host(y.shape(), seed + 1);
        const std::array<double, 2> scale = by_scale ? c.scale : std::array<double, 2>{0, 0};
        require_close(interpolate_backward(to_gpu(g), xg, c.mode, c.align_corners, scale).grad_x,
                      interpolate_backward(g, x, c.mode, c.align_corners, scale).grad_x, 1e-5, 1e-6);
    }

    // A strided input, bf16 and double.
    const auto base = randn_host(Shape<4>{2, 3, 9, 7}, 900);
    const std::array<index_t, 2> size{11, 20};
    require_close(interpolate(to_gpu(base).transpose(2, 3), size, bilinear),
                  interpolate(base.transpose(2, 3), size, bilinear), 1e-5, 1e-6);
    const Tensor<bf16, 4, Cpu> xb = cast<bf16>(base);
    const HostT4 xf = cast<float>(xb);
    const auto yb = interpolate(xf, size, bilinear);
    require_close(host_float(interpolate(to_gpu(xb), size, bilinear)), yb, 1e-2, 1e-3);
    require_close(host_float(interpolate(to_gpu(xb), size, nearest)), interpolate(xf, size, nearest), 0, 0);
    const Tensor<bf16, 4, Cpu> gb = cast<bf16>(randn_host(yb.shape(), 901));
    require_close(host_float(interpolate_backward(to_gpu(gb), to_gpu(xb), bilinear).grad_x),
                  interpolate_backward(HostT4(cast<float>(gb)), xf, bilinear).grad_x, 1e-2, 1e-3);
    const Tensor<double, 4, Cpu> xd = cast<double>(base);
    require_close(interpolate(to_gpu(xd), size, bilinear, true), interpolate(xd, size, bilinear, true), 1e-13, 1e-13);
}

TEST_CASE("cuda: a chain of the spatial ops through autograd matches the CPU", "[cuda]") {
    // max_pool2d on the leaf (identical inputs: the same argmax on both devices) -> conv2d ->
    // avg_pool2d -> conv_transpose2d -> interpolate -> adaptive_avg_pool2d, one loss.
    auto x = randn_host(Shape<4>{2, 3, 12, 10}, 1000);
    auto w = randn_host(Shape<4>{5, 3, 3, 3}, 1001);
    auto b = randn_host(Shape<1>{5}, 1002);
    auto wt = randn_host(Shape<4>{5, 4, 2, 2}, 1003);
    auto bt = randn_host(Shape<1>{4}, 1004);
    const auto g = randn_host(Shape<4>{2, 4, 4, 4}, 1005);
    auto xg = to_gpu(x), wg = to_gpu(w), wtg = to_gpu(wt);
    auto bg = to_gpu(b), btg = to_gpu(bt);
    for (auto* t : {&x, &w, &wt}) t->requires_grad_();
    for (auto* t : {&xg, &wg, &wtg}) t->requires_grad_();
    for (auto* t : {&b, &bt}) t->requires_grad_();
    for (auto* t : {&bg, &btg}) t->requires_grad_();

    auto chain = [](const auto& x, const auto& w, const auto& b, const auto& wt, const auto& bt) {
        auto m = max_pool2d(x, {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}});  // [2, 3, 12, 10]
        auto y = conv2d(m, w, b, {.padding = {1, 1}});                                 // [2, 5, 12, 10]
        auto p = avg_pool2d(y, {.kernel = {2, 2}});                                      // [2, 5, 6, 5]
        auto t = conv_transpose2d(p, wt, bt, {.stride = {2, 2}});                        // [2, 4, 12, 10]
        auto r = interpolate(t, std::array<index_t, 2>{15, 13}, Interpolation::bilinear);  // [2, 4, 15, 13]
        return adaptive_avg_pool2d(r, {4, 4});                                          // [2, 4, 4, 4]
    };
    const auto out = chain(x, w, b, wt, bt);
    const auto outg = chain(xg, wg, bg, wtg, btg);
    require_close(outg, out, 1e-4, 1e-5);
    sum(out * g).backward();
    sum(outg * to_gpu(g)).backward();
    require_close(xg.grad(), x.grad(), 1e-4, 1e-4);
    require_close(wg.grad(), w.grad(), 1e-4, 1e-4);
    require_close(bg.grad(), b.grad(), 1e-4, 1e-4);
    require_close(wtg.grad(), wt.grad(), 1e-4, 1e-4);
    require_close(btg.grad(), bt.grad(), 1e-4, 1e-4);
}
