// weft/ops/cross_entropy.hpp: softmax cross-entropy over the class axis, fused and stable.
//
//   auto logits = Tensor<float, 4>::randn({2, 150, 64, 64});          // [N, C, H, W]
//   auto labels = Tensor<std::int64_t, 3>::randint(0, 150, {2, 64, 64}); // [N, H, W]
//   CrossEntropyOptions<float> opt;
//   opt.ignore_index = 255;
//   auto loss = cross_entropy(logits, labels, opt);                   // rank 0
//   auto map = cross_entropy_per_element(logits, labels, opt);        // [N, H, W]
//
// Logits have any rank >= 2 with classes on axis 1 ([N, C] or [N, C, d1, ...]); the target
// holds class indices with axis 1 dropped. For position i with target t, log-sum-exp lse_i,
// class weights w (all 1 when options.weight is undefined, W = their sum) and smoothing e:
//
//   l_i = (1 - e) * w[t] * (lse_i - x_it) + e / C * sum_c w_c * (lse_i - x_ic)
//
// and l_i = 0 where t == ignore_index: torch.nn.functional.cross_entropy with reduction='none'.
// The reductions:
//   Reduction::mean      sum(l) / sum of w[t] over non-ignored positions: PyTorch's default
//                        (NaN when every position is ignored, as in PyTorch);
//   Reduction::mean_all  sum(l) / number of positions, ignored ones included: mmseg 0.19's
//                        CrossEntropyLoss (F.cross_entropy(reduction='none') then .mean();
//                        see docs/ops-indexing.md);
//   Reduction::sum       sum(l).
// A target outside [0, C) that is not ignore_index is an error naming the value and C.
//
// One pass per block of positions computes max, sum of exponentials and the target logit; no
// softmax is stored. The backward keeps only lse (one value per position) and recomputes
// p = exp(x - lse) on the fly: dl_i/dx_ic = ((1 - e) w[t] + e W / C) p_ic - (1 - e) w[t] [c == t]
// - e / C * w_c, scaled by the incoming gradient. Positions are processed in fixed blocks whose
// partial sums are added in order, so the loss has the same bits for any number of threads.
// The class weights take no gradient (as in PyTorch). On CUDA (ops/cuda/cross_entropy.cuh) the
// same plan runs as kernels: fixed tiles of positions, their sums added in order on the device,
// the reduced loss and the backward's scale never leaving the GPU.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"
#include "../expr.hpp"
#if WEFT_WITH_CUDA
#include "cuda/cross_entropy.cuh"
#include "cuda/index_check.cuh"
#endif

namespace weft {

enum class Reduction { mean, mean_all, sum };

template <Element T, Device D = Cpu>
struct CrossEntropyOptions {
    std::int64_t ignore_index = -100;
    Tensor<T, 1, D> weight;  // [C] class weights, or undefined for none
    Reduction reduction = Reduction::mean;
    double label_smoothing = 0;
};

namespace detail {

// The problem as dense arrays: x [N, C, S] (S = product of the extents after the class axis),
// target and lse [N * S], weight [C] or null.
template <class T>
struct CrossEntropyArrays {
    const T* x = nullptr;
    const std::int64_t* target = nullptr;
    const T* weight = nullptr;
    index_t n = 0, c = 0, s = 1;
    std::int64_t ignore_index = -100;
    double smoothing = 0;
    double weight_total = 0;  // W: the sum of the class weights (C without weights)

    // Positions in blocks of at most `block`, never crossing a sample when S > 1 (then a block
    // runs along S and its classes lie S apart); with S == 1 a block is a run of rows.
    static constexpr index_t block = 64;
    index_t blocks_per_sample() const { return (s + block - 1) / block; }
    index_t blocks() const { return s == 1 ? (n + block - 1) / block : n * blocks_per_sample(); }
    // First position, count, and the strides between positions and between classes.
    void block_at(index_t b, index_t& p0, index_t& count, index_t& pstride, index_t& cstride) const {
        if (s == 1) {
            p0 = b * block;
            count = std::min(block, n - p0);
            pstride = c;
            cstride = 1;
        } else {
            const index_t sample = b / blocks_per_sample(), s0 = (b % blocks_per_sample()) * block;
            p0 = sample * s + s0;
            count = std::min(block, s - s0);
            pstride = 1;
            cstride = s;
        }
    }
    // x's element for (position p, class 0).
    const T* row(index_t p) const { return s == 1 ? x + p * c : x + (p / s) * c * s + p % s; }
    T* row(T* base, index_t p) const { return s == 1 ? base + p * c : base + (p / s) * c * s + p % s; }

    std::int64_t checked_target(index_t p, const char* op) const {
        const std::int64_t t = target[p];
        WEFT_CHECK(t == ignore_index || (t >= 0 && t < c), op, ": target value ", t, " (at flat position ", p,
                   ") is outside [0, ", c, ") for ", c, " classes and is not ignore_index (", ignore_index, ")");
        return t;
    }
};

// What the forward leaves for the reduction and the backward.
template <class T, Device D>
struct CrossEntropyForward {
    Tensor<compute_t<T>, 1, D> lse;  // [N * S]
    double loss_sum = 0;             // sum of l_i
    double weight_sum = 0;           // sum of w[t_i] over non-ignored positions
    index_t positions = 0;
};

// The logits of a block as m (max), se (sum of exp(x - m)), sx (sum of w_c x_c; only with
// smoothing), for positions j < count.
template <class T, class C>
void block_statistics(const CrossEntropyArrays<T>& a, const T* xb, index_t count, index_t pstride, index_t cstride,
                      C* m, C* se, C* sx) {
    const bool smooth = a.smoothing > 0;
    if (cstride == 1) {  // rows: classes contiguous
        for (index_t j = 0; j < count; ++j) {
            const T* r = xb + j * pstride;
            C mx = -std::numeric_limits<C>::infinity();
            for (index_t k = 0; k < a.c; ++k) mx = std::max(mx, convert<C>(r[k]));
            C sum = 0, wx = 0;
            for (index_t k = 0; k < a.c; ++k) sum += std::exp(convert<C>(r[k]) - mx);
            if (smooth) {
                if (a.weight)
                    for (index_t k = 0; k < a.c; ++k) wx += convert<C>(a.weight[k]) * convert<C>(r[k]);
                else
                    for (index_t k = 0; k < a.c; ++k) wx += convert<C>(r[k]);
            }
            m[j] = mx;
            se[j] = sum;
            sx[j] = wx;
        }
        return;
    }
    // Classes lie cstride apart, positions next to each other: loop classes outside and
    // positions inside, which the compiler vectorises.
    for (index_t j = 0; j < count; ++j) {
        m[j] = -std::numeric_limits<C>::infinity();
        se[j] = 0;
        sx[j] = 0;
    }
    for (index_t k = 0; k < a.c; ++k) {
        const T* xk = xb + k * cstride;
        for (index_t j = 0; j < count; ++j) m[j] = std::max(m[j], convert<C>(xk[j]));
    }
    for (index_t k = 0; k < a.c; ++k) {
        const T* xk = xb + k * cstride;
        for (index_t j = 0; j < count; ++j) se[j] += std::exp(convert<C>(xk[j]) - m[j]);
        if (smooth) {
            const C wk = a.weight ? convert<C>(a.weight[k]) : C(1);
            for (index_t j = 0; j < count; ++j) sx[j] += wk * convert<C>(xk[j]);
        }
    }
}

// Forward over all positions: lse always, per-position losses into `losses` when not null.
template <class T, Device D>
CrossEntropyForward<T, D> cross_entropy_forward(const CrossEntropyArrays<T>& a, T* losses, const char* op) {
    using C = compute_t<T>;
    CrossEntropyForward<T, D> f;
    f.positions = a.n * a.s;
    f.lse = Tensor<C, 1, D>::empty({f.positions});
    const index_t blocks = a.blocks();
    std::vector<double> loss_part(std::size_t(blocks), 0.0), weight_part(std::size_t(blocks), 0.0);
    C* lse = f.lse.data();
    const C keep = C(1 - a.smoothing), spread = C(a.smoothing / double(a.c)), wtotal = C(a.weight_total);
    constexpr index_t B = CrossEntropyArrays<T>::block;
    parallel_for(0, blocks, std::max<index_t>(1, cpu::grain / std::max<index_t>(B * a.c, 1)), [&](index_t b0, index_t b1) {
        C m[B], se[B], sx[B];
        for (index_t b = b0; b < b1; ++b) {
            index_t p0, count, pstride, cstride;
            a.block_at(b, p0, count, pstride, cstride);
            const T* xb = a.row(p0);
            block_statistics(a, xb, count, pstride, cstride, m, se, sx);
            double lsum = 0, wsum = 0;
            for (index_t j = 0; j < count; ++j) {
                const index_t p = p0 + j;
                const C l = m[j] + std::log(se[j]);
                lse[p] = l;
                const std::int64_t t = a.checked_target(p, op);
                C loss = 0;
                if (t != a.ignore_index) {
                    const C wt = a.weight ? convert<C>(a.weight[t]) : C(1);
                    const C xt = convert<C>(xb[j * pstride + t * cstride]);
                    loss = keep * wt * (l - xt);
                    if (a.smoothing > 0) loss += spread * (wtotal * l - sx[j]);
                    wsum += double(wt);
                }
                if (losses) losses[p] = convert<T>(loss);
                lsum += double(loss);
            }
            loss_part[std::size_t(b)] = lsum;
            weight_part[std::size_t(b)] = wsum;
        }
    });
    for (index_t b = 0; b < blocks; ++b) {  // in block order: the same sum for any thread count
        f.loss_sum += loss_part[std::size_t(b)];
        f.weight_sum += weight_part[std::size_t(b)];
    }
    return f;
}

// Gradient of the logits (dense [N, C, S] into grad) for incoming per-position gradients
// scale * g[p] (g null: scale alone).
template <class T, class C>
void cross_entropy_grad(const CrossEntropyArrays<T>& a, const C* lse, const T* g, double scale, T* grad) {
    const C keep = C(1 - a.smoothing), spread = C(a.smoothing / double(a.c)), wtotal = C(a.weight_total);
    constexpr index_t B = CrossEntropyArrays<T>::block;
    const index_t blocks = a.blocks();
    parallel_for(0, blocks, std::max<index_t>(1, cpu::grain / std::max<index_t>(B * a.c, 1)), [&](index_t b0, index_t b1) {
        C coef[B], off[B], lb[B];  // softmax factor, smoothing offset, lse per position
        for (index_t b = b0; b < b1; ++b) {
            index_t p0, count, pstride, cstride;
            a.block_at(b, p0, count, pstride, cstride);
            const T* xb = a.row(p0);
            T* gb = a.row(grad, p0);
            for (index_t j = 0; j < count; ++j) {
                const index_t p = p0 + j;
                const std::int64_t t = a.target[p];
                const C gi = t == a.ignore_index ? C(0) : C(scale * (g ? double(convert<C>(g[p])) : 1.0));
                const C wt = (t == a.ignore_index || !a.weight) ? C(1) : convert<C>(a.weight[t]);
                coef[j] = gi * (keep * wt + spread * wtotal);
                off[j] = gi * spread;
                lb[j] = lse[p];
            }
            if (cstride == 1) {
                for (index_t j = 0; j < count; ++j) {
                    const T* r = xb + j * pstride;
                    T* o = gb + j * pstride;
                    for (index_t k = 0; k < a.c; ++k) {
                        const C wk = a.weight ? convert<C>(a.weight[k]) : C(1);
                        o[k] = convert<T>(coef[j] * std::exp(convert<C>(r[k]) - lb[j]) - off[j] * wk);
                    }
                }
            } else {
                for (index_t k = 0; k < a.c; ++k) {
                    const T* xk = xb + k * cstride;
                    T* ok = gb + k * cstride;
                    const C wk = a.weight ? convert<C>(a.weight[k]) : C(1);
                    for (index_t j = 0; j < count; ++j)
                        ok[j] = convert<T>(coef[j] * std::exp(convert<C>(xk[j]) - lb[j]) - off[j] * wk);
                }
            }
            for (index_t j = 0; j < count; ++j) {  // the one-hot part
                const index_t p = p0 + j;
                const std::int64_t t = a.target[p];
                if (t == a.ignore_index) continue;
                const C gi = C(scale * (g ? double(convert<C>(g[p])) : 1.0));
                const C wt = a.weight ? convert<C>(a.weight[t]) : C(1);
                T& o = gb[j * pstride + t * cstride];
                o = convert<T>(convert<C>(o) - gi * keep * wt);
            }
        }
    });
}

// Checks shapes and options, and lays the inputs out densely. The returned tensors own what
// the arrays point to.
template <class T, int R, Device D>
struct CrossEntropyInputs {
    Tensor<T, R, D> x;
    Tensor<std::int64_t, R - 1, D> target;
    Tensor<T, 1, D> weight;
    CrossEntropyArrays<T> arrays;
};

template <class T, int R, Device D>
CrossEntropyInputs<T, R, D> cross_entropy_inputs(const Tensor<T, R, D>& logits,
                                                 const Tensor<std::int64_t, R - 1, D>& target,
                                                 const CrossEntropyOptions<T, D>& opt, const char* op) {
    Shape<R - 1> expected;
    expected[0] = logits.size(0);
    for (int d = 2; d < R; ++d) expected[d - 1] = logits.size(d);
    WEFT_CHECK(target.shape() == expected, op, ": target of shape ", target.shape(), " does not match logits of shape ",
               logits.shape(), " (expected ", expected, ": the logits' shape without the class axis 1)");
    WEFT_CHECK(opt.label_smoothing >= 0 && opt.label_smoothing <= 1, op, ": label_smoothing must lie in [0, 1], got ",
               opt.label_smoothing);
    const index_t classes = logits.size(1);
    WEFT_CHECK(!opt.weight.defined() || opt.weight.size(0) == classes, op, ": class weights of shape ",
               opt.weight.shape(), " do not match the ", classes, " classes of logits of shape ", logits.shape());
    CrossEntropyInputs<T, R, D> in;
    in.x = logits.detach().contiguous();
    in.target = target.contiguous();
    auto& a = in.arrays;
    a.x = in.x.data();
    a.target = in.target.data();
    a.n = logits.size(0);
    a.c = classes;
    a.s = 1;
    for (int d = 2; d < R; ++d) a.s *= logits.size(d);
    a.ignore_index = opt.ignore_index;
    a.smoothing = opt.label_smoothing;
    if (opt.weight.defined()) {
        in.weight = opt.weight.detach().contiguous();
        a.weight = in.weight.data();
        if constexpr (std::same_as<D, Cpu>)  // on CUDA the kernels add the weights up themselves
            for (index_t k = 0; k < classes; ++k) a.weight_total += double(convert<compute_t<T>>(a.weight[k]));
    } else {
        a.weight_total = double(classes);
    }
    return in;
}

inline double reduction_denominator(Reduction r, double weight_sum, index_t positions) {
    switch (r) {
        case Reduction::mean: return weight_sum;
        case Reduction::mean_all: return double(positions);
        case Reduction::sum: return 1.0;
    }
    return 1.0;
}

template <class T, int R, Device D>
Tensor<T, R, D> logits_grad(const CrossEntropyInputs<T, R, D>& in, const Tensor<compute_t<T>, 1, D>& lse, const T* g,
                            double scale) {
    auto grad = Tensor<T, R, D>::empty(in.x.shape());
    if (grad.numel() > 0) cross_entropy_grad(in.arrays, lse.data(), g, scale, grad.data());
    return grad;
}

#if WEFT_WITH_CUDA
// ---- CUDA: the same arrays, handed to ops/cuda/cross_entropy.cuh --------------------------

template <class T>
cuda::CrossEntropyProblem<T> cuda_problem(const CrossEntropyArrays<T>& a) {
    cuda::CrossEntropyProblem<T> p;
    p.x = a.x;
    p.target = a.target;
    p.weight = a.weight;
    p.n = a.n;
    p.c = a.c;
    p.s = a.s;
    p.ignore_index = a.ignore_index;
    p.smoothing = a.smoothing;
    return p;
}

inline cuda::LossDenominator cuda_denominator(Reduction r) {
    switch (r) {
        case Reduction::mean: return cuda::LossDenominator::weight_sum;
        case Reduction::mean_all: return cuda::LossDenominator::positions;
        case Reduction::sum: return cuda::LossDenominator::one;
    }
    return cuda::LossDenominator::one;
}

// The CPU forward's target check (checked_target), run on the device before the kernels: the
// same message for the same first bad position.
template <class T>
void check_targets_on_device(const CrossEntropyArrays<T>& a, const char* op) {
    const index_t p = cuda::first_bad_index(a.target, a.n * a.s, a.c, &a.ignore_index);
    if (p >= 0)
        WEFT_FAIL(op, ": target value ", cuda::index_at(a.target, p), " (at flat position ", p, ") is outside [0, ",
                  a.c, ") for ", a.c, " classes and is not ignore_index (", a.ignore_index, ")");
}

// The logits' gradient for a rank-0 incoming gradient of the reduced loss (g_scalar) or a
// dense per-position one (g_per).
template <class T, int R>
Tensor<T, R, Cuda> cuda_logits_grad(const CrossEntropyInputs<T, R, Cuda>& in, const cuda::CrossEntropyDeviceForward<T>& f,
                                    const T* g_scalar, const T* g_per) {
    auto grad = Tensor<T, R, Cuda>::empty(in.x.shape());
    cuda::cross_entropy_grad(cuda_problem(in.arrays), f, g_scalar, g_per, grad.data());
    return grad;
}
#endif

}  // namespace detail

// ---- backward ------------------------------------------------------------------------------

// Gradient of grad_out * cross_entropy(logits, target, options) with respect to the logits.
template <Element T, int R, Device D>
Tensor<T, R, D> cross_entropy_backward(const Tensor<T, 0, D>& grad_out, const Tensor<T, R, D>& logits,
                                       const Tensor<std::int64_t, R - 1, D>& target,
                                       const std::type_identity_t<CrossEntropyOptions<T, D>>& options = {}) {
    const auto in = detail::cross_entropy_inputs(logits, target, options, "cross_entropy_backward");
    if constexpr (std::same_as<D, Cpu>) {
        const auto f = detail::cross_entropy_forward<T, D>(in.arrays, nullptr, "cross_entropy_backward");
        const double denom = detail::reduction_denominator(options.reduction, f.weight_sum, f.positions);
        return detail::logits_grad(in, f.lse, static_cast<const T*>(nullptr), double(convert<compute_t<T>>(grad_out.item())) / denom);
    } else {
#if WEFT_WITH_CUDA
        detail::check_targets_on_device(in.arrays, "cross_entropy_backward");
        const auto f = cuda::cross_entropy_forward(detail::cuda_problem(in.arrays),
                                                   detail::cuda_denominator(options.reduction), static_cast<T*>(nullptr),
                                                   static_cast<T*>(nullptr));
        return detail::cuda_logits_grad(in, f, grad_out.data(), static_cast<const T*>(nullptr));
#endif
    }
}

// Gradient of sum(grad_out * cross_entropy_per_element(logits, target, options)).
template <Element T, int R, Device D>
Tensor<T, R, D> cross_entropy_per_element_backward(const Tensor<T, R - 1, D>& grad_out, const Tensor<T, R, D>& logits,
                                                   const Tensor<std::int64_t, R - 1, D>& target,
                                                   const std::type_identity_t<CrossEntropyOptions<T, D>>& options = {}) {
    WEFT_CHECK(grad_out.shape() == target.shape(), "cross_entropy_per_element_backward: grad_out of shape ",
               grad_out.shape(), " differs from target of shape ", target.shape());
    const auto in = detail::cross_entropy_inputs(logits, target, options, "cross_entropy_per_element_backward");
    if constexpr (std::same_as<D, Cpu>) {
        const auto f = detail::cross_entropy_forward<T, D>(in.arrays, nullptr, "cross_entropy_per_element_backward");
        const auto g = grad_out.detach().contiguous();
        return detail::logits_grad(in, f.lse, g.data(), 1.0);
    } else {
#if WEFT_WITH_CUDA
        detail::check_targets_on_device(in.arrays, "cross_entropy_per_element_backward");
        const auto f = cuda::cross_entropy_forward(detail::cuda_problem(in.arrays), cuda::LossDenominator::one,
                                                   static_cast<T*>(nullptr), static_cast<T*>(nullptr));
        const auto g = grad_out.detach().contiguous();
        return detail::cuda_logits_grad(in, f, static_cast<const T*>(nullptr), g.data());
#endif
    }
}

// ---- forward -------------------------------------------------------------------------------

// [N, C, d1, ...] logits and [N, d1, ...] class indices -> the reduced loss (rank 0).
template <Element T, int R, Device D>
Tensor<T, 0, D> cross_entropy(const Tensor<T, R, D>& logits, const Tensor<std::int64_t, R - 1, D>& target,
                              const std::type_identity_t<CrossEntropyOptions<T, D>>& options = {}) {
    static_assert(R >= 2, "weft: cross_entropy takes logits [N, C] or [N, C, d1, ...] (classes on axis 1)");
    static_assert(FloatingElement<T>, "weft: cross_entropy needs floating-point logits");
    auto in = detail::cross_entropy_inputs(logits, target, options, "cross_entropy");
    if constexpr (std::same_as<D, Cpu>) {
        const auto f = detail::cross_entropy_forward<T, D>(in.arrays, nullptr, "cross_entropy");
        const double denom = detail::reduction_denominator(options.reduction, f.weight_sum, f.positions);
        auto out = Tensor<T, 0, D>::full(Shape<0>{}, convert<T>(compute_t<T>(f.loss_sum / denom)));
        if (needs_grad(logits))
            record(
                out, "cross_entropy",
                [logits, in, lse = f.lse, denom](const Tensor<T, 0, D>& g) {
                    const double scale = double(convert<compute_t<T>>(g.item())) / denom;
                    accumulate_grad(logits, detail::logits_grad(in, lse, static_cast<const T*>(nullptr), scale));
                },
                logits);
        return out;
    } else {
#if WEFT_WITH_CUDA
        // The loss is written on the device, and the backward reads g and the denominator there:
        // no value crosses to the host (target validation aside, see ops/cuda/index_check.cuh).
        detail::check_targets_on_device(in.arrays, "cross_entropy");
        auto out = Tensor<T, 0, D>::empty(Shape<0>{});
        auto f = cuda::cross_entropy_forward(detail::cuda_problem(in.arrays), detail::cuda_denominator(options.reduction),
                                             static_cast<T*>(nullptr), out.data());
        if (needs_grad(logits))
            record(
                out, "cross_entropy",
                [logits, in, f](const Tensor<T, 0, D>& g) {
                    accumulate_grad(logits, detail::cuda_logits_grad(in, f, g.data(), static_cast<const T*>(nullptr)));
                },
                logits);
        return out;
#endif
    }
}

// The unreduced losses l_i, shaped as the target: [N, d1, ...] (0 where ignored).
template <Element T, int R, Device D>
Tensor<T, R - 1, D> cross_entropy_per_element(const Tensor<T, R, D>& logits,
                                              const Tensor<std::int64_t, R - 1, D>& target,
                                              const std::type_identity_t<CrossEntropyOptions<T, D>>& options = {}) {
    static_assert(R >= 2, "weft: cross_entropy_per_element takes logits [N, C] or [N, C, d1, ...] (classes on axis 1)");
    static_assert(FloatingElement<T>, "weft: cross_entropy_per_element needs floating-point logits");
    auto in = detail::cross_entropy_inputs(logits, target, options, "cross_entropy_per_element");
    auto out = Tensor<T, R - 1, D>::empty(target.shape());
    if constexpr (std::same_as<D, Cpu>) {
        const auto f = detail::cross_entropy_forward<T, D>(in.arrays, out.data(), "cross_entropy_per_element");
        if (needs_grad(logits))
            record(
                out, "cross_entropy_per_element",
                [logits, in, lse = f.lse](const Tensor<T, R - 1, D>& g) {
                    const auto gc = g.contiguous();
                    accumulate_grad(logits, detail::logits_grad(in, lse, gc.data(), 1.0));
                },
                logits);
    } else {
#if WEFT_WITH_CUDA
        detail::check_targets_on_device(in.arrays, "cross_entropy_per_element");
        auto f = cuda::cross_entropy_forward(detail::cuda_problem(in.arrays), cuda::LossDenominator::one, out.data(),
                                             static_cast<T*>(nullptr));
        if (needs_grad(logits))
            record(
                out, "cross_entropy_per_element",
                [logits, in, f](const Tensor<T, R - 1, D>& g) {
                    const auto gc = g.detach().contiguous();
                    accumulate_grad(logits, detail::cuda_logits_grad(in, f, static_cast<const T*>(nullptr), gc.data()));
                },
                logits);
#endif
    }
    return out;
}

}  // namespace weft
