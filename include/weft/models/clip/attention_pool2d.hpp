// weft/models/clip/attention_pool2d.hpp: the attention pooling that ends CLIP's modified ResNet.
//
//   clip::AttentionPool2d<float> pool(7, 2048, 32, 1024);     // RN50 at 224: 7×7 grid, 32 heads
//   auto v = pool(features);                                  // [N, 2048, 7, 7] -> [N, 1024]
//   auto [global, local] = pool.forward_dense(features);      // [N, 1024], [N, 1024, H, W]
//
// The H·W feature vectors become tokens, with their mean prepended; a positional embedding
// ([1 + g·g, C]: the mean token's row, then the grid) is added and multi-head attention with
// separate q/k/v projections runs over them; c_proj maps the result to the output width.
//
// forward() is CLIP's: only the mean token asks (one query), and the input must match the grid.
// forward_dense() is DenseCLIP's (spec §2.1): every token is a query, so each position gets its
// own embedding in the joint space, and the grid is resized bilinearly to the runtime H×W, so any
// input size works. Both are batch-first inside; the numbers are those of OpenAI's
// sequence-first code.
#pragma once

#include "../../expr.hpp"
#include "../../nn/linear.hpp"
#include "../../nn/init.hpp"
#include "../../nn/module.hpp"
#include "../../ops/attention.hpp"
#include "../../ops/matmul.hpp"
#include "positional_embedding.hpp"

namespace weft::clip {

template <Element T = float, Device D = Cpu>
struct DenseAttentionPoolOutput {
    Tensor<T, 2, D> global;  // [N, out]: the mean token's output
    Tensor<T, 4, D> local;   // [N, out, H, W]: every position's output
};

template <Element T = float, Device D = Cpu>
class AttentionPool2d : public nn::Module<T, D> {
public:
    Tensor<T, 2, D> positional_embedding;  // [1 + g·g, C]
    nn::Linear<T, D> k_proj, q_proj, v_proj, c_proj;

    // grid: g, the side of the feature map the embedding is made for (input resolution / 32).
    AttentionPool2d(index_t grid, index_t embed_dim, index_t heads, index_t output_dim,
                    Generator& gen = default_generator())
        : k_proj(embed_dim, embed_dim, true, gen),
          q_proj(embed_dim, embed_dim, true, gen),
          v_proj(embed_dim, embed_dim, true, gen),
          c_proj(embed_dim, output_dim, true, gen),
          heads_(heads) {
        WEFT_CHECK(grid > 0 && heads > 0 && embed_dim % heads == 0, "clip::AttentionPool2d: embed_dim ", embed_dim,
                   " must be a multiple of heads ", heads, " and the grid ", grid, " positive");
        positional_embedding = Tensor<T, 2, D>::empty({grid * grid + 1, embed_dim});
        nn::init::normal_(positional_embedding, 0.0, 1.0 / std::sqrt(double(embed_dim)), gen);  // CLIP: randn / √C
        this->register_parameter("positional_embedding", positional_embedding);
        this->register_module("k_proj", k_proj);
        this->register_module("q_proj", q_proj);
        this->register_module("v_proj", v_proj);
        this->register_module("c_proj", c_proj);
    }

    // CLIP's pooling: x [N, C, g, g] -> [N, out].
    Tensor<T, 2, D> forward(const Tensor<T, 4, D>& x) const {
        const index_t g = grid();
        WEFT_CHECK(x.size(2) == g && x.size(3) == g, "clip::AttentionPool2d: features of shape ", x.shape(),
                   " do not match the ", g, "×", g,
                   " positional grid (the input resolution the model was built for); forward_dense takes any size");
        const auto tokens = embed(x, positional_embedding);                            // [N, 1 + HW, C]
        const auto out = attend(tokens.narrow(1, 0, 1), tokens);                       // [N, 1, out]
        return out.reshape(x.size(0), c_proj.out_features());
    }
    Tensor<T, 2, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

    // DenseCLIP's pooling: x [N, C, H, W], any H and W.
    DenseAttentionPoolOutput<T, D> forward_dense(const Tensor<T, 4, D>& x) const {
        const index_t N = x.size(0), H = x.size(2), W = x.size(3), out = c_proj.out_features();
        const auto pos = resize_positional_embedding(positional_embedding, {H, W});  // [1 + HW, C]
        const auto tokens = embed(x, pos);                                            // [N, 1 + HW, C]
        const auto y = attend(tokens, tokens);                                        // [N, 1 + HW, out]
        DenseAttentionPoolOutput<T, D> r;
        r.global = y.select(1, 0);                                                             // [N, out]
        r.local = y.narrow(1, 1, H * W).permute(0, 2, 1).contiguous().reshape(N, out, H, W);  // [N, out, H, W]
        return r;
    }

    index_t grid() const { return positional_grid_side(positional_embedding, "AttentionPool2d.positional_embedding"); }
    index_t heads() const { return heads_; }

private:
    // [N, C, H, W] -> [N, 1 + HW, C]: the mean token, then the positions, plus `pos`.
    Tensor<T, 3, D> embed(const Tensor<T, 4, D>& x, const Tensor<T, 2, D>& pos) const {
        const index_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
        WEFT_CHECK(C == positional_embedding.size(1), "clip::AttentionPool2d: features of shape ", x.shape(), " have ",
                   C, " channels, expected ", positional_embedding.size(1));
        const auto flat = x.reshape(N, C, HW).permute(0, 2, 1);                          // [N, HW, C]
        const Tensor<T, 3, D> mean_token = mean(flat, {1}, keepdim);                     // [N, 1, C]
        const auto tokens = cat({mean_token, Tensor<T, 3, D>(flat)}, 1);                 // [N, 1 + HW, C]
        return eval(tokens + pos.unsqueeze(0));
    }

    // Queries q [N, L, C] attend over kv [N, S, C]; returns [N, L, out].
    Tensor<T, 3, D> attend(const Tensor<T, 3, D>& q_in, const Tensor<T, 3, D>& kv) const {
        const index_t N = kv.size(0), L = q_in.size(1), S = kv.size(1), C = kv.size(2), H = heads_, hd = C / H;
        auto split = [&](const Tensor<T, 3, D>& t, index_t len) {  // [N, len, C] -> [N, H, len, hd]
            return t.reshape(N, len, H, hd).permute(0, 2, 1, 3);
        };
        const auto q = split(q_proj(q_in), L);
        const auto k = split(k_proj(kv), S);
        const auto v = split(v_proj(kv), S);
        const auto o = scaled_dot_product_attention(q, k, v);      // [N, H, L, hd]
        return c_proj(o.permute(0, 2, 1, 3).reshape(N, L, C));    // [N, L, out]
    }

    index_t heads_;
};

}  // namespace weft::clip
