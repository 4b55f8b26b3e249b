// weft/ops/dropout.hpp: dropout and stochastic depth (drop path), forward and backward.
//
//   auto y = dropout(x, 0.1, training);                    // zeroes 10% of the elements, scales the rest
//   auto z = dropout(x, 0.1, training, gen);               // from a Generator of your own
//   auto s = dropout(x, 0.1, training, gen, 1);            // x [L, N, C]: the samples are axis 1
//   auto h = drop_path(x, 0.1, training);                  // x [N, ...]: drops whole samples
//   auto t = drop_path(x, 0.1, training, gen, 1);          // x [L, N, C]: the samples are axis 1
//   auto u = drop_path(x, 0.1, training, gen, 1, 0);       // x [N, L, C]: one decision per token
//                                                          //   position, shared by the batch (axis 0)
//   auto f = dropout_forward(x, 0.1, gen);                 // y and the keep mask
//   auto gx = dropout_backward(g, f.mask, 0.1);
//
// Inverted dropout, as torch.nn.functional.dropout: each element is kept with probability
// 1 - p and then scaled by 1 / (1 - p), so the expectation is unchanged and evaluation is the
// identity. `training == false` or p == 0 returns x itself; p == 1 gives zeros.
//
// drop_path is timm's stochastic depth: one keep/drop decision per sample, applied to all of
// that sample's elements, kept samples scaled by 1 / (1 - p). timm works on batch-first
// tensors; `sample_axis` names the batch axis for other layouts (1 for sequence-first
// [L, N, C] transformer activations), so the decisions stay per sample, not per token.
// `batch_axis` (default: the sample axis) is for the rare model whose decisions are not per
// sample (DenseCLIP's ViT draws them per token position of [N, L, C], shared by the batch): it
// only matters under a replica slice, which splits the batch axis, not the decisions' axis.
//
// The decisions come from the counter-based Philox generator (core/philox.hpp): element i is
// kept when the i-th uniform float of the generator's stream is below 1 - p, i.e. the mask is
// exactly `Tensor<float, R>::rand(x.shape(), gen) < 1 - p` taken from the same position of
// the stream. Results are reproducible from the seed on any number of threads, and each call
// advances the generator past the numbers it used. The mask (bool, one byte per element, or
// one per sample) is what the backward saves: g_x = g * mask / (1 - p). On CUDA
// (ops/cuda/dropout.cuh) the same Philox code draws the same numbers: a seed gives bitwise the
// same mask, and the same outputs, on both devices.
//
// Data parallel: when the generator holds a replica slice (Generator::replica of replicas, set
// by ReplicaScope), x is this replica's slice of the global batch along the sample axis (the
// global tensor has replicas·b samples there where x has b, other extents equal). The mask is
// then the part of the global tensor's mask that falls on these samples, and the generator
// advances past the whole global draw, so the replicas together draw exactly what one process
// does on the whole batch. That is why dropout takes a sample axis too: for sequence-first
// [L, N, C] activations the slice is along axis 1, and its elements are L separate runs of the
// global stream. With one replica (the default) the axis changes nothing.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <optional>

#include "../autograd/tape.hpp"
#include "../core/philox.hpp"
#include "../core/tensor.hpp"
#include "../expr.hpp"
#include "cpu/lanes.hpp"
#if WEFT_WITH_CUDA
#include "cuda/dropout.cuh"
#endif

namespace weft {

template <Element T, int R, Device D = Cpu>
struct DropoutForward {
    Tensor<T, R, D> y;
    Tensor<bool, R, D> mask;  // true where the element was kept
};

template <Element T, int R, Device D = Cpu>
struct DropPathForward {
    Tensor<T, R, D> y;
    Tensor<bool, 1, D> keep;  // [samples]: true where the sample was kept
};

namespace detail {

inline void check_drop_probability(const char* op, double p) {
    WEFT_CHECK(p >= 0.0 && p <= 1.0, op, ": drop probability must be in [0, 1], got ", p);
}

// The factor applied to kept elements.
inline double keep_scale(double p) { return p < 1.0 ? 1.0 / (1.0 - p) : 0.0; }

// keep[o·run + t] = (uniform float first + o·stride + t of the stream at `base`) < 1 - p, for
// o in [0, runs) and t in [0, run): the numbers Uniform<float> (and so Tensor<float>::rand)
// draws there, four per Philox block. A replica's part of a global mask is such a set of runs,
// and a run may start and end inside a block.
inline void draw_keep_runs(bool* keep, index_t runs, index_t run, std::uint64_t first, std::uint64_t stride,
                           double p, std::uint64_t key, std::uint64_t base) {
    const double keep_probability = 1.0 - p;
    if (runs <= 0 || run <= 0) return;
    parallel_for(0, runs * run, kParallelGrain, [&](index_t b, index_t e) {
        index_t o = b / run, t = b % run;
        std::uint64_t held = ~std::uint64_t(0);  // the block in `r`: one Philox call per four numbers
        PhiloxBlock r{};
        for (index_t i = b; i < e; ++i) {
            const std::uint64_t g = first + std::uint64_t(o) * stride + std::uint64_t(t);
            if (g / 4 != held) {
                held = g / 4;
                r = philox4x32_10(base + held, 0, key);
            }
            keep[i] = double(random::uniform_float(r.w[g % 4])) < keep_probability;
            if (++t == run) {
                t = 0;
                ++o;
            }
        }
    });
}

// keep[i] = (uniform float first + i of the stream at `base`) < 1 - p, for i in [0, n).
inline void draw_keep_mask(bool* keep, index_t n, double p, std::uint64_t key, std::uint64_t base,
                           std::uint64_t first = 0) {
    draw_keep_runs(keep, 1, n, first, 0, p, key, base);
}

// The keep mask of a dense [outer, n, inner] tensor split around its sample axis, under the
// generator's replica slice: the tensor is slice `replica` of a global
// [outer, n·replicas, inner] one, and local element (o, k, j) takes the decision of global
// element (o, replica·n + k, j), i.e. uniform float (o·n·W + r·n + k)·inner + j. Reserves the
// blocks of the whole global tensor, as the single process does, so every replica's generator
// ends where the single process's does. One replica: the first outer·n·inner floats.
inline void draw_replica_keep_mask(bool* keep, const AxisSplit& split, double p, Generator& gen) {
    WEFT_CHECK(gen.replicas >= 1 && gen.replica < gen.replicas, "random mask: generator replica ", gen.replica, " of ",
               gen.replicas, " replicas is out of range");
    const std::uint64_t run = std::uint64_t(split.n) * std::uint64_t(split.inner);  // one sample slab per outer index
    const std::uint64_t stride = run * gen.replicas;                                // the global slab
    const std::uint64_t base = gen.advance(random::Uniform<float>::blocks(std::uint64_t(split.outer) * stride));
    draw_keep_runs(keep, split.outer, index_t(run), gen.replica * run, stride, p, gen.seed, base);
}

// out = x * (keep ? scale : 0), element-wise over dense arrays.
template <class T>
void apply_mask(const T* X, const bool* keep, T* out, index_t n, double scale) {
    using Acc = compute_t<T>;
    const Acc s = Acc(scale);
    parallel_for(0, n, kParallelGrain, [&](index_t b, index_t e) {
        for (index_t i = b; i < e; ++i) out[i] = convert<T>(keep[i] ? convert<Acc>(X[i]) * s : Acc(0));
    });
}

// out = x * (keep[k] ? scale : 0) for element (o, k, j) of a dense [outer, samples, inner] split.
template <class T>
void apply_sample_mask(const T* X, const bool* keep, T* out, const AxisSplit& sp, double scale) {
    using Acc = compute_t<T>;
    const Acc s = Acc(scale);
    const index_t inner = sp.inner;
    const index_t grain = std::max<index_t>(1, kParallelGrain / std::max<index_t>(inner, 1));
    parallel_for(0, sp.outer * sp.n, grain, [&](index_t b, index_t e) {
        for (index_t seg = b; seg < e; ++seg) {
            const T* x = X + seg * inner;
            T* y = out + seg * inner;
            if (keep[seg % sp.n]) {
                for (index_t j = 0; j < inner; ++j) y[j] = convert<T>(convert<Acc>(x[j]) * s);
            } else {
                std::fill(y, y + inner, T(0));
            }
        }
    });
}

}  // namespace detail

// ---- dropout -------------------------------------------------------------------------------

// Draws the mask and applies it (not recorded on the tape; dropout records). `sample_axis`
// matters only under a replica slice (see above).
template <Element T, int R, Device D>
DropoutForward<T, R, D> dropout_forward(const Tensor<T, R, D>& x, double p, Generator& gen = default_generator(),
                                        int sample_axis = 0) {
    static_assert(FloatingElement<T>, "weft: dropout needs a floating-point tensor");
    detail::check_drop_probability("dropout", p);
    detail::AxisSplit split{1, x.numel(), 1};  // a scalar: one sample of one element
    if constexpr (R >= 1) {
        WEFT_CHECK(sample_axis >= -R && sample_axis < R, "dropout: sample_axis ", sample_axis,
                   " is out of range for input of shape ", x.shape());
        split = detail::split_at_axis(x.shape(), sample_axis);
    } else {
        WEFT_CHECK(gen.replicas == 1, "dropout: a scalar has no samples to split over ", gen.replicas,
                   " replicas");
    }
    DropoutForward<T, R, D> out;
    out.y = Tensor<T, R, D>::empty(x.shape());
    out.mask = Tensor<bool, R, D>::empty(x.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const index_t n = x.numel();
        if (p >= 1.0) {  // everything dropped: no numbers needed
            std::fill(out.mask.data(), out.mask.data() + n, false);
        } else {
            detail::draw_replica_keep_mask(out.mask.data(), split, p, gen);
        }
        const auto xc = x.detach().contiguous();
        detail::apply_mask(xc.data(), out.mask.data(), out.y.data(), n, detail::keep_scale(p));
    } else {
#if WEFT_WITH_CUDA
        // One kernel draws the CPU's mask (ops/cuda/dropout.cuh) and applies it.
        const auto xc = x.detach().contiguous();
        if (p >= 1.0) {
            out.mask = Tensor<bool, R, D>::zeros(x.shape());
            out.y = Tensor<T, R, D>::zeros(x.shape());
        } else {
            cuda::draw_replica_keep_mask(out.mask.data(), split.outer, split.n, split.inner, p, gen, xc.data(),
                                         out.y.data(), detail::keep_scale(p));
        }
#endif
    }
    return out;
}

// The gradient of sum(grad_out * dropout(x)) given the forward's mask: grad_out * mask / (1 - p).
template <Element T, int R, Device D>
Tensor<T, R, D> dropout_backward(const Tensor<T, R, D>& grad_out, const Tensor<bool, R, D>& mask, double p) {
    detail::check_drop_probability("dropout_backward", p);
    WEFT_CHECK(grad_out.shape() == mask.shape(), "dropout_backward: grad_out of shape ", grad_out.shape(),
               " does not match the mask of shape ", mask.shape());
    auto gx = Tensor<T, R, D>::empty(grad_out.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const auto gc = grad_out.detach().contiguous();
        const auto mc = mask.contiguous();
        detail::apply_mask(gc.data(), mc.data(), gx.data(), gx.numel(), detail::keep_scale(p));
    } else {
#if WEFT_WITH_CUDA
        const auto gc = grad_out.detach().contiguous();
        const auto mc = mask.contiguous();
        cuda::apply_mask(gc.data(), mc.data(), gx.data(), gx.numel(), detail::keep_scale(p));
#endif
    }
    return gx;
}

// Zeroes each element with probability p and scales the others by 1 / (1 - p) when training;
// returns x itself when not training or p == 0. `sample_axis` is the batch axis of x, which a
// replica slice splits (0: batch-first).
template <Element T, int R, Device D>
Tensor<T, R, D> dropout(const Tensor<T, R, D>& x, double p, bool training, Generator& gen = default_generator(),
                        int sample_axis = 0) {
    detail::check_drop_probability("dropout", p);
    if (!training || p == 0.0) return x;
    auto f = dropout_forward(x.detach(), p, gen, sample_axis);
    if (needs_grad(x))
        record(
            f.y, "dropout",
            [x, mask = f.mask, p](const Tensor<T, R, D>& g) { accumulate_grad(x, dropout_backward(g, mask, p)); },
            x);
    return f.y;
}

// ---- drop path ------------------------------------------------------------------------------

// Draws one decision per index of `sample_axis` and applies it (not recorded; drop_path records).
// Under a replica slice the decisions are elements [replica·n, replica·n + n) of the global
// batch's replicas·n, and the generator advances past all of them. When `batch_axis` differs
// from `sample_axis` the slice does not cut the decisions: every replica draws all n of them,
// as the single process does.
template <Element T, int R, Device D>
DropPathForward<T, R, D> drop_path_forward(const Tensor<T, R, D>& x, double p, Generator& gen = default_generator(),
                                           int sample_axis = 0, std::optional<int> batch_axis = std::nullopt) {
    static_assert(FloatingElement<T>, "weft: drop_path needs a floating-point tensor");
    static_assert(R >= 1, "weft: drop_path needs a tensor of rank 1 or more (an axis of samples)");
    detail::check_drop_probability("drop_path", p);
    WEFT_CHECK(sample_axis >= -R && sample_axis < R, "drop_path: sample_axis ", sample_axis,
               " is out of range for input of shape ", x.shape());
    WEFT_CHECK(!batch_axis || (*batch_axis >= -R && *batch_axis < R), "drop_path: batch_axis ",
               batch_axis.value_or(0), " is out of range for input of shape ", x.shape());
    const bool sliced =
        !batch_axis || Shape<R>::normalize_axis(*batch_axis) == Shape<R>::normalize_axis(sample_axis);
    const auto split = detail::split_at_axis(x.shape(), sample_axis);
    DropPathForward<T, R, D> out;
    out.y = Tensor<T, R, D>::empty(x.shape());
    out.keep = Tensor<bool, 1, D>::empty({split.n});
    if constexpr (std::same_as<D, Cpu>) {
        if (p >= 1.0) {
            std::fill(out.keep.data(), out.keep.data() + split.n, false);
        } else if (sliced) {
            detail::draw_replica_keep_mask(out.keep.data(), detail::AxisSplit{1, split.n, 1}, p, gen);
        } else {  // decisions shared by the batch: the same n on every replica
            const std::uint64_t base = gen.advance(random::Uniform<float>::blocks(std::uint64_t(split.n)));
            detail::draw_keep_mask(out.keep.data(), split.n, p, gen.seed, base);
        }
        const auto xc = x.detach().contiguous();
        detail::apply_sample_mask(xc.data(), out.keep.data(), out.y.data(), split, detail::keep_scale(p));
    } else {
#if WEFT_WITH_CUDA
        // The decisions drawn on the device as the CPU draws them (ops/cuda/dropout.cuh).
        if (p >= 1.0) {
            out.keep = Tensor<bool, 1, D>::zeros({split.n});
        } else if (sliced) {
            cuda::draw_replica_keep_mask(out.keep.data(), 1, split.n, 1, p, gen);
        } else {  // decisions shared by the batch: the same n on every replica
            const std::uint64_t base = gen.advance(random::Uniform<float>::blocks(std::uint64_t(split.n)));
            cuda::draw_keep_runs(out.keep.data(), 1, split.n, 0, 0, p, gen.seed, base);
        }
        const auto xc = x.detach().contiguous();
        cuda::apply_sample_mask(xc.data(), out.keep.data(), out.y.data(), split.outer, split.n, split.inner,
                                detail::keep_scale(p));
#endif
    }
    return out;
}

// The gradient of sum(grad_out * drop_path(x)) given the forward's per-sample decisions.
template <Element T, int R, Device D>
Tensor<T, R, D> drop_path_backward(const Tensor<T, R, D>& grad_out, const Tensor<bool, 1, D>& keep, double p,
                                   int sample_axis = 0) {
    detail::check_drop_probability("drop_path_backward", p);
    WEFT_CHECK(sample_axis >= -R && sample_axis < R, "drop_path_backward: sample_axis ", sample_axis,
               " is out of range for grad_out of shape ", grad_out.shape());
    const auto split = detail::split_at_axis(grad_out.shape(), sample_axis);
    WEFT_CHECK(keep.size(0) == split.n, "drop_path_backward: ", keep.size(0), " decisions for ", split.n,
               " samples along axis ", sample_axis, " of grad_out of shape ", grad_out.shape());
    auto gx = Tensor<T, R, D>::empty(grad_out.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const auto gc = grad_out.detach().contiguous();
        const auto kc = keep.contiguous();
        detail::apply_sample_mask(gc.data(), kc.data(), gx.data(), split, detail::keep_scale(p));
    } else {
#if WEFT_WITH_CUDA
        const auto gc = grad_out.detach().contiguous();
        const auto kc = keep.contiguous();
        cuda::apply_sample_mask(gc.data(), kc.data(), gx.data(), split.outer, split.n, split.inner,
                                detail::keep_scale(p));
#endif
    }
    return gx;
}

// Drops whole samples (indices along `sample_axis`) with probability p and scales the others
// by 1 / (1 - p) when training; returns x itself when not training or p == 0. `batch_axis`:
// see drop_path_forward.
template <Element T, int R, Device D>
Tensor<T, R, D> drop_path(const Tensor<T, R, D>& x, double p, bool training, Generator& gen = default_generator(),
                          int sample_axis = 0, std::optional<int> batch_axis = std::nullopt) {
    detail::check_drop_probability("drop_path", p);
    if (!training || p == 0.0) return x;
    auto f = drop_path_forward(x.detach(), p, gen, sample_axis, batch_axis);
    if (needs_grad(x))
        record(
            f.y, "drop_path",
            [x, keep = f.keep, p, sample_axis](const Tensor<T, R, D>& g) {
                accumulate_grad(x, drop_path_backward(g, keep, p, sample_axis));
            },
            x);
    return f.y;
}

}  // namespace weft
