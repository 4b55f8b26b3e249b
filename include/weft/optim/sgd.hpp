// weft/optim/sgd.hpp: stochastic gradient descent with momentum, as torch.optim.SGD.
//
//   SGD<float> opt(model.named_parameters(), {.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
//
// Per parameter p with gradient g, in torch's order of operations (torch 1.13 _single_tensor_sgd):
//   d = g + weight_decay * p                               (weight decay as L2, coupled)
//   buf = d at the first step, else momentum * buf + (1 - dampening) * d
//   d = d + momentum * buf  (nesterov)   or   d = buf  (momentum > 0)
//   p = p - lr * d
// with lr and weight_decay those of p's group. The whole update is one pass over p's elements
// (on CUDA one launch per parameter, optim/cuda/sgd.cuh, with the CPU loop's roundings).
#pragma once

#include <concepts>
#include <string>
#include <vector>

#include "optimizer.hpp"
#if WEFT_WITH_CUDA
#include "cuda/sgd.cuh"
#endif

namespace weft::optim {

struct SGDOptions {
    double lr = 0;  // no default in torch either; 0 is refused, say what you mean
    double momentum = 0;
    double dampening = 0;
    double weight_decay = 0;
    bool nesterov = false;
};

template <Element T, Device D = Cpu>
class SGD final : public Optimizer<T, D> {
    using Base = Optimizer<T, D>;

public:
    using typename Base::Flat;
    using typename Base::Group;
    using typename Base::State;

    SGD(std::vector<ParamGroup<T, D>> groups, const SGDOptions& o)
        : Base(std::move(groups), o.lr, o.weight_decay), o_(o) {
        WEFT_CHECK(o.lr > 0, "SGD: lr must be positive, got ", o.lr);
        WEFT_CHECK(o.momentum >= 0, "SGD: momentum ", o.momentum, " is negative");
        WEFT_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                   "SGD: nesterov momentum needs momentum > 0 and dampening 0 (got momentum ", o.momentum,
                   ", dampening ", o.dampening, ")");
    }
    SGD(std::vector<NamedTensor<T, D>> params, const SGDOptions& o) : SGD(Base::one_group(std::move(params)), o) {}

    std::string name() const override { return "SGD"; }
    std::vector<std::string> buffer_names() const override {
        if (o_.momentum == 0) return {};
        return {"momentum_buffer"};
    }
    const SGDOptions& options() const { return o_; }

protected:
    void update(const Group& g, State& s, const Flat& param, const Flat& grad) override {
        if constexpr (std::same_as<D, Cpu>) {
            using C = compute_t<T>;
            const C lr = C(g.lr), wd = C(g.weight_decay), mu = C(o_.momentum), keep = C(1 - o_.dampening);
            const bool decay = g.weight_decay != 0, momentum = o_.momentum != 0, first = s.step == 1;
            const bool nesterov = o_.nesterov;
            T* p = param.data();
            const T* gr = grad.data();
            T* buf = momentum ? s.buffers[0].data() : nullptr;
            detail::for_each_chunk(param.numel(), [=](index_t b, index_t e) {
                for (index_t i = b; i < e; ++i) {
                    C d = convert<C>(gr[i]);
                    if (decay) d = d + wd * convert<C>(p[i]);
                    if (momentum) {
                        buf[i] = convert<T>(first ? d : convert<C>(buf[i]) * mu + keep * d);
                        const C m = convert<C>(buf[i]);
                        d = nesterov ? d + mu * m : m;
                    }
                    p[i] = convert<T>(convert<C>(p[i]) + (-lr) * d);
                }
            });
        } else {
#if WEFT_WITH_CUDA
            using C = compute_t<T>;
            const bool momentum = o_.momentum != 0;
            cuda::sgd_step(param.data(), grad.data(), momentum ? s.buffers[0].data() : nullptr, param.numel(),
                           cuda::SGDScalars<C>{C(g.lr), C(g.weight_decay), C(o_.momentum), C(1 - o_.dampening),
                                               g.weight_decay != 0, momentum, s.step == 1, o_.nesterov});
#else
            static_assert(std::same_as<D, Cpu>,
                          "weft: the SGD step on CUDA needs this translation unit compiled by nvcc with WEFT_CUDA");
#endif
        }
    }

private:
    SGDOptions o_;
};

}  // namespace weft::optim
