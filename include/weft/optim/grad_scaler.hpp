// weft/optim/grad_scaler.hpp: dynamic loss scaling for fp16 training, with the rules of
// torch.cuda.amp.GradScaler.
//
//   optim::MasterWeights<half, Cuda> masters(model.named_parameters());
//   optim::AdamW<float, Cuda> opt(masters.parameters(), {.lr = 1e-4});
//   optim::GradScaler<Cuda> scaler;                          // scale 65536, x2 every 2000 good steps
//   for (...) {
//       scaler.scale(loss(model, batch)).backward();          // gradients times the scale, in half
//       scaler.unscale(masters);                              // optional: before clipping the masters
//       clip_grad_norm(masters.parameters(), 35.0);
//       scaler.step(masters, opt);                            // skipped if a gradient is inf or NaN
//       scaler.update();                                      // the next scale
//       opt.zero_grad();
//   }
//
// Why. half keeps 5 exponent bits: gradients below 2^-24 flush to zero. Multiplying the loss by a
// large factor moves the whole backward pass up the range; the gradients are divided by it again
// in fp32 (MasterWeights::load_grads), before the optimizer sees them. Too large a factor makes
// some gradient overflow to inf (or NaN); that step is then skipped and the factor shrinks. bf16
// has float's exponent range and needs no scaler (MasterWeights alone), though it works with one.
//
// The rules (torch's defaults; the scale is a float, as torch's):
//   - the scale starts at init_scale (65536);
//   - a step whose unscaled gradients hold an inf or NaN is skipped (masters, model and optimizer
//     state untouched), the scale is multiplied by backoff_factor (0.5) and the count of good
//     steps restarts at 0;
//   - otherwise the count grows by one; when it reaches growth_interval (2000) the scale is
//     multiplied by growth_factor (2), unless that would overflow float, and the count restarts.
// Products are taken in double and rounded to float, as torch does.
//
// One check per step: the masters' fp32 gradients sit in one buffer, and a single reduction over
// it (MasterWeights::grads_finite) is read on the host, the one device-to-host read of the step.
// The scale itself lives on the host: with that read made anyway, the rules above cost nothing
// more, and scale() multiplies by a number instead of reading a device scalar.
//
// Each iteration: scale() -> backward -> [unscale()] -> step() -> update(), in that order, one
// scaler per MasterWeights; calling unscale or step twice, or update without either, throws.
//
// A half loss is scaled in half: with scale 65536, which half cannot hold, the first backward
// gives infinite gradients and the first step is skipped (the scale drops to 32768). That is the
// rules at work, as in torch when the loss is fp16; pass a lower init_scale to avoid it.
#pragma once

#include <cmath>
#include <concepts>

#include "../autograd/grad_mode.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../expr/operators.hpp"
#include "master_weights.hpp"
#include "optimizer.hpp"

namespace weft::optim {

struct GradScalerOptions {  // torch's defaults
    double init_scale = 65536.0;
    double growth_factor = 2.0;
    double backoff_factor = 0.5;
    int growth_interval = 2000;
    bool enabled = true;  // false: scale() returns the loss, step() always steps, update() does nothing
};

template <Device D = Cpu>
class GradScaler {
public:
    explicit GradScaler(const GradScalerOptions& o = {}) : o_(o), scale_(float(o.init_scale)) {
        WEFT_CHECK(std::isfinite(scale_) && scale_ > 0, "GradScaler: init_scale ", o.init_scale,
                   " must be positive and finite in float");
        WEFT_CHECK(o.growth_factor > 1, "GradScaler: growth_factor ", o.growth_factor, " must exceed 1");
        WEFT_CHECK(o.backoff_factor > 0 && o.backoff_factor < 1, "GradScaler: backoff_factor ", o.backoff_factor,
                   " must lie in (0, 1)");
        WEFT_CHECK(o.growth_interval > 0, "GradScaler: growth_interval ", o.growth_interval, " must be positive");
    }

    // loss * scale, recorded: backward() from it gives the gradients times the scale.
    template <Element T, int R>
    Tensor<T, R, D> scale(const Tensor<T, R, D>& loss) const {
        if (!o_.enabled) return loss;
        return loss * scale_;
    }

    // Loads the model's gradients into the masters divided by the scale, and checks them for inf
    // and NaN. Call it to see or clip the true gradients before step(); otherwise step() calls it.
    template <Element T>
    void unscale(MasterWeights<T, D>& masters) {
        WEFT_CHECK(stage_ == Stage::ready, "GradScaler::unscale: already called (or step()) since the last update()");
        if (!o_.enabled) {
            masters.load_grads(1.0f);
            found_inf_ = false;
        } else {
            masters.load_grads(float(1.0 / double(scale_)));  // torch: the reciprocal in double, then float
            found_inf_ = !masters.grads_finite();
        }
        stage_ = Stage::unscaled;
    }

    // Steps the masters (and rounds them into the model) unless a gradient was inf or NaN.
    // Returns whether it stepped.
    template <Element T>
    bool step(MasterWeights<T, D>& masters, Optimizer<float, D>& opt) {
        WEFT_CHECK(stage_ != Stage::stepped, "GradScaler::step: already called since the last update()");
        if (stage_ == Stage::ready) unscale(masters);
        stage_ = Stage::stepped;
        if (found_inf_) return false;
        masters.step_loaded(opt);
        return true;
    }

    // The scale for the next iteration, by the rules above.
    void update() {
        if (!o_.enabled) {
            stage_ = Stage::ready;
            return;
        }
        WEFT_CHECK(stage_ != Stage::ready, "GradScaler::update: no unscale() or step() since the last update(), "
                   "so no gradient was checked");
        if (found_inf_) {
            scale_ = float(double(scale_) * o_.backoff_factor);
            growth_tracker_ = 0;
        } else if (++growth_tracker_ == o_.growth_interval) {
            const float grown = float(double(scale_) * o_.growth_factor);
            if (std::isfinite(grown)) scale_ = grown;
            growth_tracker_ = 0;
        }
        stage_ = Stage::ready;
    }

    float current_scale() const { return scale_; }
    // Good steps since the scale last changed (or since a skipped one).
    int growth_tracker() const { return growth_tracker_; }
    // Whether the last unscale()/step() found an inf or NaN (its step was skipped).
    bool found_inf() const { return found_inf_; }
    const GradScalerOptions& options() const { return o_; }

    // Resumes from a checkpoint: the scale and growth count that current_scale() and
    // growth_tracker() gave when it was saved.
    void set_state(float scale, int growth_tracker) {
        WEFT_CHECK(std::isfinite(scale) && scale > 0, "GradScaler::set_state: scale ", scale, " must be positive");
        WEFT_CHECK(growth_tracker >= 0 && growth_tracker < o_.growth_interval, "GradScaler::set_state: growth_tracker ",
                   growth_tracker, " must lie in [0, ", o_.growth_interval, ")");
        scale_ = scale;
        growth_tracker_ = growth_tracker;
        stage_ = Stage::ready;
    }

private:
    enum class Stage { ready, unscaled, stepped };

    GradScalerOptions o_;
    float scale_;
    int growth_tracker_ = 0;
    bool found_inf_ = false;
    Stage stage_ = Stage::ready;
};

}  // namespace weft::optim
