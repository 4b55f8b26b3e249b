// weft/ops/join.hpp: joining tensors along an axis, and cutting one into pieces.
//
//   auto c = cat({a, b}, 1);              // [2, 3] and [2, 5] -> [2, 8]
//   auto s = stack({a, a2}, 0);           // two [2, 3] -> [2, 2, 3]
//   auto parts = split(c, 3, 1);          // [2, 3], [2, 3], [2, 2]: pieces of 3 (the last shorter)
//   auto [p, q] = ... split(c, {5, 3}, 1) // pieces of the listed sizes, which must add up
//   auto halves = chunk(c, 2, 1);         // [2, 4], [2, 4]
//
// As torch.cat / stack / split / chunk. cat and stack copy (in parallel, through the expression
// executor); their backward hands every part its slice of the gradient. split and chunk
// return views made with narrow(), which autograd already follows, so they copy nothing.
// chunk(x, n) makes pieces of ceil(size / n) and may return fewer than n (as PyTorch does).
#pragma once

#include <initializer_list>
#include <memory>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"

namespace weft {

// The gradient of sum(grad_out * cat(parts, axis)) for each part: slices of grad_out (views).
template <Element T, int R, Device D>
std::vector<Tensor<T, R, D>> cat_backward(const Tensor<T, R, D>& grad_out, const std::vector<index_t>& sizes,
                                          int axis) {
    const int a = Shape<R>::normalize_axis(axis);
    index_t total = 0;
    for (index_t s : sizes) total += s;
    WEFT_CHECK(total == grad_out.size(a), "cat_backward: parts of total size ", total, " along axis ", a,
               " do not match grad_out of shape ", grad_out.shape());
    std::vector<Tensor<T, R, D>> grads;
    grads.reserve(sizes.size());
    index_t start = 0;
    for (index_t s : sizes) {
        grads.push_back(grad_out.detach().narrow(a, start, s));
        start += s;
    }
    return grads;
}

// Parts of equal shape outside `axis`, joined along it.
template <Element T, int R, Device D>
Tensor<T, R, D> cat(const std::vector<Tensor<T, R, D>>& parts, int axis) {
    static_assert(R >= 1, "weft: cat joins tensors of rank 1 or more; unsqueeze scalars, or use stack");
    WEFT_CHECK(!parts.empty(), "cat: no tensors to join");
    const int a = Shape<R>::normalize_axis(axis);
    Shape<R> out_shape = parts[0].shape();
    out_shape[a] = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        for (int d = 0; d < R; ++d)
            WEFT_CHECK(d == a || parts[i].size(d) == parts[0].size(d), "cat: part ", i, " of shape ", parts[i].shape(),
                       " does not match part 0 of shape ", parts[0].shape(), " outside axis ", a);
        out_shape[a] += parts[i].size(a);
    }
    auto out = Tensor<T, R, D>::empty(out_shape);
    std::vector<index_t> sizes;
    sizes.reserve(parts.size());
    index_t start = 0;
    for (const auto& p : parts) {
        sizes.push_back(p.size(a));
        if (p.numel() > 0) {
            auto window = out.narrow(a, start, p.size(a));
            assign_expression(window, p.detach());
        }
        start += p.size(a);
    }
    if constexpr (FloatingElement<T>) {
        bool any = false;
        for (const auto& p : parts) any = any || needs_grad(p);
        if (any) {
            std::vector<std::shared_ptr<autograd::Node>> inputs;
            for (const auto& p : parts) autograd::detail::push_input(inputs, p);
            record_with_inputs(
                out, "cat",
                [parts, sizes, a](const Tensor<T, R, D>& g) {
                    const auto grads = cat_backward(g, sizes, a);
                    for (std::size_t i = 0; i < parts.size(); ++i) accumulate_grad(parts[i], grads[i]);
                },
                std::move(inputs));
        }
    }
    return out;
}

template <Element T, int R, Device D>
Tensor<T, R, D> cat(std::initializer_list<Tensor<T, R, D>> parts, int axis) {
    return cat(std::vector<Tensor<T, R, D>>(parts), axis);
}

// Parts of one shape joined along a new axis: rank R -> R + 1 (axis in [-(R + 1), R]).
template <Element T, int R, Device D>
Tensor<T, R + 1, D> stack(const std::vector<Tensor<T, R, D>>& parts, int axis) {
    WEFT_CHECK(!parts.empty(), "stack: no tensors to join");
    const int a = Shape<R + 1>::normalize_axis(axis);
    std::vector<Tensor<T, R + 1, D>> lifted;
    lifted.reserve(parts.size());
    for (std::size_t i = 0; i < parts.size(); ++i) {
        WEFT_CHECK(parts[i].shape() == parts[0].shape(), "stack: part ", i, " of shape ", parts[i].shape(),
                   " differs from part 0 of shape ", parts[0].shape());
        lifted.push_back(parts[i].unsqueeze(a));  // a view; autograd follows it back
    }
    return cat(lifted, a);
}

template <Element T, int R, Device D>
Tensor<T, R + 1, D> stack(std::initializer_list<Tensor<T, R, D>> parts, int axis) {
    return stack(std::vector<Tensor<T, R, D>>(parts), axis);
}

// Views of consecutive pieces of the listed sizes along axis (they must add up to its extent).
template <Element T, int R, Device D>
std::vector<Tensor<T, R, D>> split(const Tensor<T, R, D>& x, const std::vector<index_t>& sizes, int axis) {
    static_assert(R >= 1, "weft: split needs a tensor of rank 1 or more");
    const int a = Shape<R>::normalize_axis(axis);
    index_t total = 0;
    for (index_t s : sizes) {
        WEFT_CHECK(s >= 0, "split: negative piece size ", s);
        total += s;
    }
    WEFT_CHECK(total == x.size(a), "split: piece sizes adding up to ", total, " do not cover axis ", a,
               " of shape ", x.shape());
    std::vector<Tensor<T, R, D>> out;
    out.reserve(sizes.size());
    index_t start = 0;
    for (index_t s : sizes) {
        out.push_back(x.narrow(a, start, s));
        start += s;
    }
    return out;
}

// Views of pieces of `size` along axis; the last one is shorter when size does not divide it.
template <Element T, int R, Device D>
std::vector<Tensor<T, R, D>> split(const Tensor<T, R, D>& x, index_t size, int axis) {
    static_assert(R >= 1, "weft: split needs a tensor of rank 1 or more");
    const int a = Shape<R>::normalize_axis(axis);
    const index_t n = x.size(a);
    WEFT_CHECK(size > 0 || n == 0, "split: piece size must be positive, got ", size);
    std::vector<index_t> sizes;
    for (index_t start = 0; start < n; start += size) sizes.push_back(std::min(size, n - start));
    if (sizes.empty()) sizes.push_back(0);  // torch.split of an empty axis: one empty piece
    return split(x, sizes, a);
}

// At most n views of ceil(size / n) along axis (torch.chunk).
template <Element T, int R, Device D>
std::vector<Tensor<T, R, D>> chunk(const Tensor<T, R, D>& x, index_t n, int axis) {
    static_assert(R >= 1, "weft: chunk needs a tensor of rank 1 or more");
    WEFT_CHECK(n > 0, "chunk: the number of chunks must be positive, got ", n);
    const int a = Shape<R>::normalize_axis(axis);
    const index_t extent = x.size(a);
    return split(x, extent == 0 ? index_t(1) : (extent + n - 1) / n, a);
}

}  // namespace weft
