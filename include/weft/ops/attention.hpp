// weft/ops/attention.hpp: scaled dot-product attention, memory-efficient and differentiable.
//
//   auto o = scaled_dot_product_attention(q, k, v);            // softmax(q·kᵀ/√E) · v
//   auto o = scaled_dot_product_attention(q, k, v, {.causal = true});
//   AttentionOptions<float> opts;
//   opts.key_padding_mask = pad;                                // [B, S], true = ignore key
//   opts.dropout = 0.1;                                         // on the weights, Philox
//   auto o = scaled_dot_product_attention(q, k, v, opts);
//
//   q [B, H, L, E], k [B, H, S, E], v [B, H, S, Ev] -> [B, H, L, Ev]
//
// The weights are softmax over keys of  scale · q·kᵀ + attn_mask + attn_mask_batched, with the
// causal and key-padding masks setting scores to -inf. Every mask is optional and they combine:
//
//   attn_mask          [L, S] additive (0 / -inf, or any finite bias), shared by batches and heads
//   attn_mask_batched  [B*H, L, S] (one per batch and head, as nn.MultiheadAttention takes a 3-D
//                      mask), [B, L, S] (one per batch), or [1, L, S]; additive
//   causal             key j > query i is masked (top-left aligned, as PyTorch's is_causal)
//   key_padding_mask   [B, S] bool, true = this key is padding
//
// Masks are constants: no gradient flows into them (a mask that requires grad is refused; pass
// mask.detach()). They may be views of any strides, expanded ones included.
//
// A query whose every key is masked gets output 0 and gradient 0. (PyTorch's softmax gives NaN
// there; weft chooses 0, which is what padding rows of a batch want.)
//
// Dropout (`dropout` = p > 0) zeroes each weight with probability p after the softmax and
// scales the others by 1/(1-p), as torch.nn.functional.scaled_dot_product_attention does. The
// op applies it whenever p > 0: a module passes 0 in evaluation. The mask comes from Philox
// with `gen` (the default generator when null) and is exactly
// `Tensor<float, 4>::rand({B, H, L, 4·⌈S/4⌉}, gen) < 1 - p` cut to the first S keys (the rule
// of ops/dropout.hpp): weight (b, h, i, j) uses word j mod 4 of Philox block
// offset + ((b·H + h)·L + i)·⌈S/4⌉ + ⌊j/4⌋. The backward regenerates the mask from the same
// seed and offset instead of storing it. The numbers differ from PyTorch's own generator.
// Under a replica slice of the generator (data parallel, see Generator::replica), q holds B of
// the global batch's B·replicas samples along axis 0: batch b takes the rows of global batch
// replica·B + b, and the generator advances past all B·replicas batches, so the replicas'
// outputs are the rows of what one process computes on the whole batch.
//
// Memory: the [L, S] weight matrix never exists. The CPU kernel (ops/cpu/attention.hpp) walks
// blocks of queries and keys with an online softmax, keeps only the output and one logsumexp
// per query for the backward, and recomputes the weights there (FlashAttention-2). Extra memory
// is a packed copy of K and V in the forward and a few blocks per thread.
//
// On CUDA (ops/cuda/attention.cuh) the same algorithm runs as fused kernels on float, bf16 and
// half tensors (tensor cores for the 16-bit types, float accumulation for all), with head
// dimensions E, Ev up to 128; the dropout mask is the same Philox rule, so both devices drop the
// same weights. Its only extra memory is a float buffer for dQ (bf16, half) and one float per
// query. The logsumexp is float for bf16 and half. double stays on the CPU.
//
// block_q and block_k set the CPU's block sizes (0: tuned defaults; block_k rounds up to the
// vector tile, 16 floats or 8 doubles with AVX; CUDA ignores them). They change the summation
// order, not the result beyond rounding; tests set small blocks to exercise several of them on
// tiny inputs.
//
// scaled_dot_product_attention_forward/_backward are the plain functions under the recorded op
// (as matmul_backward is): the backward takes the forward's AttentionResult.
#pragma once

#include <utility>
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>

#include "../autograd/tape.hpp"
#include "../core/philox.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "cpu/attention.hpp"
#if WEFT_WITH_CUDA
#include "cuda/attention.cuh"
#endif

namespace weft {

template <Element T, Device D = Cpu>
struct AttentionOptions {
    // (The {} initializers keep -Wextra quiet about designated initializers that skip them.)
    Tensor<T, 2, D> attn_mask{};            // [L, S] additive, or undefined
    Tensor<T, 3, D> attn_mask_batched{};    // [B*H | B | 1, L, S] additive, or undefined
    bool causal = false;                    // mask key j > query i
    Tensor<bool, 2, D> key_padding_mask{};  // [B, S], true = ignore this key, or undefined
    double scale = 0;                       // 0: 1/sqrt(E)
    double dropout = 0;                     // probability of dropping an attention weight
    Generator* gen = nullptr;               // dropout's generator; null: default_generator()
    index_t block_q = 0, block_k = 0;       // 0: tuned defaults (see above)
};

// What the forward computed and the backward needs besides the inputs.
template <Element T, Device D = Cpu>
struct AttentionResult {
    Tensor<T, 4, D> out;                   // [B, H, L, Ev]
    Tensor<compute_t<T>, 3, D> logsumexp;  // [B, H, L] of the scaled, masked scores; +inf where every key is masked
                                           // (float for bf16 and half: the backward's weights need its bits)
    std::uint64_t dropout_seed = 0, dropout_offset = 0;  // the Philox stream of the dropout mask
};

template <Element T, Device D = Cpu>
struct AttentionGrads {
    Tensor<T, 4, D> grad_q, grad_k, grad_v;  // undefined where not asked for
};

namespace detail {

template <Element T, Device D>
void check_attention(const char* op, const Tensor<T, 4, D>& q, const Tensor<T, 4, D>& k, const Tensor<T, 4, D>& v,
                     const AttentionOptions<T, D>& o) {
    const index_t B = q.size(0), H = q.size(1), L = q.size(2), E = q.size(3), S = k.size(2);
    WEFT_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == E, op, ": key of shape ", k.shape(),
               " does not fit query of shape ", q.shape(), " (expected [", B, ", ", H, ", S, ", E, "])");
    WEFT_CHECK(v.size(0) == B && v.size(1) == H && v.size(2) == S, op, ": value of shape ", v.shape(),
               " does not fit key of shape ", k.shape(), " (expected [", B, ", ", H, ", ", S, ", Ev])");
    if (o.attn_mask.defined())
        WEFT_CHECK(o.attn_mask.size(0) == L && o.attn_mask.size(1) == S, op, ": attn_mask of shape ",
                   o.attn_mask.shape(), " does not fit ", L, " queries and ", S, " keys (expected [", L, ", ", S,
                   "])");
    if (o.attn_mask_batched.defined()) {
        const index_t n = o.attn_mask_batched.size(0);
        WEFT_CHECK((n == B * H || n == B || n == 1) && o.attn_mask_batched.size(1) == L &&
                       o.attn_mask_batched.size(2) == S,
                   op, ": attn_mask_batched of shape ", o.attn_mask_batched.shape(), " does not fit ", B,
                   " batches of ", H, " heads, ", L, " queries and ", S, " keys (expected [", B * H, ", ", L, ", ",
                   S, "], [", B, ", ", L, ", ", S, "] or [1, ", L, ", ", S, "])");
    }
    if (o.key_padding_mask.defined())
        WEFT_CHECK(o.key_padding_mask.size(0) == B && o.key_padding_mask.size(1) == S, op,
                   ": key_padding_mask of shape ", o.key_padding_mask.shape(), " does not fit ", B,
                   " batches and ", S, " keys (expected [", B, ", ", S, "])");
    WEFT_CHECK(!o.attn_mask.requires_grad() && !o.attn_mask_batched.requires_grad(), op,
               ": attention masks receive no gradient; pass mask.detach()");
    WEFT_CHECK(o.dropout >= 0 && o.dropout <= 1, op, ": dropout probability ", o.dropout,
               " is outside [0, 1]");
    WEFT_CHECK(std::isfinite(o.scale), op, ": scale ", o.scale, " is not finite");
}

// The scale the scores are multiplied with: opts.scale, or 1/sqrt(E).
template <Element T, Device D>
double attention_scale(const Tensor<T, 4, D>& q, const AttentionOptions<T, D>& o) {
    return o.scale != 0 ? o.scale : 1.0 / std::sqrt(double(std::max<index_t>(q.size(3), 1)));
}

template <Element T, Device D>
cpu::attention::Problem<T> attention_problem(const Tensor<T, 4, D>& q, const Tensor<T, 4, D>& k,
                                             const Tensor<T, 4, D>& v, const AttentionOptions<T, D>& o) {
    cpu::attention::Problem<T> p;
    p.q = q.detach();
    p.k = k.detach();
    p.v = v.detach();
    p.mask = o.attn_mask.detach();
    p.mask_batched = o.attn_mask_batched.detach();
    p.key_padding = o.key_padding_mask;
    p.causal = o.causal;
    p.scale = T(attention_scale(q, o));
    p.dropout = o.dropout;
    p.block_q = o.block_q;
    p.block_k = o.block_k;
    return p;
}

#if WEFT_WITH_CUDA
// The CUDA kernels' view of a call (ops/cuda/attention.cuh); block_q and block_k are CPU tuning.
template <Element T>
cuda::AttentionProblem<T> cuda_attention_problem(const Tensor<T, 4, Cuda>& q, const Tensor<T, 4, Cuda>& k,
                                                 const Tensor<T, 4, Cuda>& v, const AttentionOptions<T, Cuda>& o) {
    cuda::AttentionProblem<T> p;
    p.q = q.detach();
    p.k = k.detach();
    p.v = v.detach();
    p.mask = o.attn_mask.detach();
    p.mask_batched = o.attn_mask_batched.detach();
    p.key_padding = o.key_padding_mask;
    p.causal = o.causal;
    p.scale = float(attention_scale(q, o));
    p.dropout = o.dropout;
    return p;
}
#endif

template <Element T, Device D>
constexpr void check_attention_types() {
    if constexpr (std::same_as<D, Cpu>)
        static_assert(std::same_as<T, float> || std::same_as<T, double>,
                      "weft: scaled_dot_product_attention on the CPU takes float or double tensors (compute in float: "
                      "weft::cast<float>(x))");
    else
        static_assert(std::same_as<T, float> || std::same_as<T, bf16> || std::same_as<T, half>,
                      "weft: scaled_dot_product_attention on CUDA takes float, bf16 or half tensors (double attention "
                      "runs on the CPU: move the tensors there, or compute in float: weft::cast<float>(x))");
}

}  // namespace detail

// ---- forward and backward as plain functions ---------------------------------------------------

// The attention and what its backward needs. Draws the dropout mask's stream from opts.gen.
template <Element T, Device D>
AttentionResult<T, D> scaled_dot_product_attention_forward(const Tensor<T, 4, D>& q, const Tensor<T, 4, D>& k,
                                                           const Tensor<T, 4, D>& v,
                                                           const AttentionOptions<T, D>& opts = {}) {
    detail::check_attention_types<T, D>();
    detail::check_attention("scaled_dot_product_attention", q, k, v, opts);
    AttentionResult<T, D> r;
    if (opts.dropout > 0) {
        Generator& gen = opts.gen ? *opts.gen : default_generator();
        WEFT_CHECK(gen.replicas >= 1 && gen.replica < gen.replicas, "scaled_dot_product_attention: generator replica ",
                   gen.replica, " of ", gen.replicas, " replicas is out of range");
        // Rows start on whole blocks, so a replica's batches are one contiguous range of blocks.
        const std::uint64_t blocks = std::uint64_t(q.size(0) * q.size(1) * q.size(2)) *
                                     std::uint64_t((k.size(2) + 3) / 4);  // of this replica's batches
        r.dropout_seed = gen.seed;
        r.dropout_offset = gen.advance(blocks * gen.replicas) + gen.replica * blocks;
    }
    r.out = Tensor<T, 4, D>::empty({q.size(0), q.size(1), q.size(2), v.size(3)});
    r.logsumexp = Tensor<compute_t<T>, 3, D>::empty({q.size(0), q.size(1), q.size(2)});
    if constexpr (std::same_as<D, Cpu>) {
        auto p = detail::attention_problem(q, k, v, opts);
        p.seed = r.dropout_seed;
        p.offset = r.dropout_offset;
        cpu::attention::forward(p, r.out, r.logsumexp);
    } else {
#if WEFT_WITH_CUDA
        auto p = detail::cuda_attention_problem(q, k, v, opts);
        p.seed = r.dropout_seed;
        p.offset = r.dropout_offset;
        cuda::attention_forward(p, r.out, r.logsumexp);
#endif
    }
    return r;
}

// Gradients of sum(grad_out * attention) with respect to q, k and v, from the forward's result
// (its output, logsumexp and dropout stream; opts.gen is not used). need_* skip gradients.
template <Element T, Device D>
AttentionGrads<T, D> scaled_dot_product_attention_backward(const Tensor<T, 4, D>& grad_out, const Tensor<T, 4, D>& q,
                                                           const Tensor<T, 4, D>& k, const Tensor<T, 4, D>& v,
                                                           const AttentionResult<T, D>& forward,
                                                           const AttentionOptions<T, D>& opts = {},
                                                           bool need_q = true, bool need_k = true,
                                                           bool need_v = true) {
    detail::check_attention_types<T, D>();
    detail::check_attention("scaled_dot_product_attention_backward", q, k, v, opts);
    const Shape<4> out_shape{q.size(0), q.size(1), q.size(2), v.size(3)};
    WEFT_CHECK(grad_out.shape() == out_shape && forward.out.shape() == out_shape &&
                   forward.logsumexp.shape() == (Shape<3>{q.size(0), q.size(1), q.size(2)}),
               "scaled_dot_product_attention_backward: grad_out of shape ", grad_out.shape(), ", output of shape ",
               forward.out.shape(), " and logsumexp of shape ", forward.logsumexp.shape(),
               " do not fit the attention of query ", q.shape(), " and value ", v.shape(), " (expected ", out_shape,
               ")");
    AttentionGrads<T, D> g;
    if (need_q) g.grad_q = Tensor<T, 4, D>::empty(q.shape());
    if (need_k) g.grad_k = Tensor<T, 4, D>::empty(k.shape());
    if (need_v) g.grad_v = Tensor<T, 4, D>::empty(v.shape());
    if constexpr (std::same_as<D, Cpu>) {
        auto p = detail::attention_problem(q, k, v, opts);
        p.seed = forward.dropout_seed;
        p.offset = forward.dropout_offset;
        cpu::attention::backward(p, grad_out.detach(), forward.out.detach(), forward.logsumexp, g.grad_q, g.grad_k,
                                 g.grad_v);
    } else {
#if WEFT_WITH_CUDA
        auto p = detail::cuda_attention_problem(q, k, v, opts);
        p.seed = forward.dropout_seed;
        p.offset = forward.dropout_offset;
        cuda::attention_backward(p, grad_out.detach(), forward.out.detach(), forward.logsumexp, g.grad_q, g.grad_k,
                                 g.grad_v);
#endif
    }
    return g;
}

// ---- the recorded op -----------------------------------------------------------------------

// softmax(scale · q·kᵀ + masks) · v: q [B, H, L, E], k [B, H, S, E], v [B, H, S, Ev] -> [B, H, L, Ev].
template <Element T, Device D>
Tensor<T, 4, D> scaled_dot_product_attention(const Tensor<T, 4, D>& q, const Tensor<T, 4, D>& k,
                                             const Tensor<T, 4, D>& v, const AttentionOptions<T, D>& opts = {}) {
    auto r = scaled_dot_product_attention_forward(q, k, v, opts);
    Tensor<T, 4, D> out = r.out;
    if (needs_grad(q, k, v)) {
        AttentionOptions<T, D> saved = opts;
        saved.gen = nullptr;  // the backward replays the stream recorded in r
        r.out = r.out.detach();  // the closure must not own the tensor that owns it
        record(
            out, "scaled_dot_product_attention",
            [q, k, v, r, saved](const Tensor<T, 4, D>& g) {
                auto grads = scaled_dot_product_attention_backward(g, q.detach(), k.detach(), v.detach(), r, saved,
                                                                   q.requires_grad(), k.requires_grad(),
                                                                   v.requires_grad());
                accumulate_grad(q, std::move(grads.grad_q));
                accumulate_grad(k, std::move(grads.grad_k));
                accumulate_grad(v, std::move(grads.grad_v));
            },
            q, k, v);
    }
    return out;
}

}  // namespace weft
