// Finite-difference checks of scaled_dot_product_attention (ops/attention.hpp). Blocks of 2
// queries and 8 keys (one vector tile of doubles with AVX) make even these tiny inputs run
// through several query and key blocks, the online softmax's rescaling and the padded last
// key block.
#include <cmath>
#include <limits>

#include <weft/weft.hpp>

#include "support/gradcheck.hpp"

using namespace weft;

namespace {

using T4 = Tensor<double, 4>;
using Opts = AttentionOptions<double>;

constexpr double inf = std::numeric_limits<double>::infinity();

Opts small_blocks() {
    Opts o;
    o.block_q = 2;
    o.block_k = 8;
    return o;
}

// Checks the gradient of attention(q, k, v, opts) with respect to all three inputs; inputs are
// drawn with a fixed seed (Catch runs the cases in any order).
void check_attention(index_t B, index_t H, index_t L, index_t S, index_t E, index_t Ev, const Opts& opts,
                     std::uint64_t seed) {
    Generator gen(seed);
    const auto q = T4::randn({B, H, L, E}, gen), k = T4::randn({B, H, S, E}, gen), v = T4::randn({B, H, S, Ev}, gen);
    WEFT_CHECK_GRADIENT(
        [&](const T4& q_, const T4& k_, const T4& v_) { return scaled_dot_product_attention(q_, k_, v_, opts); }, q, k,
        v);
}

}  // namespace

TEST_CASE("gradcheck attention plain", "[gradcheck]") {
    check_attention(2, 2, 5, 11, 3, 3, small_blocks(), 1);
}

TEST_CASE("gradcheck attention scale", "[gradcheck]") {
    Opts o = small_blocks();
    o.scale = 0.8;
    check_attention(1, 2, 5, 10, 4, 4, o, 2);
}

TEST_CASE("gradcheck attention additive mask", "[gradcheck]") {
    Generator gen(30);
    Opts o = small_blocks();
    auto mask = Tensor<double, 2>::randn({5, 11}, gen);
    mask(1, 3) = -inf;
    mask(4, 9) = -inf;
    mask(0, 0) = -inf;
    o.attn_mask = mask;
    check_attention(2, 2, 5, 11, 3, 3, o, 3);
}

TEST_CASE("gradcheck attention batched mask", "[gradcheck]") {
    Generator gen(40);
    Opts o = small_blocks();
    SECTION("one mask per batch and head, [B*H, L, S]") {
        auto mask = Tensor<double, 3>::randn({4, 5, 9}, gen);
        mask(3, 2, 8) = -inf;
        o.attn_mask_batched = mask;
        check_attention(2, 2, 5, 9, 3, 3, o, 4);
    }
    SECTION("one mask per batch, [B, L, S], with an [L, S] mask on top") {
        o.attn_mask_batched = Tensor<double, 3>::randn({2, 5, 9}, gen);
        o.attn_mask = Tensor<double, 2>::randn({5, 9}, gen);
        check_attention(2, 3, 5, 9, 3, 3, o, 5);
    }
}

TEST_CASE("gradcheck attention causal", "[gradcheck]") {
    Opts o = small_blocks();
    o.causal = true;
    SECTION("square") { check_attention(2, 2, 10, 10, 3, 3, o, 6); }
    SECTION("more keys than queries") { check_attention(1, 2, 5, 12, 3, 2, o, 7); }
    SECTION("more queries than keys") { check_attention(1, 1, 12, 9, 3, 2, o, 8); }
}

TEST_CASE("gradcheck attention key padding", "[gradcheck]") {
    Opts o = small_blocks();
    auto pad = Tensor<bool, 2>::zeros({2, 11});
    pad(0, 1) = pad(0, 8) = pad(0, 10) = true;
    pad(1, 0) = pad(1, 2) = pad(1, 3) = pad(1, 9) = true;
    o.key_padding_mask = pad;
    check_attention(2, 2, 5, 11, 3, 3, o, 9);
}

TEST_CASE("gradcheck attention with L != S and E != Ev", "[gradcheck]") {
    check_attention(2, 1, 7, 13, 5, 2, small_blocks(), 10);
}

TEST_CASE("gradcheck attention dropout with a fixed seed", "[gradcheck]") {
    // Each call draws its mask from a fresh generator with the same seed, so the function
    // gradcheck differentiates is the same at every evaluation.
    Generator gen(11);
    const auto q = T4::randn({2, 2, 5, 3}, gen), k = T4::randn({2, 2, 11, 3}, gen), v = T4::randn({2, 2, 11, 4}, gen);
    WEFT_CHECK_GRADIENT(
        [](const T4& q_, const T4& k_, const T4& v_) {
            Generator drop(1234);
            Opts o = small_blocks();
            o.dropout = 0.3;
            o.gen = &drop;
            return scaled_dot_product_attention(q_, k_, v_, o);
        },
        q, k, v);
}

TEST_CASE("gradcheck attention fully masked rows and one head over several key groups", "[gradcheck]") {
    // One batch and head: the backward splits the key blocks over threads and sums dQ. Query 1
    // sees no key at all (mask row of -inf), so its output and gradients are 0.
    Opts o = small_blocks();
    auto mask = Tensor<double, 2>::zeros({6, 27});
    for (index_t j = 0; j < 27; ++j) mask(1, j) = -inf;
    o.attn_mask = mask;
    check_attention(1, 1, 6, 27, 3, 3, o, 12);
}

TEST_CASE("gradcheck attention default blocks and strided inputs", "[gradcheck]") {
    // Inputs as transposed views ([B, L, H, E] memory read as [B, H, L, E]), as multi-head
    // attention produces them, through the default (large) blocks.
    Generator gen(13);
    const auto q = Tensor<double, 4>::randn({2, 4, 3, 3}, gen), k = Tensor<double, 4>::randn({2, 6, 3, 3}, gen),
               v = Tensor<double, 4>::randn({2, 6, 3, 2}, gen);
    Opts o;
    o.causal = true;
    WEFT_CHECK_GRADIENT(
        [&](const T4& q_, const T4& k_, const T4& v_) {
            return scaled_dot_product_attention(q_.transpose(1, 2), k_.transpose(1, 2), v_.transpose(1, 2), o);
        },
        q, k, v);
}
