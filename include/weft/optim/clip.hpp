// weft/optim/clip.hpp: gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_.
//
//   loss.backward();
//   double norm = clip_grad_norm(model.named_parameters(), 35.0);   // DenseCLIP's max_norm
//   opt.step();
//
// The total norm is the p-norm of all defined gradients taken together (equal to torch's p-norm
// of the per-tensor p-norms; the max of |g| for norm_type = inf); when max_norm / (total + 1e-6) < 1 every gradient is multiplied by
// it in place. Parameters without a gradient are ignored; with none at all the norm is 0.
// Norms accumulate in double whatever T is.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../core/error.hpp"
#include "../exec/cpu/executor.hpp"
#include "../expr/operators.hpp"
#include "../expr/reduce.hpp"
#include "../nn/tensor_ref.hpp"

namespace weft::optim {

// Returns the total norm before clipping. `error_if_nonfinite`: throw instead of scaling by NaN
// when the norm is NaN or infinite (torch's flag of the same name).
template <Element T, Device D>
double clip_grad_norm(const std::vector<NamedTensor<T, D>>& params, double max_norm, double norm_type = 2,
                      bool error_if_nonfinite = false) {
    static_assert(FloatingElement<T>, "weft: clip_grad_norm needs floating-point gradients");
    WEFT_CHECK(max_norm >= 0, "clip_grad_norm: max_norm ", max_norm, " is negative");
    WEFT_CHECK(norm_type > 0, "clip_grad_norm: norm_type must be positive (or infinity), got ", norm_type);
    NoGrad no_grad;
    const bool inf = std::isinf(norm_type);
    std::vector<Tensor<T, 1, D>> grads;
    for (const NamedTensor<T, D>& p : params) {
        Tensor<T, 1, D> g = p.tensor.grad_flat();
        if (g.defined() && g.numel() > 0) grads.push_back(g);
    }
    if (grads.empty()) return 0;

    double total = 0;
    for (const Tensor<T, 1, D>& g : grads) {
        if (inf) {
            total = std::max(total, double(max(abs(g)).template to<Cpu>().item()));
        } else if (norm_type == 2) {
            total += sum(square(cast<double>(g))).template to<Cpu>().item();
        } else {
            total += sum(pow(abs(cast<double>(g)), norm_type)).template to<Cpu>().item();
        }
    }
    if (!inf) total = std::pow(total, 1 / norm_type);
    WEFT_CHECK(!error_if_nonfinite || std::isfinite(total), "clip_grad_norm: the total ", norm_type,
               "-norm of the gradients is ", total, "; nothing was scaled");

    const double coef = max_norm / (total + 1e-6);
    if (coef < 1 || std::isnan(coef))
        for (Tensor<T, 1, D>& g : grads) g = g * coef;
    return total;
}

}  // namespace weft::optim
