// The row-wise normalisation ops on the GPU (ops/cuda/softmax.cuh, normalize.cuh, layer_norm.cuh,
// group_norm.cuh, batch_norm.cuh) against the CPU: softmax and log_softmax over the last and other
// axes, L2 normalize, layer norm, group norm, and batch norm in training (with its running
// statistics, and synchronized over simulated replicas) and evaluation; forward and backward,
// rows of 1, 7, 768, 1000 and 3000 elements (short rows go to a warp, long ones to a block),
// strided inputs, bf16 and half against float on the rounded inputs, and once through autograd.
//
// The backward functions are given the CPU's forward results (y, or mean and rstd) on both
// devices, so each comparison measures one kernel. Tolerances: fp32 sums are taken in a different
// order on the two devices (trees on the GPU, vectors then sequences on the CPU) and expf differs
// from the CPU's exp polynomial by an ulp or two, so results agree to ~1e-6 relative; a few times
// that is allowed, more where the backward subtracts nearly equal terms. The 16-bit types
// accumulate in float and round the result once: within a bf16 ulp or two (rtol 2e-2) of the
// float reference on the rounded inputs.
#include "common.cuh"

#include <cmath>
#include <span>
#include <tuple>
#include <utility>

using namespace weft;
using namespace weft_test;

namespace {

const index_t kRowLengths[] = {1, 7, 768, 1000, 3000};

// A dense float host copy of a tensor of any floating type, on either device.
template <class T, int R, class D>
Tensor<float, R, Cpu> as_float(const Tensor<T, R, D>& t) {
    const auto h = host_dense(t);
    Tensor<float, R, Cpu> out = cast<float>(h);
    return out;
}

// x rounded to T, and those rounded values in float (the reference's input).
template <class T, int R>
std::pair<Tensor<T, R, Cpu>, Tensor<float, R, Cpu>> rounded(const Tensor<float, R, Cpu>& x) {
    Tensor<T, R, Cpu> r = cast<T>(x);
    Tensor<float, R, Cpu> f = cast<float>(r);
    return {r, f};
}

// randn * scale + shift.
template <int R>
Tensor<float, R, Cpu> randn_scaled(const Shape<R>& s, std::uint64_t seed, float scale, float shift = 0.0f) {
    const auto z = randn_host(s, seed);
    Tensor<float, R, Cpu> out = z * scale + shift;
    return out;
}

// Compares two gradient structs (LayerNormGrads, GroupNormGrads, BatchNormGrads) of any types,
// as float: the same members defined, and close.
template <class G1, class G2>
void require_grads_close(const G1& got, const G2& want, double rtol, double atol) {
    REQUIRE(got.grad_x.defined() == want.grad_x.defined());
    REQUIRE(got.grad_w.defined() == want.grad_w.defined());
    REQUIRE(got.grad_b.defined() == want.grad_b.defined());
    if (want.grad_x.defined()) {
        INFO("grad_x");
        require_close(as_float(got.grad_x), as_float(want.grad_x), rtol, atol);
    }
    if (want.grad_w.defined()) {
        INFO("grad_w");
        require_close(as_float(got.grad_w), as_float(want.grad_w), rtol, atol);
    }
    if (want.grad_b.defined()) {
        INFO("grad_b");
        require_close(as_float(got.grad_b), as_float(want.grad_b), rtol, atol);
    }
}

// softmax / log_softmax of x along `axis` and their backward, GPU against CPU (float or double).
template <class T, int R>
void check_softmax(const Tensor<T, R, Cpu>& x, const Tensor<T, R, Cpu>& g, const Tensor<T, R, Cuda>& xg,
                   const Tensor<T, R, Cuda>& gg, int axis, double rtol, double atol) {
    INFO("axis " << axis << ", shape " << x.shape());
    const auto y = softmax(x, axis);
    const auto ly = log_softmax(x, axis);
    {
        INFO("softmax");
        require_close(softmax(xg, axis), y, rtol, atol);
    }
    {
        INFO("log_softmax");
        require_close(log_softmax(xg, axis), ly, rtol, atol);
    }
    {
        INFO("softmax_backward");
        require_close(softmax_backward(gg, to_gpu(y), axis), softmax_backward(g, y, axis), 10 * rtol, atol);
    }
    {
        // g - exp(y) * sum(g): the sum of up to 3000 g ~ N(0, 1) (order-dependent in its last
        // bits) times a probability, against g itself.
        INFO("log_softmax_backward");
        require_close(log_softmax_backward(gg, to_gpu(ly), axis), log_softmax_backward(g, ly, axis), 10 * rtol,
                      10 * atol);
    }
}

template <class T, int R>
void check_normalize(const Tensor<T, R, Cpu>& x, const Tensor<T, R, Cpu>& g, const Tensor<T, R, Cuda>& xg,
                     const Tensor<T, R, Cuda>& gg, int axis, double rtol, double atol) {
    INFO("normalize along axis " << axis << ", shape " << x.shape());
    require_close(normalize(xg, axis), normalize(x, axis), rtol, atol);
    require_close(normalize_backward(gg, xg, axis), normalize_backward(g, x, axis), 10 * rtol, atol);
}

// A 16-bit T on the GPU against float on the CPU (the rounded inputs): softmax, log_softmax and
// their backward (from the rounded float output), along `axis`.
template <class T, int R>
void check_softmax_16(const Tensor<float, R, Cpu>& x_in, const Tensor<float, R, Cpu>& g_in, int axis) {
    INFO("16-bit softmax along axis " << axis << ", shape " << x_in.shape());
    const auto [xb, xf] = rounded<T>(x_in);
    const auto [gb, gf] = rounded<T>(g_in);
    const auto xg = to_gpu(xb), gg = to_gpu(gb);
    const auto y = softmax(xf, axis), ly = log_softmax(xf, axis);
    require_close(as_float(softmax(xg, axis)), y, 2e-2, 1e-5);
    require_close(as_float(log_softmax(xg, axis)), ly, 2e-2, 1e-3);
    const auto [yb, yf] = rounded<T>(y);
    const auto [lyb, lyf] = rounded<T>(ly);
    require_close(as_float(softmax_backward(gg, to_gpu(yb), axis)), softmax_backward(gf, yf, axis), 2e-2, 1e-4);
    require_close(as_float(log_softmax_backward(gg, to_gpu(lyb), axis)), log_softmax_backward(gf, lyf, axis), 2e-2,
                  2e-3);
}

// layer_norm forward (y, mean, rstd) and backward of [rows, c]-shaped x (any view), GPU against CPU.
template <int R>
void check_layer_norm(const Tensor<float, R, Cpu>& x, const Tensor<float, R, Cuda>& xg, bool affine,
                      std::uint64_t seed, double rtol, double atol) {
    const index_t c = x.size(R - 1);
    INFO("layer_norm of shape " << x.shape() << (affine ? " with weight and bias" : " without affine"));
    const Tensor<float, 1, Cpu> w = affine ? rand_host(Shape<1>{c}, seed, 0.5f, 1.5f) : Tensor<float, 1, Cpu>();
    const Tensor<float, 1, Cpu> b = affine ? randn_host(Shape<1>{c}, seed + 1) : Tensor<float, 1, Cpu>();
    const auto wg = affine ? to_gpu(w) : Tensor<float, 1, Cuda>();
    const auto bg = affine ? to_gpu(b) : Tensor<float, 1, Cuda>();
    const auto g = randn_host(x.shape(), seed + 2);
    const auto f = layer_norm_forward(x, w, b, 1e-5);
    const auto fg = layer_norm_forward(xg, wg, bg, 1e-5);
    require_close(fg.y, f.y, rtol, atol);
    require_close(fg.mean, f.mean, rtol, atol);
    require_close(fg.rstd, f.rstd, rtol, atol);
    const auto want = layer_norm_backward(g, x, w, f.mean, f.rstd);
    const auto got = layer_norm_backward(to_gpu(g), xg, wg, to_gpu(f.mean), to_gpu(f.rstd));
    require_grads_close(got, want, 10 * rtol, 10 * atol);
    // Only some gradients asked for.
    const auto want_b = layer_norm_backward(g, x, w, f.mean, f.rstd, false, false, true);
    const auto got_b = layer_norm_backward(to_gpu(g), xg, wg, to_gpu(f.mean), to_gpu(f.rstd), false, false, true);
    require_grads_close(got_b, want_b, 10 * rtol, 10 * atol);
}

template <int R>
void check_group_norm(const Shape<R>& shape, index_t groups, bool affine, std::uint64_t seed) {
    const index_t c = shape[1];
    INFO("group_norm of shape " << shape << ", " << groups << " groups" << (affine ? ", affine" : ""));
    const auto x = randn_scaled(shape, seed, 2.0f, 0.5f);
    const auto g = randn_host(shape, seed + 1);
    const Tensor<float, 1, Cpu> w = affine ? rand_host(Shape<1>{c}, seed + 2, 0.5f, 1.5f) : Tensor<float, 1, Cpu>();
    const Tensor<float, 1, Cpu> b = affine ? randn_host(Shape<1>{c}, seed + 3) : Tensor<float, 1, Cpu>();
    const auto xg = to_gpu(x), gg = to_gpu(g);
    const auto wg = affine ? to_gpu(w) : Tensor<float, 1, Cuda>();
    const auto bg = affine ? to_gpu(b) : Tensor<float, 1, Cuda>();
    const auto f = group_norm_forward(x, groups, w, b, 1e-5);
    const auto fg = group_norm_forward(xg, groups, wg, bg, 1e-5);
    require_close(fg.y, f.y, 1e-5, 1e-5);
    require_close(fg.mean, f.mean, 1e-5, 1e-6);
    require_close(fg.rstd, f.rstd, 1e-5, 1e-6);
    const auto want = group_norm_backward(g, x, groups, w, f.mean, f.rstd);
    const auto got = group_norm_backward(gg, xg, groups, wg, to_gpu(f.mean), to_gpu(f.rstd));
    require_grads_close(got, want, 1e-4, 1e-4);
}

// One replica's sum over "all replicas" when every replica holds the same batch: each value
// doubles (two identical replicas).
void two_identical_replicas(std::span<double> values) {
    for (double& v : values) v *= 2.0;
}

// batch_norm on x: training (statistics, running statistics in strided views, backward) and then
// evaluation with the updated running statistics, GPU against CPU.
template <int R>
void check_batch_norm(const Shape<R>& shape, bool affine, std::uint64_t seed, const CrossReplicaSum& replicas = {}) {
    const index_t c = shape[1];
    INFO("batch_norm of shape " << shape << (affine ? ", affine" : "") << (replicas ? ", synchronized" : ""));
    const auto x = randn_scaled(shape, seed, 2.0f, 3.0f);
    const auto g = randn_host(shape, seed + 1);
    const Tensor<float, 1, Cpu> w = affine ? rand_host(Shape<1>{c}, seed + 2, 0.5f, 1.5f) : Tensor<float, 1, Cpu>();
    const Tensor<float, 1, Cpu> b = affine ? randn_host(Shape<1>{c}, seed + 3) : Tensor<float, 1, Cpu>();
    const auto xg = to_gpu(x), gg = to_gpu(g);
    const auto wg = affine ? to_gpu(w) : Tensor<float, 1, Cuda>();
    const auto bg = affine ? to_gpu(b) : Tensor<float, 1, Cuda>();
    // Running mean and variance interleaved in one buffer: each a view of stride 2.
    const auto stats = rand_host(Shape<1>{2 * c}, seed + 4, 0.5f, 1.5f);
    const auto stats_g = to_gpu(stats);
    const auto rm = stats.slice(0, 0, 2 * c, 2), rv = stats.slice(0, 1, 2 * c, 2);
    const auto rmg = stats_g.slice(0, 0, 2 * c, 2), rvg = stats_g.slice(0, 1, 2 * c, 2);

    const auto f = batch_norm_forward(x, rm, rv, w, b, true, 0.1, 1e-5, replicas);
    const auto fg = batch_norm_forward(xg, rmg, rvg, wg, bg, true, 0.1, 1e-5, replicas);
    {
        INFO("training forward");
        require_close(fg.y, f.y, 1e-5, 1e-5);
        require_close(fg.mean, f.mean, 1e-5, 1e-6);
        require_close(fg.rstd, f.rstd, 1e-5, 1e-6);
        require_close(stats_g, stats, 1e-6, 1e-6);  // the running statistics, updated in place
    }
    {
        INFO("training backward");
        const auto want = batch_norm_backward(g, x, w, f.mean, f.rstd, true, true, true, true, replicas);
        const auto got =
            batch_norm_backward(gg, xg, wg, to_gpu(f.mean), to_gpu(f.rstd), true, true, true, true, replicas);
        require_grads_close(got, want, 1e-4, 1e-4);
    }
    {
        INFO("evaluation");
        const auto e = batch_norm_forward(x, rm, rv, w, b, false, 0.1, 1e-5);
        const auto eg = batch_norm_forward(xg, rmg, rvg, wg, bg, false, 0.1, 1e-5);
        require_close(eg.y, e.y, 1e-5, 1e-5);
        require_close(stats_g, stats, 1e-6, 1e-6);  // evaluation leaves them alone
        const auto want = batch_norm_backward(g, x, w, e.mean, e.rstd, false);
        const auto got = batch_norm_backward(gg, xg, wg, to_gpu(e.mean), to_gpu(e.rstd), false);
        require_grads_close(got, want, 1e-4, 1e-4);
    }
}

// The inputs of the autograd chain, on device D.
template <class D, class T, int R>
Tensor<T, R, D> on(const Tensor<T, R, Cpu>& t) {
    if constexpr (std::same_as<D, Cpu>) return t.clone();
    else return t.template to<Cuda>();
}

// batch_norm -> group_norm -> layer_norm -> softmax, log_softmax and normalize, differentiated
// by the tape; returns the gradients of x and of the six affine parameters, on the host.
template <class D>
std::vector<Tensor<float, 1, Cpu>> chain_gradients(const Tensor<float, 4, Cpu>& x_h, std::uint64_t seed) {
    const index_t c = x_h.size(1), last = x_h.size(3);
    auto x = on<D>(x_h);
    auto bn_w = on<D>(rand_host(Shape<1>{c}, seed, 0.5f, 1.5f)), bn_b = on<D>(randn_host(Shape<1>{c}, seed + 1));
    auto gn_w = on<D>(rand_host(Shape<1>{c}, seed + 2, 0.5f, 1.5f)), gn_b = on<D>(randn_host(Shape<1>{c}, seed + 3));
    auto ln_w = on<D>(rand_host(Shape<1>{last}, seed + 4, 0.5f, 1.5f)),
         ln_b = on<D>(randn_host(Shape<1>{last}, seed + 5));
    auto rm = on<D>(Tensor<float, 1, Cpu>::zeros({c})), rv = on<D>(Tensor<float, 1, Cpu>::ones({c}));
    const auto r1 = on<D>(randn_host(x_h.shape(), seed + 6));
    const auto r2 = on<D>(randn_host(x_h.shape(), seed + 7));
    const auto r3 = on<D>(randn_host(x_h.shape(), seed + 8));
    x.requires_grad_();
    for (auto* p : {&bn_w, &bn_b, &gn_w, &gn_b, &ln_w, &ln_b}) p->requires_grad_();
    const auto h1 = batch_norm(x, rm, rv, bn_w, bn_b, true);  // [N, C, H, W]
    const auto h2 = group_norm(h1, 4, gn_w, gn_b);
    const auto h3 = layer_norm(h2, ln_w, ln_b);
    const auto p = softmax(h3, 1);
    const auto q = log_softmax(h3, -1);
    const auto u = normalize(h3, 2);
    const auto loss = eval(sum(p * r1) + sum(q * r2) + sum(u * r3));
    loss.backward();
    std::vector<Tensor<float, 1, Cpu>> out;
    out.push_back(host_dense(x.grad()).reshape(x_h.numel()));
    for (auto* t : {&bn_w, &bn_b, &gn_w, &gn_b, &ln_w, &ln_b}) out.push_back(host_dense(t->grad()));
    return out;
}

}  // namespace

// ---- softmax -----------------------------------------------------------------------------------

TEST_CASE("cuda: softmax and log_softmax along the last axis match the CPU, forward and backward", "[cuda]") {
    std::uint64_t seed = 100;
    for (const index_t n : kRowLengths)
        for (const index_t rows : {index_t(1), index_t(13)}) {
            const auto x = randn_scaled(Shape<2>{rows, n}, seed++, 4.0f);
            const auto g = randn_host(Shape<2>{rows, n}, seed++);
            check_softmax(x, g, to_gpu(x), to_gpu(g), -1, 2e-5, 1e-6);
        }
    // Large logits: subtracting the maximum keeps exp from overflowing.
    const auto big = randn_scaled(Shape<2>{9, 1000}, 150, 40.0f, 500.0f);
    const auto g = randn_host(Shape<2>{9, 1000}, 151);
    check_softmax(big, g, to_gpu(big), to_gpu(g), 1, 2e-5, 1e-6);
    // A rank-3 tensor: the rows are all leading axes together.
    const auto x3 = randn_scaled(Shape<3>{4, 33, 129}, 152, 3.0f);
    const auto g3 = randn_host(Shape<3>{4, 33, 129}, 153);
    check_softmax(x3, g3, to_gpu(x3), to_gpu(g3), 2, 2e-5, 1e-6);
}

TEST_CASE("cuda: softmax over other axes, of strided inputs and in double match the CPU", "[cuda]") {
    const auto x = randn_scaled(Shape<4>{3, 37, 5, 9}, 200, 3.0f);
    const auto g = randn_host(Shape<4>{3, 37, 5, 9}, 201);
    const auto xg = to_gpu(x), gg = to_gpu(g);
    for (const int axis : {0, 1, 2, -2}) check_softmax(x, g, xg, gg, axis, 2e-5, 1e-6);
    // A long reduced axis with few lanes: [2, 3000, 3] along axis 1.
    const auto xl = randn_scaled(Shape<3>{2, 3000, 3}, 202, 3.0f);
    const auto gl = randn_host(Shape<3>{2, 3000, 3}, 203);
    check_softmax(xl, gl, to_gpu(xl), to_gpu(gl), 1, 2e-5, 1e-6);

    // Strided: a transposed matrix and a stepped slice, on both devices (copied to dense first).
    const auto base = randn_scaled(Shape<2>{33, 40}, 204, 3.0f);
    const auto gbase = randn_host(Shape<2>{33, 40}, 205);
    const auto base_g = to_gpu(base), gbase_g = to_gpu(gbase);
    for (const int axis : {0, 1}) {
        check_softmax(base.t(), gbase.t(), base_g.t(), gbase_g.t(), axis, 2e-5, 1e-6);
        check_softmax(base.slice(1, 1, 40, 3), gbase.slice(1, 1, 40, 3), base_g.slice(1, 1, 40, 3),
                      gbase_g.slice(1, 1, 40, 3), axis, 2e-5, 1e-6);
    }

    // double: the same kernels accumulating in double.
    const Tensor<double, 3, Cpu> xd = cast<double>(randn_scaled(Shape<3>{5, 1000, 2}, 206, 3.0f));
    const Tensor<double, 3, Cpu> gd = cast<double>(randn_host(Shape<3>{5, 1000, 2}, 207));
    for (const int axis : {1, 2}) check_softmax(xd, gd, to_gpu(xd), to_gpu(gd), axis, 1e-12, 1e-14);
}

TEST_CASE("cuda: softmax in bf16 and half matches float on the rounded inputs", "[cuda]") {
    for (const index_t n : kRowLengths) {
        const auto x = randn_scaled(Shape<2>{6, n}, 300 + std::uint64_t(n), 3.0f);
        const auto g = randn_host(Shape<2>{6, n}, 301 + std::uint64_t(n));
        check_softmax_16<bf16>(x, g, -1);
    }
    const auto x = randn_scaled(Shape<3>{4, 19, 70}, 310, 3.0f);
    const auto g = randn_host(Shape<3>{4, 19, 70}, 311);
    check_softmax_16<bf16>(x, g, 1);
    check_softmax_16<half>(x, g, 1);
    check_softmax_16<half>(x, g, 2);
}

// ---- normalize ---------------------------------------------------------------------------------

TEST_CASE("cuda: normalize matches the CPU along any axis, with zero rows and strided inputs", "[cuda]") {
    std::uint64_t seed = 400;
    for (const index_t n : kRowLengths) {
        auto x = randn_host(Shape<2>{5, n}, seed++);
        for (index_t i = 0; i < n; ++i) x(2, i) = 0.0f;  // a row with norm 0 < eps: divided by eps
        const auto g = randn_host(Shape<2>{5, n}, seed++);
        check_normalize(x, g, to_gpu(x), to_gpu(g), -1, 1e-5, 1e-6);
    }
    const auto x = randn_host(Shape<3>{4, 9, 6}, 410);
    const auto g = randn_host(Shape<3>{4, 9, 6}, 411);
    const auto xg = to_gpu(x), gg = to_gpu(g);
    for (const int axis : {0, 1, 2}) check_normalize(x, g, xg, gg, axis, 1e-5, 1e-6);
    // CLIP's features: [B, D] rows, here a transposed view.
    const auto f = randn_host(Shape<2>{512, 37}, 412);
    const auto gf = randn_host(Shape<2>{512, 37}, 413);
    check_normalize(f.t(), gf.t(), to_gpu(f).t(), to_gpu(gf).t(), -1, 1e-5, 1e-6);
    check_normalize(f.t(), gf.t(), to_gpu(f).t(), to_gpu(gf).t(), 0, 1e-5, 1e-6);

    // bf16 against float on the rounded inputs.
    const auto [xb, xf] = rounded<bf16>(randn_host(Shape<2>{7, 1000}, 414));
    const auto [gb, gf16] = rounded<bf16>(randn_host(Shape<2>{7, 1000}, 415));
    require_close(as_float(normalize(to_gpu(xb), -1)), normalize(xf, -1), 2e-2, 1e-4);
    require_close(as_float(normalize_backward(to_gpu(gb), to_gpu(xb), -1)), normalize_backward(gf16, xf, -1), 2e-2,
                  1e-4);
    require_close(as_float(normalize(to_gpu(xb), 0)), normalize(xf, 0), 2e-2, 1e-3);
}

// ---- layer norm --------------------------------------------------------------------------------

TEST_CASE("cuda: layer_norm forward and backward match the CPU for rows of any length", "[cuda]") {
    std::uint64_t seed = 500;
    for (const index_t c : kRowLengths)
        for (const index_t rows : {index_t(1), index_t(37)}) {
            const auto x = randn_scaled(Shape<2>{rows, c}, seed++, 2.0f, 0.5f);
            const auto xg = to_gpu(x);
            check_layer_norm(x, xg, true, seed++, 1e-5, 1e-5);
            check_layer_norm(x, xg, false, seed++, 1e-5, 1e-5);
        }
    // [B, T, C] with many rows: the weight and bias gradients are split into chunks of rows.
    const auto x = randn_host(Shape<3>{16, 77, 768}, 550);
    check_layer_norm(x, to_gpu(x), true, 551, 1e-5, 1e-5);
    // A strided input: the transpose of [C, rows].
    const auto t = randn_host(Shape<2>{300, 45}, 552);
    check_layer_norm(t.t(), to_gpu(t).t(), true, 553, 1e-5, 1e-5);
    // Rows of 1000 + noise (std 0.01): the shifted sums keep the variance accurate in float.
    const auto offset = randn_scaled(Shape<2>{8, 768}, 554, 0.01f, 1000.0f);
    check_layer_norm(offset, to_gpu(offset), true, 555, 1e-3, 1e-3);
}

TEST_CASE("cuda: layer_norm in bf16 and half matches float on the rounded inputs", "[cuda]") {
    for (const index_t c : {index_t(7), index_t(768), index_t(3000)}) {
        INFO("c " << c);
        const auto [xb, xf] = rounded<bf16>(randn_scaled(Shape<2>{9, c}, 600 + std::uint64_t(c), 2.0f, 0.5f));
        const auto [gb, gf] = rounded<bf16>(randn_host(Shape<2>{9, c}, 601 + std::uint64_t(c)));
        const auto [wb, wf] = rounded<bf16>(rand_host(Shape<1>{c}, 602, 0.5f, 1.5f));
        const auto [bb, bf] = rounded<bf16>(randn_host(Shape<1>{c}, 603));
        const auto f = layer_norm_forward(xf, wf, bf, 1e-5);
        const auto fg = layer_norm_forward(to_gpu(xb), to_gpu(wb), to_gpu(bb), 1e-5);
        require_close(as_float(fg.y), f.y, 2e-2, 2e-2);
        require_close(fg.mean, f.mean, 1e-5, 1e-5);  // statistics stay in float
        require_close(fg.rstd, f.rstd, 1e-5, 1e-5);
        const auto want = layer_norm_backward(gf, xf, wf, f.mean, f.rstd);
        const auto got = layer_norm_backward(to_gpu(gb), to_gpu(xb), to_gpu(wb), to_gpu(f.mean), to_gpu(f.rstd));
        require_grads_close(got, want, 2e-2, 2e-2);
    }
    const auto [xh, xf] = rounded<half>(randn_host(Shape<3>{3, 5, 1000}, 610));
    const auto f = layer_norm_forward(xf, Tensor<float, 1, Cpu>(), Tensor<float, 1, Cpu>(), 1e-5);
    const auto fg = layer_norm_forward(to_gpu(xh), Tensor<half, 1, Cuda>(), Tensor<half, 1, Cuda>(), 1e-5);
    require_close(as_float(fg.y), f.y, 4e-3, 4e-3);
}

// ---- group norm --------------------------------------------------------------------------------

TEST_CASE("cuda: group_norm forward and backward match the CPU", "[cuda]") {
    check_group_norm(Shape<4>{2, 12, 7, 5}, 3, true, 700);
    check_group_norm(Shape<4>{2, 12, 7, 5}, 4, false, 710);
    check_group_norm(Shape<4>{3, 64, 33, 31}, 32, true, 720);  // rows of 2 * 1023: blocks
    check_group_norm(Shape<3>{2, 6, 1000}, 1, true, 730);     // one group: a whole sample
    check_group_norm(Shape<2>{5, 12}, 4, true, 740);          // no spatial axes
    check_group_norm(Shape<3>{1, 4, 3000}, 4, true, 750);     // one channel per group

    // A strided input (a permuted view) and bf16.
    const auto base = randn_host(Shape<4>{2, 9, 11, 8}, 760);
    const auto x = base.permute(0, 3, 1, 2);  // [2, 8, 9, 11]
    const auto w = rand_host(Shape<1>{8}, 761, 0.5f, 1.5f), b = randn_host(Shape<1>{8}, 762);
    const auto f = group_norm_forward(x, 2, w, b, 1e-5);
    const auto fg = group_norm_forward(to_gpu(base).permute(0, 3, 1, 2), 2, to_gpu(w), to_gpu(b), 1e-5);
    require_close(fg.y, f.y, 1e-5, 1e-5);

    const auto [xb, xf] = rounded<bf16>(randn_scaled(Shape<4>{2, 8, 9, 11}, 763, 2.0f, 1.0f));
    const auto [gb, gf] = rounded<bf16>(randn_host(Shape<4>{2, 8, 9, 11}, 764));
    const auto [wb, wf] = rounded<bf16>(w);
    const auto [bb, bf] = rounded<bf16>(b);
    const auto ff = group_norm_forward(xf, 4, wf, bf, 1e-5);
    const auto fb = group_norm_forward(to_gpu(xb), 4, to_gpu(wb), to_gpu(bb), 1e-5);
    require_close(as_float(fb.y), ff.y, 2e-2, 2e-2);
    const auto want = group_norm_backward(gf, xf, 4, wf, ff.mean, ff.rstd);
    const auto got = group_norm_backward(to_gpu(gb), to_gpu(xb), 4, to_gpu(wb), to_gpu(ff.mean), to_gpu(ff.rstd));
    require_grads_close(got, want, 2e-2, 2e-2);
}

// ---- batch norm --------------------------------------------------------------------------------

TEST_CASE("cuda: batch_norm in training and evaluation matches the CPU, running statistics included", "[cuda]") {
    check_batch_norm(Shape<4>{4, 5, 7, 3}, true, 800);
    check_batch_norm(Shape<4>{4, 5, 7, 3}, false, 810);
    check_batch_norm(Shape<2>{9, 6}, true, 820);            // [N, C]: one value per sample
    check_batch_norm(Shape<3>{2, 3, 3000}, true, 830);      // long segments, several chunks
    check_batch_norm(Shape<4>{32, 64, 14, 14}, true, 840);  // a ResNet stage
    check_batch_norm(Shape<3>{1000, 7, 1}, true, 850);      // many samples of one value

    // A strided input, and bf16 against float on the rounded inputs.
    const auto base = randn_scaled(Shape<4>{3, 6, 5, 4}, 860, 2.0f, 1.0f);
    const auto x = base.permute(0, 3, 1, 2);  // [3, 4, 6, 5]
    const auto f = batch_norm_forward(x, Tensor<float, 1, Cpu>(), Tensor<float, 1, Cpu>(), Tensor<float, 1, Cpu>(),
                                      Tensor<float, 1, Cpu>(), true, 0.1, 1e-5);
    const auto fg = batch_norm_forward(to_gpu(base).permute(0, 3, 1, 2), Tensor<float, 1, Cuda>(),
                                       Tensor<float, 1, Cuda>(), Tensor<float, 1, Cuda>(), Tensor<float, 1, Cuda>(),
                                       true, 0.1, 1e-5);
    require_close(fg.y, f.y, 1e-5, 1e-5);

    const auto [xb, xf] = rounded<bf16>(randn_scaled(Shape<4>{4, 8, 6, 5}, 861, 2.0f, 1.0f));
    const auto [gb, gf] = rounded<bf16>(randn_host(Shape<4>{4, 8, 6, 5}, 862));
    const auto [wb, wf] = rounded<bf16>(rand_host(Shape<1>{8}, 863, 0.5f, 1.5f));
    const auto [bb, bf] = rounded<bf16>(randn_host(Shape<1>{8}, 864));
    const auto [rb, rf] = rounded<bf16>(rand_host(Shape<1>{8}, 865, 0.5f, 1.5f));
    const auto rm = rf.clone(), rv = rf.clone();
    const auto rmg = to_gpu(rb), rvg = to_gpu(rb);
    const auto ff = batch_norm_forward(xf, rm, rv, wf, bf, true, 0.1, 1e-5);
    const auto fb = batch_norm_forward(to_gpu(xb), rmg, rvg, to_gpu(wb), to_gpu(bb), true, 0.1, 1e-5);
    require_close(as_float(fb.y), ff.y, 2e-2, 2e-2);
    require_close(fb.mean, ff.mean, 1e-5, 1e-5);
    require_close(as_float(rmg), rm, 2e-2, 1e-3);
    require_close(as_float(rvg), rv, 2e-2, 1e-3);
    const auto want = batch_norm_backward(gf, xf, wf, ff.mean, ff.rstd, true);
    const auto got = batch_norm_backward(to_gpu(gb), to_gpu(xb), to_gpu(wb), to_gpu(ff.mean), to_gpu(ff.rstd), true);
    require_grads_close(got, want, 2e-2, 2e-2);
}

TEST_CASE("cuda: synchronized batch_norm (SyncBN) sums over replicas as the CPU does", "[cuda]") {
    // Two identical replicas: the collective doubles every sum and the count, so the statistics
    // are the local ones but the running variance's m / (m - 1) uses the global count.
    const CrossReplicaSum replicas = two_identical_replicas;
    check_batch_norm(Shape<4>{2, 5, 4, 3}, true, 900, replicas);
    check_batch_norm(Shape<2>{1, 7}, true, 910, replicas);  // one value per channel here, two in all
    // The collective is called once forward and once backward, whatever the backward is asked.
    int calls = 0;
    const CrossReplicaSum counting = [&calls](std::span<double> v) {
        ++calls;
        two_identical_replicas(v);
    };
    const auto x = to_gpu(randn_host(Shape<3>{3, 4, 5}, 920));
    const auto f = batch_norm_forward(x, Tensor<float, 1, Cuda>(), Tensor<float, 1, Cuda>(), Tensor<float, 1, Cuda>(),
                                      Tensor<float, 1, Cuda>(), true, 0.1, 1e-5, counting);
    CHECK(calls == 1);
    const auto grads = batch_norm_backward(to_gpu(randn_host(Shape<3>{3, 4, 5}, 921)), x, Tensor<float, 1, Cuda>(),
                                           f.mean, f.rstd, true, false, false, false, counting);
    CHECK(calls == 2);
    CHECK(!grads.grad_x.defined());
}

// ---- autograd ----------------------------------------------------------------------------------

TEST_CASE("cuda: gradients through batch_norm, group_norm, layer_norm, softmax and normalize on the tape", "[cuda]") {
    const auto x = randn_scaled(Shape<4>{4, 8, 6, 5}, 1000, 2.0f, 0.5f);
    const auto want = chain_gradients<Cpu>(x, 1001);
    const auto got = chain_gradients<Cuda>(x, 1001);
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        INFO("gradient " << i << " (x, then the batch, group and layer norms' weight and bias)");
        require_close(got[i], want[i], 1e-4, 1e-5);
    }
}
