// weft/optim/adamw.hpp: Adam with decoupled weight decay, as torch.optim.AdamW.
//
//   AdamW<float> opt(groups, {.lr = 1e-4, .weight_decay = 1e-4});
//
// Per parameter p with gradient g at its step t (counted per parameter: a parameter skipped for
// want of a gradient does not advance), in torch's order of operations (torch 1.13
// _single_tensor_adamw):
//   p = p * (1 - lr * weight_decay)                       (decoupled: not part of the moments)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   v_max = max(v_max, v)  and use v_max below           (amsgrad)
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// with lr and weight_decay those of p's group. The whole update is one pass over p's elements,
// reading and writing p, m, v (and v_max) once each.
//
// On CUDA the step of all parameters is one launch (optim/cuda/adamw.cuh, through update_many):
// the same operations and roundings as the CPU loop, so the same values.
#pragma once

#include <cmath>
#include <concepts>
#include <string>
#include <utility>
#include <vector>

#include "optimizer.hpp"
#if WEFT_WITH_CUDA
#include "cuda/adamw.cuh"
#endif

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace weft::optim {

namespace detail {

struct AdamWConstants {
    float decay, beta1, one_minus_b1, beta2, one_minus_b2, neg_step_size, bc2_sqrt, eps;
};

// The float update without amsgrad, eight lanes at a time where AVX is there, over elements
// [b, e) in steps of eight; returns where it stopped (b without AVX), for update's element-wise
// loop to finish. The lanes follow that loop's order of operations (no fused multiply-adds), so
// both give the same bits. The compiler does not vectorise the loop itself: std::sqrt may set
// errno, and the constants captured by the closure are reloaded through memory in every
// iteration; the loop took 9% of a ViT-B/16 training step (docs/performance.md).
inline index_t adamw_f32_lanes(const AdamWConstants k, float* __restrict p, const float* __restrict g,
                               float* __restrict m, float* __restrict v, index_t b, index_t e) {
    index_t i = b;
#if defined(__AVX__)
    const __m256 decay = _mm256_set1_ps(k.decay), beta1 = _mm256_set1_ps(k.beta1),
                 one_minus_b1 = _mm256_set1_ps(k.one_minus_b1), beta2 = _mm256_set1_ps(k.beta2),
                 one_minus_b2 = _mm256_set1_ps(k.one_minus_b2), neg_step_size = _mm256_set1_ps(k.neg_step_size),
                 bc2_sqrt = _mm256_set1_ps(k.bc2_sqrt), eps = _mm256_set1_ps(k.eps);
    for (; i + 8 <= e; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i);
        const __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), decay);
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), beta1), _mm256_mul_ps(one_minus_b1, gi));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), beta2),
                                        _mm256_mul_ps(_mm256_mul_ps(one_minus_b2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2_sqrt), eps);
        _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(neg_step_size, mi), denom)));
    }
#else
    (void)k, (void)p, (void)g, (void)m, (void)v, (void)e;
#endif
    return i;
}

}  // namespace detail

struct AdamWOptions {  // torch's defaults
    double lr = 1e-3;
    std::pair<double, double> betas = {0.9, 0.999};
    double eps = 1e-8;
    double weight_decay = 1e-2;
    bool amsgrad = false;
};

template <Element T, Device D = Cpu>
class AdamW final : public Optimizer<T, D> {
    using Base = Optimizer<T, D>;

public:
    using typename Base::Flat;
    using typename Base::Group;
    using typename Base::State;
    using typename Base::Update;

    explicit AdamW(std::vector<ParamGroup<T, D>> groups, const AdamWOptions& o = {})
        : Base(std::move(groups), o.lr, o.weight_decay), o_(o) {
        WEFT_CHECK(o.eps >= 0, "AdamW: eps ", o.eps, " is negative");
        WEFT_CHECK(o.betas.first >= 0 && o.betas.first < 1 && o.betas.second >= 0 && o.betas.second < 1,
                   "AdamW: betas (", o.betas.first, ", ", o.betas.second, ") must lie in [0, 1)");
    }
    explicit AdamW(std::vector<NamedTensor<T, D>> params, const AdamWOptions& o = {})
        : AdamW(Base::one_group(std::move(params)), o) {}

    std::string name() const override { return "AdamW"; }
    std::vector<std::string> buffer_names() const override {
        if (o_.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
        return {"exp_avg", "exp_avg_sq"};
    }
    const AdamWOptions& options() const { return o_; }

protected:
    void update(const Group& g, State& s, const Flat& param, const Flat& grad) override {
        if constexpr (std::same_as<D, Cpu>) {
            using C = compute_t<T>;
            const double b1 = o_.betas.first, b2 = o_.betas.second, t = double(s.step);
            const C decay = C(1 - g.lr * g.weight_decay);
            const C beta1 = C(b1), one_minus_b1 = C(1 - b1), beta2 = C(b2), one_minus_b2 = C(1 - b2);
            const C neg_step_size = C(-(g.lr / (1 - std::pow(b1, t))));
            const C bc2_sqrt = C(std::sqrt(1 - std::pow(b2, t)));
            const C eps = C(o_.eps);
            const bool amsgrad = o_.amsgrad;
            T* p = param.data();
            const T* gr = grad.data();
            T* m = s.buffers[0].data();
            T* v = s.buffers[1].data();
            T* vmax = amsgrad ? s.buffers[2].data() : nullptr;
            detail::for_each_chunk(param.numel(), [=](index_t b, index_t e) {
                index_t i = b;
                if constexpr (std::same_as<T, float>) {
                    if (!amsgrad)
                        i = detail::adamw_f32_lanes({decay, beta1, one_minus_b1, beta2, one_minus_b2, neg_step_size,
                                                     bc2_sqrt, eps},
                                                    p, gr, m, v, b, e);
                }
                for (; i < e; ++i) {
                    const C gi = convert<C>(gr[i]);
                    const C pi = convert<C>(convert<T>(convert<C>(p[i]) * decay));
                    const C mi = convert<C>(convert<T>(convert<C>(m[i]) * beta1 + one_minus_b1 * gi));
                    C vi = convert<C>(convert<T>(convert<C>(v[i]) * beta2 + one_minus_b2 * gi * gi));
                    m[i] = convert<T>(mi);
                    v[i] = convert<T>(vi);
                    if (amsgrad) {
                        vi = std::max(convert<C>(vmax[i]), vi);
                        vmax[i] = convert<T>(vi);
                    }
                    const C denom = std::sqrt(vi) / bc2_sqrt + eps;
                    p[i] = convert<T>(pi + neg_step_size * mi / denom);
                }
            });
        } else {
            update_many({Update{&g, &s, param, grad}});
        }
    }

    // On the CPU one update() per parameter; on CUDA one multi-tensor launch for all of them,
    // with the scalars update() computes, by the same expressions, in each table entry.
    void update_many(const std::vector<Update>& updates) override {
        if constexpr (std::same_as<D, Cpu>) {
            Base::update_many(updates);
        } else {
#if WEFT_WITH_CUDA
            using C = compute_t<T>;
            const double b1 = o_.betas.first, b2 = o_.betas.second;
            std::vector<cuda::AdamWTensor<T>> tensors;
            tensors.reserve(updates.size());
            for (const Update& u : updates) {
                const Group& g = *u.group;
                const State& s = *u.state;
                const double t = double(s.step);
                tensors.push_back({u.param.data(), u.grad.data(), s.buffers[0].data(), s.buffers[1].data(),
                                   o_.amsgrad ? s.buffers[2].data() : nullptr, u.param.numel(),
                                   C(1 - g.lr * g.weight_decay), C(-(g.lr / (1 - std::pow(b1, t)))),
                                   C(std::sqrt(1 - std::pow(b2, t)))});
            }
            cuda::adamw_step(tensors, cuda::AdamWBetas<C>{C(b1), C(1 - b1), C(b2), C(1 - b2), C(o_.eps)}, o_.amsgrad);
#else
            static_assert(std::same_as<D, Cpu>,
                          "weft: the AdamW step on CUDA needs this translation unit compiled by nvcc with WEFT_CUDA");
#endif
        }
    }

private:
    AdamWOptions o_;
};

}  // namespace weft::optim
