// scaled_dot_product_attention (ops/attention.hpp) against PyTorch (tests/reference/attention.py),
// against a plain double-precision reference on a longer float sequence, and its dropout,
// fully masked rows and errors.
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <weft/weft.hpp>

#include "support/fixture.hpp"

using namespace weft;
using weft::test::check_close;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// Runs fixture case `name` with the masks it holds and compares output and gradients.
void check_case(const SafetensorsFile& f, const std::string& name, bool causal, double scale, index_t block_q,
                index_t block_k) {
    INFO("case " << name << ", blocks " << block_q << " x " << block_k);
    auto q = f.get<double, 4>(name + ".q").requires_grad_();
    auto k = f.get<double, 4>(name + ".k").requires_grad_();
    auto v = f.get<double, 4>(name + ".v").requires_grad_();
    AttentionOptions<double> o;
    if (f.contains(name + ".mask")) o.attn_mask = f.get<double, 2>(name + ".mask");
    if (f.contains(name + ".mask3")) o.attn_mask_batched = f.get<double, 3>(name + ".mask3");
    if (f.contains(name + ".pad")) o.key_padding_mask = f.get<bool, 2>(name + ".pad");
    o.causal = causal;
    o.scale = scale;
    o.block_q = block_q;
    o.block_k = block_k;
    auto out = scaled_dot_product_attention(q, k, v, o);
    check_close(out, f.get<double, 4>(name + ".out"), 1e-12, 1e-12, name + " forward");
    sum(out * f.get<double, 4>(name + ".r")).backward();
    check_close(q.grad(), f.get<double, 4>(name + ".gq"), 1e-12, 1e-12, name + " grad q");
    check_close(k.grad(), f.get<double, 4>(name + ".gk"), 1e-12, 1e-12, name + " grad k");
    check_close(v.grad(), f.get<double, 4>(name + ".gv"), 1e-12, 1e-12, name + " grad v");
}

// softmax(scale · q·kᵀ + causal mask + key padding) · v and the gradients of sum(out * r), in
// double, one query at a time: the textbook formulas, independent of the blocked kernel.
struct Reference {
    std::vector<double> out, gq, gk, gv;
};

template <class T>
std::vector<double> values(const Tensor<T, 4>& x) {
    const auto c = x.detach().contiguous();
    return std::vector<double>(c.data(), c.data() + c.numel());
}

template <class T>
Reference reference(const Tensor<T, 4>& q_, const Tensor<T, 4>& k_, const Tensor<T, 4>& v_, const Tensor<T, 4>& r_,
                    bool causal, const Tensor<bool, 2>& pad) {
    const index_t B = q_.size(0), H = q_.size(1), L = q_.size(2), E = q_.size(3), S = k_.size(2), Ev = v_.size(3);
    const double scale = 1 / std::sqrt(double(E));
    // Raw rows: element access through Tensor::operator() is slow in a Debug build.
    const auto qv = values(q_), kv = values(k_), vv = values(v_), rv = values(r_);
    Reference ref;
    ref.out.assign(qv.size() / std::size_t(E) * std::size_t(Ev), 0);
    ref.gq.assign(qv.size(), 0);
    ref.gk.assign(kv.size(), 0);
    ref.gv.assign(vv.size(), 0);
    std::vector<double> p(static_cast<std::size_t>(S)), ds(static_cast<std::size_t>(S));
    for (index_t b = 0; b < B; ++b)
        for (index_t h = 0; h < H; ++h)
            for (index_t i = 0; i < L; ++i) {
                const std::size_t bh = std::size_t(b * H + h);
                const double* q = qv.data() + (bh * std::size_t(L) + std::size_t(i)) * std::size_t(E);
                const double* r = rv.data() + (bh * std::size_t(L) + std::size_t(i)) * std::size_t(Ev);
                double* o = ref.out.data() + (bh * std::size_t(L) + std::size_t(i)) * std::size_t(Ev);
                double* gq = ref.gq.data() + (bh * std::size_t(L) + std::size_t(i)) * std::size_t(E);
                double mx = -inf;
                for (index_t j = 0; j < S; ++j) {
                    const double* k = kv.data() + (bh * std::size_t(S) + std::size_t(j)) * std::size_t(E);
                    double s = 0;
                    for (index_t e = 0; e < E; ++e) s += q[e] * k[e];
                    p[std::size_t(j)] = (causal && j > i) || pad(b, j) ? -inf : s * scale;
                    mx = std::max(mx, p[std::size_t(j)]);
                }
                if (mx == -inf) continue;  // every key masked: output and gradients 0
                double total = 0;
                for (auto& x : p) total += (x = std::exp(x - mx));
                for (auto& x : p) x /= total;
                for (index_t j = 0; j < S; ++j) {
                    const double* v = vv.data() + (bh * std::size_t(S) + std::size_t(j)) * std::size_t(Ev);
                    for (index_t c = 0; c < Ev; ++c) o[c] += p[std::size_t(j)] * v[c];
                }
                double d = 0;  // rowsum(dO ∘ O)
                for (index_t c = 0; c < Ev; ++c) d += r[c] * o[c];
                for (index_t j = 0; j < S; ++j) {
                    const double* v = vv.data() + (bh * std::size_t(S) + std::size_t(j)) * std::size_t(Ev);
                    double* gv = ref.gv.data() + (bh * std::size_t(S) + std::size_t(j)) * std::size_t(Ev);
                    double dp = 0;
                    for (index_t c = 0; c < Ev; ++c) {
                        dp += r[c] * v[c];
                        gv[c] += p[std::size_t(j)] * r[c];
                    }
                    ds[std::size_t(j)] = p[std::size_t(j)] * (dp - d) * scale;
                }
                for (index_t j = 0; j < S; ++j) {
                    const double* k = kv.data() + (bh * std::size_t(S) + std::size_t(j)) * std::size_t(E);
                    double* gk = ref.gk.data() + (bh * std::size_t(S) + std::size_t(j)) * std::size_t(E);
                    for (index_t e = 0; e < E; ++e) {
                        gq[e] += ds[std::size_t(j)] * k[e];
                        gk[e] += ds[std::size_t(j)] * q[e];
                    }
                }
            }
    return ref;
}

Tensor<double, 4> as_tensor(const std::vector<double>& x, const Shape<4>& shape) {
    return Tensor<double, 4>::from_vector(x, shape);
}

}  // namespace

TEST_CASE("attention matches PyTorch for every mask kind") {
    const auto f = weft::test::fixture("attention");
    struct Case {
        const char* name;
        bool causal;
        double scale;
    };
    const Case cases[] = {{"plain", false, 0},          {"scale", false, 0.37},  {"mask", false, 0},
                          {"mask3", false, 0},          {"mask3_per_batch", false, 0},
                          {"causal", true, 0},          {"causal_rect", true, 0}, {"padding", false, 0},
                          {"shapes", false, 0},         {"combined", true, 0}};
    for (const auto& c : cases) {
        check_case(f, c.name, c.causal, c.scale, 0, 0);  // default blocks: one block each
        check_case(f, c.name, c.causal, c.scale, 2, 8);  // several query and key blocks
        check_case(f, c.name, c.causal, c.scale, 3, 16);
    }
}

TEST_CASE("attention in float on 300 tokens matches a double-precision reference") {
    // Several default-sized blocks (96 queries, 256 keys), causal and padded keys, and one
    // batch whose keys are all padding.
    const index_t B = 3, H = 2, L = 300, S = 300, E = 32, Ev = 24;
    Generator gen(21);
    auto q = Tensor<float, 4>::randn({B, H, L, E}, gen).requires_grad_();
    auto k = Tensor<float, 4>::randn({B, H, S, E}, gen).requires_grad_();
    auto v = Tensor<float, 4>::randn({B, H, S, Ev}, gen).requires_grad_();
    const auto r = Tensor<float, 4>::randn({B, H, L, Ev}, gen);
    auto pad = Tensor<bool, 2>::zeros({B, S});
    for (index_t j = 0; j < S; j += 7) pad(1, j) = true;
    for (index_t j = 250; j < S; ++j) pad(0, j) = true;
    for (index_t j = 0; j < S; ++j) pad(2, j) = true;
    for (const bool causal : {false, true}) {
        INFO("causal " << causal);
        autograd::clear_grad(q);
        autograd::clear_grad(k);
        autograd::clear_grad(v);
        AttentionOptions<float> o;
        o.causal = causal;
        o.key_padding_mask = pad;
        auto out = scaled_dot_product_attention(q, k, v, o);
        sum(out * r).backward();
        const auto ref = reference(q.detach(), k.detach(), v.detach(), r, causal, pad);
        check_close(out, as_tensor(ref.out, out.shape()), 2e-6, 1e-4, "forward");
        check_close(q.grad(), as_tensor(ref.gq, q.shape()), 2e-6, 1e-4, "grad q");
        check_close(k.grad(), as_tensor(ref.gk, k.shape()), 2e-6, 1e-4, "grad k");
        check_close(v.grad(), as_tensor(ref.gv, v.shape()), 2e-6, 1e-4, "grad v");
    }
}

TEST_CASE("attention gives 0, not NaN, where every key is masked") {
    auto q = Tensor<float, 4>::randn({2, 1, 4, 8}).requires_grad_();
    auto k = Tensor<float, 4>::randn({2, 1, 5, 8}).requires_grad_();
    auto v = Tensor<float, 4>::randn({2, 1, 5, 8}).requires_grad_();
    AttentionOptions<float> o;
    o.key_padding_mask = Tensor<bool, 2>::from({{false, true, false, false, false}, {true, true, true, true, true}});
    auto mask = Tensor<float, 2>::zeros({4, 5});
    for (index_t j = 0; j < 5; ++j) mask(2, j) = -std::numeric_limits<float>::infinity();
    o.attn_mask = mask;
    auto out = scaled_dot_product_attention(q, k, v, o);
    sum(out * out).backward();
    for (index_t c = 0; c < 8; ++c) {
        CHECK(out(0, 0, 2, c) == 0.0f);  // batch 0, query 2: its mask row is all -inf
        CHECK(q.grad()(0, 0, 2, c) == 0.0f);
        for (index_t i = 0; i < 4; ++i) {  // batch 1: every key is padding
            CHECK(out(1, 0, i, c) == 0.0f);
            CHECK(q.grad()(1, 0, i, c) == 0.0f);
        }
        for (index_t j = 0; j < 5; ++j) {
            CHECK(k.grad()(1, 0, j, c) == 0.0f);
            CHECK(v.grad()(1, 0, j, c) == 0.0f);
        }
    }
    const auto all = eval(cast<double>(sum(out * out) + sum(q.grad()) + sum(k.grad()) + sum(v.grad())));
    CHECK(std::isfinite(all.item()));
    // The logsumexp marks such rows with +inf.
    const auto fwd = scaled_dot_product_attention_forward(q, k, v, o);
    CHECK(fwd.logsumexp(0, 0, 2) == std::numeric_limits<float>::infinity());
    CHECK(std::isfinite(fwd.logsumexp(0, 0, 1)));
}

TEST_CASE("attention dropout is the Philox mask rand < 1 - p, reproducible from the seed") {
    // With q = 0 every weight is 1/S; values v = identity make the output the weights
    // themselves, so each output element shows one keep/drop decision.
    const index_t B = 2, H = 3, L = 5, S = 10;
    const double p = 0.4;
    auto q = Tensor<double, 4>::zeros({B, H, L, 4});
    auto k = Tensor<double, 4>::randn({B, H, S, 4});
    auto v = Tensor<double, 4>::zeros({B, H, S, S});
    for (index_t b = 0; b < B; ++b)
        for (index_t h = 0; h < H; ++h)
            for (index_t j = 0; j < S; ++j) v(b, h, j, j) = 1;
    Generator gen(77), twin(77);
    AttentionOptions<double> o;
    o.dropout = p;
    o.gen = &gen;
    auto out = scaled_dot_product_attention(q, k, v, o);
    // The same decisions, drawn as a tensor from the same stream position: S rounds up to 12.
    const auto u = Tensor<float, 4>::rand({B, H, L, 12}, twin);
    CHECK(gen.offset == twin.offset);  // the call consumed exactly that many numbers
    index_t dropped = 0;
    for (index_t b = 0; b < B; ++b)
        for (index_t h = 0; h < H; ++h)
            for (index_t i = 0; i < L; ++i)
                for (index_t j = 0; j < S; ++j) {
                    const bool keep = double(u(b, h, i, j)) < 1 - p;
                    dropped += !keep;
                    CHECK(out(b, h, i, j) == Approx(keep ? 1.0 / (S * (1 - p)) : 0.0).margin(1e-15));
                }
    CHECK(dropped > 0);
    CHECK(dropped < B * H * L * S);

    // The same seed gives the same output; the advanced generator a different one.
    Generator again(77);
    o.gen = &again;
    auto same = scaled_dot_product_attention(q, k, v, o);
    auto next = scaled_dot_product_attention(q, k, v, o);
    check_close(same, out, 0, 0, "same seed");
    CHECK(eval(cast<double>(sum(abs(next - out)))).item() > 0);

    // p = 1 drops everything.
    o.dropout = 1;
    auto none = scaled_dot_product_attention(q, k, v, o);
    CHECK(eval(sum(abs(none))).item() == 0.0);
}

TEST_CASE("attention block sizes change rounding only") {
    Generator gen(5);
    const auto q = Tensor<double, 4>::randn({2, 3, 37, 16}, gen), k = Tensor<double, 4>::randn({2, 3, 45, 16}, gen),
               v = Tensor<double, 4>::randn({2, 3, 45, 12}, gen), g = Tensor<double, 4>::randn({2, 3, 37, 12}, gen);
    AttentionOptions<double> o;
    o.causal = true;
    const auto base = scaled_dot_product_attention_forward(q, k, v, o);
    const auto base_grads = scaled_dot_product_attention_backward(g, q, k, v, base, o);
    for (const auto& [bq, bk] : {std::pair<index_t, index_t>{1, 8}, {5, 13}, {16, 16}, {40, 64}}) {
        INFO("blocks " << bq << " x " << bk);
        o.block_q = bq;
        o.block_k = bk;
        const auto r = scaled_dot_product_attention_forward(q, k, v, o);
        const auto gr = scaled_dot_product_attention_backward(g, q, k, v, r, o);
        check_close(r.out, base.out, 1e-13, 1e-13, "output");
        check_close(r.logsumexp, base.logsumexp, 1e-13, 1e-13, "logsumexp");
        check_close(gr.grad_q, base_grads.grad_q, 1e-13, 1e-13, "grad q");
        check_close(gr.grad_k, base_grads.grad_k, 1e-13, 1e-13, "grad k");
        check_close(gr.grad_v, base_grads.grad_v, 1e-13, 1e-13, "grad v");
    }
    // Options as designated initializers (no -Wmissing-field-initializers for skipped masks).
    const auto designated = scaled_dot_product_attention(q, k, v, {.causal = true, .block_q = 7, .block_k = 24});
    check_close(designated, base.out, 1e-13, 1e-13, "designated options");
}

TEST_CASE("attention refuses inputs that do not fit, naming the shapes") {
    const auto q = Tensor<float, 4>::randn({2, 3, 5, 8});
    const auto k = Tensor<float, 4>::randn({2, 3, 7, 8});
    const auto v = Tensor<float, 4>::randn({2, 3, 7, 4});
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, Tensor<float, 4>::randn({2, 3, 7, 6}), v),
                      Catch::Contains("key of shape [2, 3, 7, 6]"));
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, Tensor<float, 4>::randn({2, 3, 6, 4})),
                      Catch::Contains("value of shape [2, 3, 6, 4]"));
    AttentionOptions<float> o;
    o.attn_mask = Tensor<float, 2>::zeros({5, 6});
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, v, o), Catch::Contains("attn_mask of shape [5, 6]"));
    o = {};
    o.attn_mask_batched = Tensor<float, 3>::zeros({4, 5, 7});
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, v, o), Catch::Contains("attn_mask_batched of shape"));
    o = {};
    o.key_padding_mask = Tensor<bool, 2>::zeros({3, 7});
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, v, o), Catch::Contains("key_padding_mask of shape [3, 7]"));
    o = {};
    o.dropout = 1.5;
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, v, o), Catch::Contains("dropout probability 1.5"));
    o = {};
    o.attn_mask = Tensor<float, 2>::zeros({5, 7}).requires_grad_();
    CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, v, o), Catch::Contains("masks receive no gradient"));
}

TEST_CASE("attention of empty extents") {
    AttentionOptions<float> o;
    // No keys: every query is fully masked, output 0.
    auto out = scaled_dot_product_attention(Tensor<float, 4>::randn({1, 2, 3, 4}), Tensor<float, 4>::zeros({1, 2, 0, 4}),
                                            Tensor<float, 4>::zeros({1, 2, 0, 5}), o);
    REQUIRE(out.shape() == Shape<4>{1, 2, 3, 5});
    CHECK(eval(sum(abs(out))).item() == 0.0f);
    // No queries.
    auto none = scaled_dot_product_attention(Tensor<float, 4>::randn({1, 2, 0, 4}), Tensor<float, 4>::randn({1, 2, 3, 4}),
                                             Tensor<float, 4>::randn({1, 2, 3, 5}), o);
    CHECK(none.shape() == Shape<4>{1, 2, 0, 5});
}

TEST_CASE("attention docs example") {
    Generator gen(3);
    auto q = Tensor<float, 4>::randn({2, 4, 30, 16}, gen).requires_grad_();  // [B, H, L, E]
    auto k = Tensor<float, 4>::randn({2, 4, 40, 16}, gen).requires_grad_();  // [B, H, S, E]
    auto v = Tensor<float, 4>::randn({2, 4, 40, 8}, gen).requires_grad_();   // [B, H, S, Ev]
    const auto r = Tensor<float, 4>::randn({2, 4, 30, 8}, gen);
    auto padding = Tensor<bool, 2>::zeros({2, 40});
    padding(1, 39) = true;
    // [snippet:attention]
    AttentionOptions<float> opts;
    opts.causal = true;                                      // key j > query i is masked
    opts.key_padding_mask = padding;                         // [B, S] bool, true = ignore the key
    auto out = scaled_dot_product_attention(q, k, v, opts);  // [B, H, L, Ev]
    sum(out * r).backward();                                 // q.grad(), k.grad(), v.grad()
    // [/snippet]
    CHECK(out.shape() == Shape<4>{2, 4, 30, 8});
    CHECK(q.grad().shape() == q.shape());
    CHECK(k.grad().shape() == k.shape());
    CHECK(v.grad().shape() == v.shape());

    // docs/attention.md shows exactly the lines between the snippet markers above.
    const auto read = [](const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    const std::string root = WEFT_SOURCE_DIR;
    const std::string source = read(root + "/tests/attention/attention_test.cpp");
    const std::string open_mark = std::string("// [snippet:") + "attention]\n";
    const auto begin = source.find(open_mark);
    REQUIRE(begin != std::string::npos);
    const auto close = source.find(std::string("// [/") + "snippet]", begin);
    REQUIRE(close != std::string::npos);
    const auto end = source.rfind('\n', close) + 1;
    std::string shown;
    std::istringstream lines(source.substr(begin + open_mark.size(), end - begin - open_mark.size()));
    for (std::string line; std::getline(lines, line);) shown += (line.size() > 4 ? line.substr(4) : std::string()) + "\n";
    CHECK_THAT(read(root + "/docs/attention.md"), Catch::Contains("```cpp\n" + shown + "```"));
}
