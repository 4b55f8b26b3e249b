// weft/optim/master_weights.hpp: fp32 master copies of a 16-bit model's parameters, the other
// half of mixed-precision training (with optim/grad_scaler.hpp for fp16).
//
//   ViT<bf16, Cuda> model(...);                                   // forward and backward in bf16
//   optim::MasterWeights<bf16, Cuda> masters(model.named_parameters());
//   optim::AdamW<float, Cuda> opt(make_param_groups(masters.parameters(), rules), {.lr = 1e-4});
//   for (...) {
//       loss(model, batch).backward();                            // bf16 gradients
//       masters.step(opt);                                        // fp32 step, rounded back to bf16
//       opt.zero_grad();
//   }
//
// Why. weft's element types are part of the tensor types, so there is no autocast: a model
// trained in 16 bits is a model instantiated with T = bf16 (or half), whose parameters are 16-bit
// tensors. Stepping them in 16 bits loses every update smaller than half a unit in the last place
// (bf16 has 8 bits of mantissa: 1 - 1e-3 rounds back to 1), and Adam's second moments underflow.
// So the optimizer steps fp32 copies instead, and the model gets their rounded values. Each step:
//
//   load_grads(inv_scale)   the model's 16-bit gradients, converted to float and multiplied by
//                           inv_scale (1, or 1/loss scale for fp16), become the masters'
//                           gradients; the model's are cleared (consumed). All of them live in
//                           one fp32 buffer, the masters' gradients being slices of it, so one
//                           reduction checks them all for inf and NaN (grads_finite()).
//   step_loaded(opt)        opt.step() on the masters (an Optimizer<float, D> built from
//                           parameters(): groups, schedules, clipping and state files work as for
//                           an fp32 model; state is keyed by the same names), then every master
//                           that had a gradient is rounded into its 16-bit parameter.
//
// step(opt) is the two together. Masters mirror requires_grad at construction, so
// make_param_groups leaves the frozen ones out; a parameter that gets no gradient in a step gets
// no master gradient either, and the optimizer skips it, as for an fp32 model.
//
// Everything runs through expressions (cast, one max reduction), so Cpu and Cuda share the code:
// on the CPU it is the reference that the CUDA tests compare against. Memory per parameter: the
// 16-bit weight and gradient, the fp32 master and its gradient, and the optimizer's fp32 state.
#pragma once

#include <cmath>
#include <concepts>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../autograd/tape.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/half.hpp"
#include "../core/tensor.hpp"
#include "../expr/operators.hpp"
#include "../expr/reduce.hpp"
#include "../nn/tensor_ref.hpp"
#include "optimizer.hpp"

namespace weft::optim {

template <Element T, Device D = Cpu>
class MasterWeights {
    static_assert(std::same_as<T, bf16> || std::same_as<T, half>,
                  "weft: MasterWeights keeps fp32 copies of bf16 or half parameters; a float or double model "
                  "is stepped directly by its optimizer");

public:
    // Copies every parameter into an fp32 master of the same name and shape (exactly: bf16 and
    // half convert to float without rounding). The model's tensors are referred to, not copied:
    // they must outlive this object.
    explicit MasterWeights(std::vector<NamedTensor<T, D>> params) : params_(std::move(params)) {
        NoGrad no_grad;
        std::set<std::string> names;
        for (const NamedTensor<T, D>& p : params_) {
            WEFT_CHECK(p.tensor.valid() && p.tensor.defined(), "MasterWeights: parameter '", p.name,
                       "' refers to no tensor");
            WEFT_CHECK(names.insert(p.name).second, "MasterWeights: the parameter name '", p.name,
                       "' appears twice; optimizer state is keyed by name, so names must be unique");
            p.tensor.visit([&](const auto& t) {
                constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
                WEFT_CHECK(t.is_contiguous(), "MasterWeights: parameter '", p.name, "' of shape ", t.shape(),
                           " is not dense; module tensors are allocated dense");
                auto held = std::make_unique<Held<R>>();
                held->tensor = cast<float>(t.detach());
                if (t.requires_grad()) held->tensor.requires_grad_();
                masters_.push_back({p.name, TensorRef<float, D>(held->tensor)});
                held_.push_back(std::move(held));
            });
        }
        loaded_.assign(params_.size(), false);
    }

    // The masters live on the heap: moving this object keeps the references an optimizer holds.
    MasterWeights(MasterWeights&&) noexcept = default;
    MasterWeights& operator=(MasterWeights&&) noexcept = default;
    MasterWeights(const MasterWeights&) = delete;
    MasterWeights& operator=(const MasterWeights&) = delete;

    // The fp32 masters, named and ordered as the model's parameters: what an Optimizer<float, D>,
    // make_param_groups and clip_grad_norm take.
    const std::vector<NamedTensor<float, D>>& parameters() const { return masters_; }
    // The model's 16-bit parameters, as given.
    const std::vector<NamedTensor<T, D>>& model_parameters() const { return params_; }

    // Makes the model's gradients the masters' (float, times inv_scale) and clears the model's.
    // A parameter without a gradient leaves its master without one.
    void load_grads(float inv_scale = 1.0f) {
        NoGrad no_grad;
        std::vector<Tensor<T, 1, D>> grads(params_.size());
        index_t total = 0;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            grads[i] = params_[i].tensor.grad_flat();
            if (!grads[i].defined()) continue;
            WEFT_CHECK(grads[i].numel() == params_[i].tensor.numel(), "MasterWeights: parameter '", params_[i].name,
                       "' of shape ", params_[i].tensor.shape_string(), " has a gradient of ", grads[i].numel(),
                       " elements");
            total += grads[i].numel();
        }
        grads_ = Tensor<float, 1, D>::empty({total});
        index_t at = 0;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            loaded_[i] = grads[i].defined();
            if (!loaded_[i]) {
                masters_[i].tensor.clear_grad();
                continue;
            }
            const index_t n = grads[i].numel();
            Tensor<float, 1, D> g = grads_.narrow(0, at, n);
            at += n;
            if (inv_scale == 1.0f) g = cast<float>(grads[i]);
            else g = cast<float>(grads[i]) * inv_scale;
            masters_[i].tensor.visit([&](auto& m) {
                if (!m.requires_grad()) m.requires_grad_();  // unfrozen after construction
                autograd::slot_of(m).set_flat_grad(g);
            });
            params_[i].tensor.clear_grad();
        }
    }

    // Whether every gradient load_grads made is finite: one reduction over their buffer (the
    // largest magnitude; a NaN wins, as in torch.max) and one read of it on the host.
    bool grads_finite() const {
        if (!grads_.defined() || grads_.numel() == 0) return true;
        NoGrad no_grad;
        const float largest = max(abs(grads_)).item();
        return std::isfinite(largest);
    }

    // opt.step() on the masters with the gradients load_grads made, then the masters that had one
    // rounded into the model's parameters.
    void step_loaded(Optimizer<float, D>& opt) {
        opt.step();
        copy_to_model(loaded_);
    }

    // One step of the masters from the model's gradients (no loss scale).
    void step(Optimizer<float, D>& opt) {
        load_grads(1.0f);
        step_loaded(opt);
    }

    // Rounds every master into its 16-bit parameter (after loading the masters' own state).
    void copy_to_model() const { copy_to_model(std::vector<bool>(params_.size(), true)); }

    // Reads the model's parameters into the masters again (after loading a 16-bit checkpoint
    // into the model): exact.
    void copy_from_model() const {
        NoGrad no_grad;
        for (std::size_t i = 0; i < params_.size(); ++i)
            masters_[i].tensor.flat() = cast<float>(params_[i].tensor.flat());
    }

    // Clears the gradients of the model and of the masters.
    void zero_grad() const {
        for (const NamedTensor<T, D>& p : params_) p.tensor.clear_grad();
        for (const NamedTensor<float, D>& m : masters_) m.tensor.clear_grad();
    }

private:
    struct HeldBase {
        virtual ~HeldBase() = default;
    };
    template <int R>
    struct Held final : HeldBase {
        Tensor<float, R, D> tensor;
    };

    void copy_to_model(const std::vector<bool>& which) const {
        NoGrad no_grad;
        for (std::size_t i = 0; i < params_.size(); ++i)
            if (which[i]) params_[i].tensor.flat() = cast<T>(masters_[i].tensor.flat());
    }

    std::vector<NamedTensor<T, D>> params_;
    std::vector<NamedTensor<float, D>> masters_;  // refer into held_
    std::vector<std::unique_ptr<HeldBase>> held_;
    std::vector<bool> loaded_;    // which masters got a gradient from the last load_grads
    Tensor<float, 1, D> grads_;   // every master gradient of the last load_grads, one after another
};

}  // namespace weft::optim
