// weft/autograd/grad_mode.hpp: whether new results are recorded for backward.
//
//   {
//       NoGrad no_grad;          // evaluation, frozen encoders: nothing below is recorded
//       auto logits = model(x);
//   }
//
// Grad mode is per thread and on by default. backward() itself runs with it off.
#pragma once

namespace weft {

namespace autograd::detail {
inline bool& grad_mode_flag() {
    thread_local bool enabled = true;
    return enabled;
}
}  // namespace autograd::detail

inline bool grad_enabled() { return autograd::detail::grad_mode_flag(); }

// Sets grad mode for the lifetime of the scope and restores the previous mode after it.
class GradMode {
public:
    explicit GradMode(bool enabled) : previous_(grad_enabled()) { autograd::detail::grad_mode_flag() = enabled; }
    ~GradMode() { autograd::detail::grad_mode_flag() = previous_; }
    GradMode(const GradMode&) = delete;
    GradMode& operator=(const GradMode&) = delete;

private:
    bool previous_;
};

struct NoGrad : GradMode {
    NoGrad() : GradMode(false) {}
};

struct EnableGrad : GradMode {
    EnableGrad() : GradMode(true) {}
};

}  // namespace weft
