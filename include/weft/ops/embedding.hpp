// weft/ops/embedding.hpp: rows of a table picked by integer indices (token embeddings).
//
//   auto ids = Tensor<std::int64_t, 2>::from({{3, 1, 3}});   // [B, L]
//   auto table = Tensor<float, 2>::randn({10, 8});          // [V, E]
//   auto x = embedding(ids, table);                         // [B, L, E]
//   auto gw = embedding_backward(g, ids, 10);               // [V, E]: rows of g added up
//
// As torch.nn.functional.embedding without padding_idx or max_norm: an index outside [0, V)
// (negative ones included) is an error naming the index and the table's size. The backward
// adds the gradient of every position into the row it read; repeated indices sum. It is a
// dense [V, E] gradient (PyTorch's sparse=False), computed row by row so that no two threads
// write the same row (ops/cpu/index_rows.hpp). On CUDA (ops/cuda/embedding.cuh) a stable sort
// groups the positions by row first, so the gradient is as deterministic as the CPU's.
#pragma once

#include <concepts>
#include <cstdint>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "cpu/index_rows.hpp"
#if WEFT_WITH_CUDA
#include "cuda/embedding.cuh"
#include "cuda/index_check.cuh"
#endif

namespace weft {

namespace detail {

// ids dense. On CUDA the first bad position is found on the device (ops/cuda/index_check.cuh).
template <int R, Device D>
void check_embedding_indices(const Tensor<std::int64_t, R, D>& ids, index_t rows, const char* op) {
    if constexpr (std::same_as<D, Cpu>) {
        const std::int64_t* p = ids.data();
        for (index_t j = 0; j < ids.numel(); ++j)
            WEFT_CHECK(p[j] >= 0 && p[j] < rows, op, ": index ", p[j], " (at flat position ", j,
                       ") is out of range for an embedding table of ", rows, " rows");
    } else {
#if WEFT_WITH_CUDA
        const index_t j = cuda::first_bad_index(ids.data(), ids.numel(), rows);
        if (j >= 0)
            WEFT_FAIL(op, ": index ", cuda::index_at(ids.data(), j), " (at flat position ", j,
                      ") is out of range for an embedding table of ", rows, " rows");
#endif
    }
}

}  // namespace detail

// The gradient of sum(grad_out * embedding(indices, weight)) with respect to weight [rows, E].
template <Element T, int R, Device D>
Tensor<T, 2, D> embedding_backward(const Tensor<T, R + 1, D>& grad_out, const Tensor<std::int64_t, R, D>& indices,
                                   index_t rows) {
    for (int d = 0; d < R; ++d)
        WEFT_CHECK(grad_out.size(d) == indices.size(d), "embedding_backward: grad_out of shape ", grad_out.shape(),
                   " does not match indices of shape ", indices.shape(), " (expected [indices..., E])");
    const auto ids = indices.contiguous();
    detail::check_embedding_indices(ids, rows, "embedding_backward");
    const index_t dim = grad_out.size(R);
    const auto g = grad_out.detach().contiguous();
    auto grad_w = Tensor<T, 2, D>::empty({rows, dim});
    if constexpr (std::same_as<D, Cpu>) {
        detail::index_rows_backward(grad_w.data(), g.data(), 1, rows, dim, ids.data(), ids.numel());
    } else {
#if WEFT_WITH_CUDA
        cuda::embedding_backward(grad_w.data(), g.data(), rows, dim, ids.data(), ids.numel());
#endif
    }
    return grad_w;
}

// [...] int64 indices into a [V, E] table -> [..., E]
template <Element T, int R, Device D>
Tensor<T, R + 1, D> embedding(const Tensor<std::int64_t, R, D>& indices, const Tensor<T, 2, D>& weight) {
    const index_t rows = weight.size(0), dim = weight.size(1);
    const auto ids = indices.contiguous();
    detail::check_embedding_indices(ids, rows, "embedding");
    Shape<R + 1> os;
    for (int d = 0; d < R; ++d) os[d] = indices.size(d);
    os[R] = dim;  // [..., E]
    auto out = Tensor<T, R + 1, D>::empty(os);
    const auto w = weight.detach().contiguous();
    if constexpr (std::same_as<D, Cpu>) {
        detail::index_rows_forward(out.data(), w.data(), 1, rows, dim, ids.data(), ids.numel());
    } else {
#if WEFT_WITH_CUDA
        cuda::embedding_forward(out.data(), w.data(), rows, dim, ids.data(), ids.numel());
#endif
    }
    if constexpr (FloatingElement<T>) {
        if (needs_grad(weight))
            record(
                out, "embedding",
                [ids, weight, rows](const Tensor<T, R + 1, D>& g) {
                    accumulate_grad(weight, embedding_backward<T, R, D>(g, ids, rows));
                },
                weight);
    }
    return out;
}

}  // namespace weft
