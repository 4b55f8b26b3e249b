// weft/nn/embedding.hpp: `Embedding`, a table of vectors looked up by integer index.
//
//   nn::Embedding<float> tok(49408, 512);                   // weight [49408, 512], N(0, 1)
//   auto x = tok(ids);                                      // int64 [B, L] -> [B, L, 512]
//
// As torch.nn.Embedding(num_embeddings, embedding_dim) without padding_idx or max_norm; an
// index outside [0, num_embeddings) is an error naming it.
#pragma once

#include <cstdint>

#include "../ops/embedding.hpp"
#include "init.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class Embedding : public Module<T, D> {
public:
    Tensor<T, 2, D> weight;  // [num_embeddings, embedding_dim]

    Embedding(index_t num_embeddings, index_t embedding_dim, Generator& gen = default_generator()) {
        WEFT_CHECK(num_embeddings >= 0 && embedding_dim >= 0, "Embedding: negative size (", num_embeddings, " x ",
                   embedding_dim, ")");
        weight = Tensor<T, 2, D>::empty({num_embeddings, embedding_dim});
        init::normal_(weight, 0.0, 1.0, gen);
        this->register_parameter("weight", weight);
    }

    template <int R>
    Tensor<T, R + 1, D> forward(const Tensor<std::int64_t, R, D>& indices) const {
        return embedding(indices, weight);
    }
    template <int R>
    Tensor<T, R + 1, D> operator()(const Tensor<std::int64_t, R, D>& indices) const {
        return forward(indices);
    }

    index_t num_embeddings() const { return weight.size(0); }
    index_t embedding_dim() const { return weight.size(1); }
};

}  // namespace weft::nn
