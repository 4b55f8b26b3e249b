// scaled_dot_product_attention on the GPU (ops/cuda/attention.cuh) against the CPU kernels
// (ops/cpu/attention.hpp) on the same inputs: output, logsumexp and the gradients of q, k and v,
// for every mask kind, dropout, odd and uneven sizes, head dimensions 32 to 128, strided inputs,
// autograd, bf16 and half.
//
// Tolerances. fp32: both sides sum in float in different orders (and the GPU's dQ arrives by
// atomicAdd in any order), so rtol 1e-4 with an absolute floor of 2e-5 of the largest reference
// magnitude (gradients sum thousands of terms that cancel). bf16 and half: the reference is the
// CPU op in float on the rounded inputs; the GPU rounds the weights P and dS to the 16-bit type
// for the tensor cores and the results once more, so a few ulps of bf16: rtol 2e-2 and a floor of
// 1e-2 of the largest magnitude. Dropout compares at equal tolerances: the masks are the same
// Philox bits on both devices, so a single differing keep/drop decision would show as an O(1)
// error.
#include "common.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

using namespace weft;
using namespace weft_test;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();

struct Tol {
    double rtol, out_floor, grad_floor;  // floors: fractions of the largest |reference|
};
constexpr Tol fp32_tol{1e-4, 1e-5, 2e-5};
constexpr Tol bf16_tol{2e-2, 1e-2, 1e-2};
constexpr Tol half_tol{1e-2, 5e-3, 5e-3};

template <class T>
constexpr Tol tol_of() {
    if constexpr (std::same_as<T, float>) return fp32_tol;
    else if constexpr (std::same_as<T, bf16>) return bf16_tol;
    else return half_tol;
}

template <int R>
double max_abs(const Tensor<float, R, Cpu>& x) {
    const auto d = x.contiguous();
    double m = 0;
    for (index_t i = 0; i < d.numel(); ++i)
        if (std::isfinite(d.data()[i])) m = std::max(m, std::fabs(double(d.data()[i])));
    return m;
}

// A host float copy of a GPU tensor of any element type.
template <class T, int R>
Tensor<float, R, Cpu> host_float(const Tensor<T, R, Cuda>& x) {
    const Tensor<T, R, Cpu> h = host_dense(x);
    if constexpr (std::same_as<T, float>) return h;
    else return eval(cast<float>(h));
}

template <class T, int R>
Tensor<T, R, Cpu> as_type(const Tensor<float, R, Cpu>& x) {
    if constexpr (std::same_as<T, float>) return x.contiguous();
    else {
        const Tensor<T, R, Cpu> t = cast<T>(x);
        return t;
    }
}

// x rounded to T and back: what a T tensor of these values holds.
template <class T, int R>
Tensor<float, R, Cpu> rounded(const Tensor<float, R, Cpu>& x) {
    if constexpr (std::same_as<T, float>) return x;
    else return eval(cast<float>(as_type<T>(x)));
}

template <class T, int R>
void check(const char* what, const Tensor<T, R, Cuda>& got, const Tensor<float, R, Cpu>& want, double rtol,
           double floor) {
    INFO(what);
    require_close(host_float(got), want, rtol, floor * max_abs(want) + 1e-30);
}

struct Inputs {
    Tensor<float, 4, Cpu> q, k, v, g;  // g: the gradient of the output
};

Inputs make_inputs(index_t B, index_t H, index_t L, index_t S, index_t E, index_t Ev, std::uint64_t seed) {
    Generator gen(seed);
    return {Tensor<float, 4, Cpu>::randn({B, H, L, E}, gen), Tensor<float, 4, Cpu>::randn({B, H, S, E}, gen),
            Tensor<float, 4, Cpu>::randn({B, H, S, Ev}, gen), Tensor<float, 4, Cpu>::randn({B, H, L, Ev}, gen)};
}

// How a test puts a [B, H, n, d] operand on the GPU (dense by default; strided views in one test).
template <class T>
using Placer = std::function<Tensor<T, 4, Cuda>(const Tensor<T, 4, Cpu>&)>;

template <class T>
Tensor<T, 4, Cuda> dense_on_gpu(const Tensor<T, 4, Cpu>& x) {
    return to_gpu(x);
}

// The same options on the GPU, masks in T.
template <class T>
AttentionOptions<T, Cuda> gpu_options(const AttentionOptions<float, Cpu>& o) {
    AttentionOptions<T, Cuda> g;
    if (o.attn_mask.defined()) g.attn_mask = to_gpu(as_type<T>(o.attn_mask));
    if (o.attn_mask_batched.defined()) g.attn_mask_batched = to_gpu(as_type<T>(o.attn_mask_batched));
    if (o.key_padding_mask.defined()) g.key_padding_mask = to_gpu(o.key_padding_mask.contiguous());
    g.causal = o.causal;
    g.scale = o.scale;
    g.dropout = o.dropout;
    return g;
}

// Runs forward and backward on both devices and compares everything. Inputs and masks are
// rounded to T first, so both sides see the same numbers. gen_cpu / gen_gpu: the dropout streams.
template <class T>
void compare(const char* what, const Inputs& in_f, AttentionOptions<float, Cpu> oc, Generator* gen_cpu = nullptr,
             Generator* gen_gpu = nullptr, Placer<T> place = dense_on_gpu<T>) {
    INFO(what);
    const Tol tol = tol_of<T>();
    const Inputs in{rounded<T>(in_f.q), rounded<T>(in_f.k), rounded<T>(in_f.v), rounded<T>(in_f.g)};
    if (oc.attn_mask.defined()) oc.attn_mask = rounded<T>(oc.attn_mask);
    if (oc.attn_mask_batched.defined()) oc.attn_mask_batched = rounded<T>(oc.attn_mask_batched);
    AttentionOptions<T, Cuda> og = gpu_options<T>(oc);
    oc.gen = gen_cpu;
    og.gen = gen_gpu;

    const auto want = scaled_dot_product_attention_forward(in.q, in.k, in.v, oc);
    const auto want_grads = scaled_dot_product_attention_backward(in.g, in.q, in.k, in.v, want, oc);

    const auto q = place(as_type<T>(in.q)), k = place(as_type<T>(in.k)), v = place(as_type<T>(in.v));
    const auto g = place(as_type<T>(in.g));
    const auto got = scaled_dot_product_attention_forward(q, k, v, og);
    const auto got_grads = scaled_dot_product_attention_backward(g, q, k, v, got, og);

    check("output", got.out, want.out, tol.rtol, tol.out_floor);
    check("logsumexp", got.logsumexp, want.logsumexp, tol.rtol, tol.out_floor);
    CHECK(got.dropout_seed == want.dropout_seed);
    CHECK(got.dropout_offset == want.dropout_offset);
    check("grad q", got_grads.grad_q, want_grads.grad_q, tol.rtol, tol.grad_floor);
    check("grad k", got_grads.grad_k, want_grads.grad_k, tol.rtol, tol.grad_floor);
    check("grad v", got_grads.grad_v, want_grads.grad_v, tol.rtol, tol.grad_floor);
}

// An additive [rows, cols] mask: small biases with about one entry in seven at -inf.
Tensor<float, 2, Cpu> random_mask(index_t rows, index_t cols, std::uint64_t seed) {
    Generator gen(seed);
    auto m = Tensor<float, 2, Cpu>::randn({rows, cols}, gen);
    auto u = Tensor<float, 2, Cpu>::rand({rows, cols}, gen);
    for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) m(i, j) = u(i, j) < 1.0f / 7 ? -inf : 0.5f * m(i, j);
    return m;
}

Tensor<float, 3, Cpu> random_mask3(index_t n, index_t rows, index_t cols, std::uint64_t seed) {
    auto m = Tensor<float, 3, Cpu>::empty({n, rows, cols});
    for (index_t b = 0; b < n; ++b) m.select(0, b).copy_from(random_mask(rows, cols, seed + std::uint64_t(b)));
    return m;
}

// Every row of x [B, H, L, d] at (b, i) for the given (b, i) pairs is exactly zero.
template <class T>
void require_zero_rows(const char* what, const Tensor<T, 4, Cuda>& x, index_t b, index_t i) {
    INFO(what << ": batch " << b << ", row " << i);
    const auto h = host_float(x);
    for (index_t hh = 0; hh < h.size(1); ++hh)
        for (index_t c = 0; c < h.size(3); ++c) REQUIRE(h(b, hh, i, c) == 0.0f);
}

}  // namespace

TEST_CASE("cuda: attention without masks matches the CPU, forward and backward (fp32)", "[cuda]") {
    compare<float>("130 x 130, E 64", make_inputs(2, 3, 130, 130, 64, 64, 1), {});
    compare<float>("one whole tile, 64 x 64", make_inputs(1, 2, 64, 64, 64, 64, 2), {});
    AttentionOptions<float, Cpu> o;
    o.scale = 0.3;
    compare<float>("explicit scale, 65 x 129", make_inputs(2, 1, 65, 129, 64, 64, 3), o);
}

TEST_CASE("cuda: causal attention matches the CPU (text length 77, L < S, L > S)", "[cuda]") {
    AttentionOptions<float, Cpu> o;
    o.causal = true;
    compare<float>("77 x 77, 8 heads", make_inputs(2, 8, 77, 77, 64, 64, 10), o);
    compare<float>("70 queries, 150 keys", make_inputs(1, 2, 70, 150, 64, 64, 11), o);
    compare<float>("150 queries, 70 keys", make_inputs(1, 2, 150, 70, 64, 64, 12), o);
    compare<bf16>("77 x 77 bf16", make_inputs(2, 8, 77, 77, 64, 64, 13), o);
}

TEST_CASE("cuda: an additive attn_mask, dense, transposed and expanded, matches the CPU", "[cuda]") {
    const index_t L = 70, S = 90;
    const auto in = make_inputs(2, 3, L, S, 64, 64, 20);
    AttentionOptions<float, Cpu> o;
    o.attn_mask = random_mask(L, S, 21);
    compare<float>("dense mask", in, o);
    compare<bf16>("dense mask, bf16", in, o);
    o.attn_mask = random_mask(S, L, 22).t();  // a transposed view
    compare<float>("transposed mask", in, o);
    o.attn_mask = random_mask(1, S, 23).expand(L, S);  // stride 0 over the queries
    compare<float>("expanded mask", in, o);
    o.causal = true;
    compare<float>("expanded mask and causal", in, o);
}

TEST_CASE("cuda: batched masks of every leading size (B*H, B, 1) match the CPU", "[cuda]") {
    const index_t B = 2, H = 3, L = 45, S = 77;
    const auto in = make_inputs(B, H, L, S, 32, 32, 30);
    AttentionOptions<float, Cpu> o;
    o.attn_mask_batched = random_mask3(B * H, L, S, 31);
    compare<float>("[B*H, L, S]", in, o);
    compare<half>("[B*H, L, S], half", in, o);
    o.attn_mask_batched = random_mask3(B, L, S, 32);
    compare<float>("[B, L, S]", in, o);
    o.attn_mask_batched = random_mask3(1, L, S, 33);
    compare<float>("[1, L, S]", in, o);
    o.attn_mask_batched = random_mask3(1, L, S, 34).expand(B * H, L, S);  // stride 0 over batch and head
    compare<float>("[1, L, S] expanded to [B*H, L, S]", in, o);
    o.attn_mask = random_mask(L, S, 35);  // both additive masks at once
    compare<float>("[B, L, S] with an [L, S] mask", in, o);
}

TEST_CASE("cuda: key padding and fully masked rows give output 0, gradient 0 and logsumexp +inf", "[cuda]") {
    const index_t B = 2, H = 2, L = 20, S = 67;
    const auto in = make_inputs(B, H, L, S, 64, 64, 40);
    auto pad = Tensor<bool, 2, Cpu>::zeros({B, S});
    for (index_t j = 0; j < S; ++j) {
        pad(0, j) = j % 5 == 3 || j >= 60;  // batch 0: some keys are padding
        pad(1, j) = true;                   // batch 1: every key is padding
    }
    auto mask = Tensor<float, 2, Cpu>::zeros({L, S});
    for (index_t j = 0; j < S; ++j) mask(7, j) = -inf;  // query 7 sees no key in any batch
    AttentionOptions<float, Cpu> o;
    o.key_padding_mask = pad;
    o.attn_mask = mask;
    compare<float>("key padding, fp32", in, o);
    compare<bf16>("key padding, bf16", in, o);

    // Exact zeros and +inf on the GPU, through the recorded op.
    auto q = to_gpu(in.q).requires_grad_();
    auto k = to_gpu(in.k).requires_grad_();
    auto v = to_gpu(in.v).requires_grad_();
    const auto og = gpu_options<float>(o);
    const auto out = scaled_dot_product_attention(q, k, v, og);
    sum(out * to_gpu(in.g)).backward();
    for (index_t i = 0; i < L; ++i) {
        require_zero_rows("output, batch 1", out, 1, i);
        require_zero_rows("grad q, batch 1", q.grad(), 1, i);
    }
    require_zero_rows("output, query 7", out, 0, 7);
    require_zero_rows("grad q, query 7", q.grad(), 0, 7);
    for (index_t j = 0; j < S; ++j) {
        require_zero_rows("grad k, batch 1", k.grad(), 1, j);
        require_zero_rows("grad v, batch 1", v.grad(), 1, j);
    }
    const auto lse = host_dense(scaled_dot_product_attention_forward(q, k, v, og).logsumexp);
    CHECK(lse(0, 0, 7) == inf);
    CHECK(lse(1, 1, 3) == inf);
    CHECK(std::isfinite(lse(0, 1, 6)));
}

TEST_CASE("cuda: dropout drops the same weights as the CPU (same seed, same Philox counters)", "[cuda]") {
    const index_t B = 2, H = 2, L = 70, S = 90;  // S % 4 != 0: rows start on whole Philox blocks
    const auto in = make_inputs(B, H, L, S, 32, 32, 50);
    AttentionOptions<float, Cpu> o;
    o.dropout = 0.3;
    Generator gc(77), gg(77);
    compare<float>("p = 0.3", in, o, &gc, &gg);
    CHECK(gc.offset == gg.offset);
    compare<float>("p = 0.3, the advanced streams", in, o, &gc, &gg);
    o.causal = true;
    o.key_padding_mask = Tensor<bool, 2, Cpu>::zeros({B, S});
    o.key_padding_mask(1, 4) = true;
    compare<float>("p = 0.3 with causal and padding", in, o, &gc, &gg);
    compare<bf16>("p = 0.3, bf16", in, o, &gc, &gg);
    CHECK(gc.offset == gg.offset);

    // The GPU's dropout does something: another seed gives another output.
    {
        Generator a(5), b(6);
        auto og = gpu_options<float>(o);
        og.gen = &a;
        const auto q = to_gpu(in.q), k = to_gpu(in.k), v = to_gpu(in.v);
        const auto x = host_dense(scaled_dot_product_attention(q, k, v, og));
        og.gen = &b;
        const auto y = host_dense(scaled_dot_product_attention(q, k, v, og));
        CHECK(eval(sum(abs(x - y))).item() > 0.0f);
        // p = 1 drops every weight.
        og.dropout = 1;
        const auto none = host_dense(scaled_dot_product_attention(q, k, v, og));
        CHECK(eval(sum(abs(none))).item() == 0.0f);
    }

    // Data parallel: replica 1 of 2 holds the second half of the batch and draws its rows of the
    // whole batch's mask; its generator ends where the single process's does.
    {
        const auto whole = make_inputs(2 * B, H, L, S, 32, 32, 51);
        AttentionOptions<float, Cpu> oc;
        oc.dropout = 0.25;
        Generator single(9), replica(9);
        oc.gen = &single;
        const auto want = scaled_dot_product_attention(whole.q, whole.k, whole.v, oc);
        auto og = gpu_options<float>(oc);
        og.gen = &replica;
        Tensor<float, 4, Cuda> got;
        {
            ReplicaScope slice(replica, 1, 2);
            got = scaled_dot_product_attention(to_gpu(whole.q.slice(0, B, 2 * B)), to_gpu(whole.k.slice(0, B, 2 * B)),
                                               to_gpu(whole.v.slice(0, B, 2 * B)), og);
        }
        check("replica 1 of 2", got, want.slice(0, B, 2 * B).contiguous(), fp32_tol.rtol, fp32_tol.out_floor);
        CHECK(single.offset == replica.offset);
    }
}

TEST_CASE("cuda: 150 queries over 1601 keys (DenseCLIP's context decoder) match the CPU", "[cuda]") {
    const auto in = make_inputs(1, 4, 150, 1601, 64, 64, 60);
    compare<float>("150 x 1601, fp32", in, {});
    compare<bf16>("150 x 1601, bf16", in, {});
}

TEST_CASE("cuda: ViT-B/16 at 640x640, 1601 tokens, matches the CPU", "[cuda]") {
    const auto in = make_inputs(1, 2, 1601, 1601, 64, 64, 61);
    compare<float>("1601 x 1601, fp32", in, {});
    compare<bf16>("1601 x 1601, bf16", in, {});
    compare<half>("1601 x 1601, half", in, {});
}

TEST_CASE("cuda: odd sizes (5 x 3, 1 x 1, E != Ev, E not a multiple of 16) match the CPU", "[cuda]") {
    compare<float>("5 x 3, E 16, Ev 24", make_inputs(2, 3, 5, 3, 16, 24, 70), {});
    compare<float>("1 x 1", make_inputs(1, 1, 1, 1, 8, 8, 71), {});
    compare<float>("E 5, Ev 7", make_inputs(2, 2, 33, 47, 5, 7, 72), {});
    compare<bf16>("E 20, Ev 36, bf16", make_inputs(2, 2, 33, 47, 20, 36, 73), {});
    AttentionOptions<float, Cpu> o;
    o.causal = true;
    compare<float>("5 x 3 causal", make_inputs(2, 3, 5, 3, 16, 24, 74), o);
}

TEST_CASE("cuda: head dimensions 32 and 128 (and uneven E, Ev up to 128) match the CPU", "[cuda]") {
    compare<float>("E = Ev = 32", make_inputs(2, 2, 100, 80, 32, 32, 80), {});
    compare<float>("E = Ev = 128", make_inputs(2, 2, 100, 80, 128, 128, 81), {});
    compare<bf16>("E = Ev = 128, bf16", make_inputs(2, 2, 100, 80, 128, 128, 82), {});
    compare<half>("E = Ev = 32, half", make_inputs(2, 2, 100, 80, 32, 32, 83), {});
    compare<float>("E 128, Ev 96", make_inputs(1, 2, 70, 90, 128, 96, 84), {});
    compare<float>("E 20, Ev 100", make_inputs(1, 2, 70, 90, 20, 100, 85), {});
    AttentionOptions<float, Cpu> o;
    o.causal = true;
    o.dropout = 0.2;
    Generator gc(3), gg(3);
    compare<float>("E = Ev = 128, causal, dropout", make_inputs(1, 2, 100, 100, 128, 128, 86), o, &gc, &gg);
}

TEST_CASE("cuda: strided q, k, v (MultiheadAttention's head views, transposed rows) match the CPU", "[cuda]") {
    const auto in = make_inputs(2, 4, 77, 90, 64, 64, 90);
    // As MultiheadAttention makes them: [B, L, H, E] memory seen as [B, H, L, E].
    Placer<float> heads = [](const Tensor<float, 4, Cpu>& x) {
        return to_gpu(x.permute(0, 2, 1, 3).contiguous()).permute(0, 2, 1, 3);
    };
    // Sequence-first [L, B, H, E] memory, as nn.MultiheadAttention's default layout.
    Placer<float> seq_first = [](const Tensor<float, 4, Cpu>& x) {
        return to_gpu(x.permute(2, 0, 1, 3).contiguous()).permute(1, 2, 0, 3);
    };
    // Columns not contiguous: [B, H, E, L] memory.
    Placer<float> columns = [](const Tensor<float, 4, Cpu>& x) {
        return to_gpu(x.permute(0, 1, 3, 2).contiguous()).permute(0, 1, 3, 2);
    };
    AttentionOptions<float, Cpu> o;
    o.causal = true;
    compare<float>("[B, L, H, E] views", in, o, nullptr, nullptr, heads);
    compare<float>("[L, B, H, E] views", in, {}, nullptr, nullptr, seq_first);
    compare<float>("transposed rows and columns", in, {}, nullptr, nullptr, columns);
    Placer<bf16> heads16 = [](const Tensor<bf16, 4, Cpu>& x) {
        return to_gpu(x.permute(0, 2, 1, 3).contiguous()).permute(0, 2, 1, 3);
    };
    compare<bf16>("[B, L, H, E] views, bf16", in, o, nullptr, nullptr, heads16);
}

TEST_CASE("cuda: attention gradients through autograd match the CPU", "[cuda]") {
    const index_t B = 2, H = 3, L = 77, S = 100;
    const auto in = make_inputs(B, H, L, S, 64, 64, 100);
    AttentionOptions<float, Cpu> oc;
    oc.key_padding_mask = Tensor<bool, 2, Cpu>::zeros({B, S});
    for (index_t j = 90; j < S; ++j) oc.key_padding_mask(0, j) = true;
    oc.causal = true;
    const auto og = gpu_options<float>(oc);

    auto q = in.q.clone().requires_grad_(), k = in.k.clone().requires_grad_(), v = in.v.clone().requires_grad_();
    sum(scaled_dot_product_attention(q, k, v, oc) * in.g).backward();
    // On the GPU, through a head view (as the modules call it).
    auto qg = to_gpu(in.q).requires_grad_(), kg = to_gpu(in.k).requires_grad_(), vg = to_gpu(in.v).requires_grad_();
    const auto out = scaled_dot_product_attention(qg, kg, vg, og);
    sum(out * to_gpu(in.g)).backward();
    check("autograd grad q", qg.grad(), q.grad(), fp32_tol.rtol, fp32_tol.grad_floor);
    check("autograd grad k", kg.grad(), k.grad(), fp32_tol.rtol, fp32_tol.grad_floor);
    check("autograd grad v", vg.grad(), v.grad(), fp32_tol.rtol, fp32_tol.grad_floor);

    // Only some inputs need a gradient: the others stay undefined and the rest still match.
    auto kg2 = to_gpu(in.k).requires_grad_();
    sum(scaled_dot_product_attention(to_gpu(in.q), kg2, to_gpu(in.v), og) * to_gpu(in.g)).backward();
    check("grad k alone", kg2.grad(), k.grad(), fp32_tol.rtol, fp32_tol.grad_floor);
    const auto fwd = scaled_dot_product_attention_forward(to_gpu(in.q), to_gpu(in.k), to_gpu(in.v), og);
    const auto only_q = scaled_dot_product_attention_backward(to_gpu(in.g), to_gpu(in.q), to_gpu(in.k), to_gpu(in.v),
                                                              fwd, og, true, false, false);
    CHECK(!only_q.grad_k.defined());
    CHECK(!only_q.grad_v.defined());
    check("grad q alone", only_q.grad_q, q.grad(), fp32_tol.rtol, fp32_tol.grad_floor);
}

TEST_CASE("cuda: bf16 and half attention on ViT-sized inputs match the CPU in float", "[cuda]") {
    const auto in = make_inputs(2, 4, 197, 197, 64, 64, 110);  // ViT-B/16 at 224x224
    compare<bf16>("197 x 197, bf16", in, {});
    compare<half>("197 x 197, half", in, {});
    AttentionOptions<float, Cpu> o;
    o.key_padding_mask = Tensor<bool, 2, Cpu>::zeros({2, 197});
    for (index_t j = 150; j < 197; ++j) o.key_padding_mask(1, j) = true;
    o.attn_mask = random_mask(197, 197, 111);
    compare<bf16>("197 x 197 with masks, bf16", in, o);
    compare<half>("197 x 197 with masks, half", in, o);
}

TEST_CASE("cuda: attention refuses head dimensions beyond 128, naming the shapes", "[cuda]") {
    const auto q = Tensor<float, 4, Cuda>::zeros({1, 2, 5, 160});
    const auto k = Tensor<float, 4, Cuda>::zeros({1, 2, 7, 160});
    const auto v = Tensor<float, 4, Cuda>::zeros({1, 2, 7, 64});
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, v), Catch::Contains("head dimensions up to 128") &&
                                                                 Catch::Contains("[1, 2, 5, 160]"));
    const auto v_wide = Tensor<float, 4, Cuda>::zeros({1, 2, 7, 200});
    CHECK_THROWS_WITH(scaled_dot_product_attention(q.narrow(3, 0, 64), k.narrow(3, 0, 64), v_wide),
                      Catch::Contains("Ev = 200"));
    // The shape checks come first, as on the CPU.
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, Tensor<float, 4, Cuda>::zeros({1, 2, 7, 6}), v),
                      Catch::Contains("key of shape [1, 2, 7, 6]"));
}

TEST_CASE("cuda: attention of empty extents", "[cuda]") {
    // No keys: every query is fully masked: output 0, logsumexp +inf, dq 0.
    const auto q = to_gpu(Tensor<float, 4, Cpu>::randn({1, 2, 3, 4}));
    const auto k = Tensor<float, 4, Cuda>::zeros({1, 2, 0, 4});
    const auto v = Tensor<float, 4, Cuda>::zeros({1, 2, 0, 5});
    const auto r = scaled_dot_product_attention_forward(q, k, v);
    REQUIRE(r.out.shape() == Shape<4>{1, 2, 3, 5});
    CHECK(eval(sum(abs(host_dense(r.out)))).item() == 0.0f);
    const auto lse = host_dense(r.logsumexp);
    for (index_t i = 0; i < 3; ++i) CHECK(lse(0, 1, i) == inf);
    const auto grads = scaled_dot_product_attention_backward(Tensor<float, 4, Cuda>::ones({1, 2, 3, 5}), q, k, v, r);
    CHECK(eval(sum(abs(host_dense(grads.grad_q)))).item() == 0.0f);
    // No queries: the key gradients are 0.
    const auto q0 = Tensor<float, 4, Cuda>::zeros({1, 2, 0, 4});
    const auto k3 = to_gpu(Tensor<float, 4, Cpu>::randn({1, 2, 3, 4}));
    const auto v3 = to_gpu(Tensor<float, 4, Cpu>::randn({1, 2, 3, 5}));
    const auto r0 = scaled_dot_product_attention_forward(q0, k3, v3);
    CHECK(r0.out.shape() == Shape<4>{1, 2, 0, 5});
    const auto g0 = scaled_dot_product_attention_backward(Tensor<float, 4, Cuda>::zeros({1, 2, 0, 5}), q0, k3, v3, r0);
    CHECK(eval(sum(abs(host_dense(g0.grad_k)))).item() == 0.0f);
    CHECK(eval(sum(abs(host_dense(g0.grad_v)))).item() == 0.0f);
}
