// weft/nn/multihead_attention.hpp: `MultiheadAttention`, torch.nn.MultiheadAttention's layer.
//
//   nn::MultiheadAttention<float> attn(512, 8);              // or (512, 8, {.dropout = 0.1})
//   auto y = attn(x, x, x).output;                           // self-attention, x [L, N, 512]
//   auto [out, w] = attn(q, mem, mem, pad, {}, true);        // w [N, L, S], averaged over heads
//
// Parameters and names are PyTorch's, so its checkpoints load by name: in_proj_weight [3E, E]
// (query, key and value projections stacked) and in_proj_bias [3E], out_proj.weight [E, E] and
// out_proj.bias [E]. When the keys or values have another width (kdim / vdim), the three
// projections are q_proj_weight [E, E], k_proj_weight [E, kdim] and v_proj_weight [E, vdim]
// instead of in_proj_weight, as in PyTorch. Initialised as PyTorch does: in_proj weights
// xavier_uniform_, in-projection and out_proj biases zero, out_proj.weight as a Linear.
//
// Inputs are sequence-first, [L, N, E] queries and [S, N, E] keys and values (PyTorch's default
// batch_first=False); options.batch_first takes [N, L, E]. Masks:
//   key_padding_mask [N, S] bool, true = this key is padding and gets no attention;
//   attn_mask [L, S] additive (0 / -inf, or any finite bias), shared by batches and heads.
// (A boolean attn_mask converts with where(mask, -inf, 0).) A query whose every key is masked
// gets zeros, not PyTorch's NaN.
//
// The attention itself is ops/attention.hpp's fused kernel, which never forms the [L, S]
// weights. need_weights = true computes them as well, with a separate product, averaged over
// heads ([N, L, S], as average_attn_weights=True); they are the weights before dropout.
// Self-attention (query, key and value the same tensor) projects with one [3E, E] product, and
// key == value with one [2E, E] product. Dropout on the attention weights uses the generator
// set with set_generator (default: the process-wide one), only in training mode. PyTorch's
// add_bias_kv and add_zero_attn are not offered.
#pragma once

#include <cmath>
#include <limits>
#include <optional>

#include "../expr.hpp"
#include "../ops/attention.hpp"
#include "../ops/matmul.hpp"
#include "../ops/softmax.hpp"
#include "init.hpp"
#include "linear.hpp"
#include "module.hpp"

namespace weft::nn {

struct MultiheadAttentionOptions {
    double dropout = 0.0;                        // on the attention weights, in training mode
    bool bias = true;                            // in_proj_bias and out_proj.bias
    std::optional<index_t> kdim = std::nullopt;  // width of the keys (default: embed_dim)
    std::optional<index_t> vdim = std::nullopt;  // width of the values (default: embed_dim)
    bool batch_first = false;                    // [N, L, E] instead of [L, N, E]
};

template <Element T = float, Device D = Cpu>
struct MultiheadAttentionOutput {
    Tensor<T, 3, D> output;   // [L, N, E] ([N, L, E] with batch_first)
    Tensor<T, 3, D> weights;  // [N, L, S] averaged over heads; undefined unless need_weights
};

template <Element T = float, Device D = Cpu>
class MultiheadAttention : public Module<T, D> {
public:
    Tensor<T, 2, D> in_proj_weight;  // [3E, E]; undefined when kdim or vdim differ from E
    Tensor<T, 2, D> q_proj_weight;   // [E, E]    } only when kdim or vdim
    Tensor<T, 2, D> k_proj_weight;   // [E, kdim] } differ from E
    Tensor<T, 2, D> v_proj_weight;   // [E, vdim] }
    Tensor<T, 1, D> in_proj_bias;    // [3E]; undefined without bias
    Linear<T, D> out_proj;           // [E] -> [E]

    MultiheadAttention(index_t embed_dim, index_t num_heads, const MultiheadAttentionOptions& options = {},
                       Generator& gen = default_generator())
        : out_proj(embed_dim, embed_dim, options.bias, gen),
          embed_dim_(embed_dim),
          num_heads_(num_heads),
          kdim_(options.kdim.value_or(embed_dim)),
          vdim_(options.vdim.value_or(embed_dim)),
          dropout_(options.dropout),
          batch_first_(options.batch_first) {
        WEFT_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0, "MultiheadAttention: embed_dim ",
                   embed_dim, " must be a positive multiple of num_heads ", num_heads);
        WEFT_CHECK(options.dropout >= 0 && options.dropout <= 1, "MultiheadAttention: dropout ", options.dropout,
                   " is outside [0, 1]");
        const index_t E = embed_dim;
        if (packed()) {
            in_proj_weight = Tensor<T, 2, D>::empty({3 * E, E});
            init::xavier_uniform_(in_proj_weight, 1.0, gen);
            this->register_parameter("in_proj_weight", in_proj_weight);
        } else {
            q_proj_weight = Tensor<T, 2, D>::empty({E, E});
            k_proj_weight = Tensor<T, 2, D>::empty({E, kdim_});
            v_proj_weight = Tensor<T, 2, D>::empty({E, vdim_});
            init::xavier_uniform_(q_proj_weight, 1.0, gen);
            init::xavier_uniform_(k_proj_weight, 1.0, gen);
            init::xavier_uniform_(v_proj_weight, 1.0, gen);
            this->register_parameter("q_proj_weight", q_proj_weight);
            this->register_parameter("k_proj_weight", k_proj_weight);
            this->register_parameter("v_proj_weight", v_proj_weight);
        }
        if (options.bias) {
            in_proj_bias = Tensor<T, 1, D>::zeros({3 * E});
            this->register_parameter("in_proj_bias", in_proj_bias);
            init::zeros_(out_proj.bias);
        }
        this->register_module("out_proj", out_proj);
    }

    MultiheadAttentionOutput<T, D> forward(const Tensor<T, 3, D>& query, const Tensor<T, 3, D>& key,
                                           const Tensor<T, 3, D>& value,
                                           const Tensor<bool, 2, D>& key_padding_mask = {},
                                           const Tensor<T, 2, D>& attn_mask = {}, bool need_weights = false) const {
        const int bax = batch_first_ ? 0 : 1, sax = batch_first_ ? 1 : 0;  // batch and sequence axes
        const index_t E = embed_dim_, N = query.size(bax), L = query.size(sax), S = key.size(sax);
        WEFT_CHECK(query.size(2) == E, "MultiheadAttention: query of shape ", query.shape(), " has width ",
                   query.size(2), ", expected embed_dim ", E, layout_hint());
        WEFT_CHECK(key.size(2) == kdim_ && value.size(2) == vdim_, "MultiheadAttention: key of shape ", key.shape(),
                   " and value of shape ", value.shape(), " need widths ", kdim_, " and ", vdim_, layout_hint());
        WEFT_CHECK(key.size(bax) == N && value.size(bax) == N && value.size(sax) == S,
                   "MultiheadAttention: query ", query.shape(), ", key ", key.shape(), " and value ", value.shape(),
                   " disagree on the batch or the key count", layout_hint());

        Tensor<T, 4, D> q, k, v;  // [N, H, L or S, head_dim]
        if (packed() && same_tensor(query, key) && same_tensor(key, value)) {
            auto qkv = linear(query, in_proj_weight, in_proj_bias);  // [L, N, 3E]: one product
            q = heads(qkv.narrow(2, 0, E));
            k = heads(qkv.narrow(2, E, E));
            v = heads(qkv.narrow(2, 2 * E, E));
        } else if (packed() && same_tensor(key, value)) {
            q = heads(linear(query, proj_weight(0), proj_bias(0)));
            auto kv = linear(key, in_proj_weight.narrow(0, E, 2 * E),  // [S, N, 2E]: one product
                             in_proj_bias.defined() ? in_proj_bias.narrow(0, E, 2 * E) : Tensor<T, 1, D>{});
            k = heads(kv.narrow(2, 0, E));
            v = heads(kv.narrow(2, E, E));
        } else {
            q = heads(linear(query, proj_weight(0), proj_bias(0)));
            k = heads(linear(key, proj_weight(1), proj_bias(1)));
            v = heads(linear(value, proj_weight(2), proj_bias(2)));
        }

        AttentionOptions<T, D> opts;
        if (attn_mask.defined()) opts.attn_mask = attn_mask.detach();
        if (key_padding_mask.defined()) opts.key_padding_mask = key_padding_mask;
        opts.dropout = this->is_training() ? dropout_ : 0.0;
        opts.gen = gen_;
        const auto o = scaled_dot_product_attention(q, k, v, opts);  // [N, H, L, hd]
        const auto merged = batch_first_ ? o.permute(0, 2, 1, 3).reshape(N, L, E)   // [N, L, E]
                                         : o.permute(2, 0, 1, 3).reshape(L, N, E);  // [L, N, E]
        MultiheadAttentionOutput<T, D> result{out_proj(merged), {}};
        if (need_weights) result.weights = average_weights(q, k, key_padding_mask, attn_mask);
        return result;
    }

    MultiheadAttentionOutput<T, D> operator()(const Tensor<T, 3, D>& query, const Tensor<T, 3, D>& key,
                                              const Tensor<T, 3, D>& value,
                                              const Tensor<bool, 2, D>& key_padding_mask = {},
                                              const Tensor<T, 2, D>& attn_mask = {}, bool need_weights = false) const {
        return forward(query, key, value, key_padding_mask, attn_mask, need_weights);
    }

    index_t embed_dim() const { return embed_dim_; }
    index_t num_heads() const { return num_heads_; }
    index_t head_dim() const { return embed_dim_ / num_heads_; }
    double dropout() const { return dropout_; }
    bool batch_first() const { return batch_first_; }
    // The generator of the attention dropout (must outlive its use).
    void set_generator(Generator& gen) { gen_ = &gen; }

private:
    bool packed() const { return kdim_ == embed_dim_ && vdim_ == embed_dim_; }

    const char* layout_hint() const {
        return batch_first_ ? " (inputs are batch-first, [N, L, E])"
                            : " (inputs are sequence-first, [L, N, E]; batch_first takes [N, L, E])";
    }

    // The same tensor as PyTorch's `query is key`: same elements and the same autograd history.
    static bool same_tensor(const Tensor<T, 3, D>& a, const Tensor<T, 3, D>& b) {
        return a.data() == b.data() && a.shape() == b.shape() && a.strides() == b.strides() &&
               a.grad_slot() == b.grad_slot();
    }

    // Projection i (0 query, 1 key, 2 value): a row block of in_proj_weight, or its own weight.
    Tensor<T, 2, D> proj_weight(int i) const {
        if (packed()) return in_proj_weight.narrow(0, i * embed_dim_, embed_dim_);
        return i == 0 ? q_proj_weight : i == 1 ? k_proj_weight : v_proj_weight;
    }
    Tensor<T, 1, D> proj_bias(int i) const {
        if (!in_proj_bias.defined()) return {};
        return in_proj_bias.narrow(0, i * embed_dim_, embed_dim_);
    }

    // [L, N, E] (or [N, L, E]) -> [N, H, L, head_dim], a view.
    Tensor<T, 4, D> heads(const Tensor<T, 3, D>& x) const {
        const index_t H = num_heads_, hd = head_dim();
        if (batch_first_) return x.reshape(x.size(0), x.size(1), H, hd).permute(0, 2, 1, 3);
        return x.reshape(x.size(0), x.size(1), H, hd).permute(1, 2, 0, 3);
    }

    // softmax(q·kᵀ·scale + masks) averaged over heads: [N, L, S].
    Tensor<T, 3, D> average_weights(const Tensor<T, 4, D>& q, const Tensor<T, 4, D>& k,
                                    const Tensor<bool, 2, D>& key_padding_mask,
                                    const Tensor<T, 2, D>& attn_mask) const {
        const index_t N = q.size(0), H = q.size(1), L = q.size(2), S = k.size(2), hd = q.size(3);
        const auto scores3 = bmm(q.reshape(N * H, L, hd), k.reshape(N * H, S, hd).transpose(1, 2));  // [NH, L, S]
        Tensor<T, 4, D> scores = scores3.view(N, H, L, S) * (1.0 / std::sqrt(double(hd)));
        if (attn_mask.defined()) scores = eval(scores + attn_mask.detach());
        if (key_padding_mask.defined())
            scores = eval(where(key_padding_mask.view(N, 1, 1, S), -std::numeric_limits<double>::infinity(), scores));
        // Rows with every key masked give zeros (softmax of a row of -inf would be NaN).
        const Tensor<bool, 4, D> dead = max(scores.detach(), {-1}, keepdim) == -std::numeric_limits<double>::infinity();
        const Tensor<T, 4, D> safe = where(dead, 0.0, scores);
        const auto p = softmax(safe, -1);
        const Tensor<T, 4, D> kept = where(dead, 0.0, p);
        return mean(kept, {1});  // [N, L, S]
    }

    index_t embed_dim_, num_heads_, kdim_, vdim_;
    double dropout_;
    bool batch_first_;
    Generator* gen_ = &default_generator();
};

}  // namespace weft::nn
