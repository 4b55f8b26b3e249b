// weft/prompt/learnable_context.hpp: DenseCLIP's learnable context tokens and the per-channel
// scale γ of the text update (spec §2.3, §2.5).
//
//   auto contexts = prompt::make_contexts<float>(8, 512);        // [1, 8, 512], N(0, 1) truncated to ±2
//   auto gamma    = prompt::make_gamma<float>(1024);             // [1024], every element 1e-4
//   this->register_parameter("contexts", contexts);              // DenseCLIP's root names
//   this->register_parameter("gamma", gamma);
//
//   prompt::LearnableContext<float> ctx(8, 512);                 // the same as a module: "contexts"
//   auto c = ctx();                                              // [1, 8, 512]
//
// The contexts are the prompt tokens p_1..p_n that CLIPTextContextEncoder puts between the
// start token and the class name (clip/text_context_encoder.hpp). DenseCLIP draws them with
// nn.init.trunc_normal_ at its defaults: std 1, absolute bounds [-2, 2] — far larger than CLIP's
// token embeddings, and kept so for fidelity. γ starts at 1e-4 (DenseCLIP since 2022-03-21; 1e-3
// before), so the context decoder's correction starts almost switched off.
//
// DenseCLIP registers both at the root of its model ("contexts", "gamma"); a model that wants
// those names registers the tensors itself (first form above) rather than the module.
#pragma once

#include "../core/tensor.hpp"
#include "../nn/init.hpp"
#include "../nn/module.hpp"

namespace weft::prompt {

// [1, n_ctx, width] truncated standard normal (DenseCLIP's `contexts`).
template <Element T = float, Device D = Cpu>
Tensor<T, 3, D> make_contexts(index_t n_ctx, index_t width, Generator& gen = default_generator()) {
    WEFT_CHECK(n_ctx > 0 && width > 0, "prompt::make_contexts: n_ctx ", n_ctx, " and width ", width,
               " must be positive");
    auto c = Tensor<T, 3, D>::empty({1, n_ctx, width});
    nn::init::trunc_normal_(c, 0.0, 1.0, -2.0, 2.0, gen);
    return c;
}

// [dim] filled with `value` (DenseCLIP's `gamma`, 1e-4).
template <Element T = float, Device D = Cpu>
Tensor<T, 1, D> make_gamma(index_t dim, double value = 1e-4) {
    WEFT_CHECK(dim > 0, "prompt::make_gamma: dim ", dim, " must be positive");
    return Tensor<T, 1, D>::full({dim}, T(value));
}

template <Element T = float, Device D = Cpu>
class LearnableContext : public nn::Module<T, D> {
public:
    Tensor<T, 3, D> contexts;  // [1, n_ctx, width]

    LearnableContext(index_t n_ctx, index_t width, Generator& gen = default_generator())
        : contexts(make_contexts<T, D>(n_ctx, width, gen)) {
        this->register_parameter("contexts", contexts);
    }

    Tensor<T, 3, D> forward() const { return contexts; }
    Tensor<T, 3, D> operator()() const { return contexts; }

    index_t n_ctx() const { return contexts.size(1); }
    index_t width() const { return contexts.size(2); }
};

}  // namespace weft::prompt
