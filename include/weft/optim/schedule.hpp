// weft/optim/schedule.hpp: learning-rate schedules as mmcv 1.x runs them per iteration
// (LrUpdaterHook with by_epoch=False, mmcv/runner/hooks/lr_updater.py).
//
//   // DenseCLIP on ADE20K: poly decay over 80k iterations after a linear warmup of 1500
//   PolySchedule sched{.base_lr = 1e-4, .max_iters = 80000, .power = 1.0, .min_lr = 1e-6,
//                      .warmup = {Warmup::linear, 1500, 1e-6}};
//   for (std::int64_t iter = 0; iter < 80000; ++iter) {
//       apply_schedule(opt, sched, iter);    // every group, as mmcv sets param_group['lr']
//       ...
//   }
//
// `iter` counts completed iterations (mmcv's runner.iter): the first iteration is 0. Each schedule
// gives the "regular" lr of an iteration, and while iter < warmup.iters a warmup multiplies it:
//   constant:  regular * ratio
//   linear:    regular * (1 - (1 - iter / warmup_iters) * (1 - ratio))
//   exp:       regular * ratio^(1 - iter / warmup_iters)
// (warmup scales the regular lr of that same iteration, not the base lr). The regular lrs:
//   poly:      (base - min_lr) * (1 - iter / max_iters)^power + min_lr
//   cosine:    target + (base - target) * (cos(pi * iter / max_iters) + 1) / 2,
//              target = min_lr, or base * min_lr_ratio
//   step:      base * gamma^k, k = how many milestones iter has reached (or iter / every),
//              clipped below at min_lr when one is given
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <vector>

#include "../core/error.hpp"

namespace weft::optim {

enum class Warmup { none, constant, linear, exp };

struct WarmupConfig {
    Warmup kind = Warmup::none;
    std::int64_t iters = 0;
    double ratio = 0.1;  // mmcv's default warmup_ratio

    // The factor that multiplies the regular lr at `iter` (1 once warmup is over).
    double factor(std::int64_t iter) const {
        if (kind == Warmup::none || iter >= iters) return 1;
        WEFT_CHECK(iters > 0, "warmup: warmup iters must be positive, got ", iters);
        WEFT_CHECK(ratio > 0 && ratio <= 1, "warmup: ratio must lie in (0, 1], got ", ratio);
        const double progress = double(iter) / double(iters);
        switch (kind) {
            case Warmup::constant: return ratio;
            case Warmup::linear: return 1 - (1 - progress) * (1 - ratio);
            default: return std::pow(ratio, 1 - progress);
        }
    }
};

namespace detail {
inline double progress_of(std::int64_t iter, std::int64_t max_iters, const char* what) {
    WEFT_CHECK(max_iters > 0, what, ": max_iters must be positive, got ", max_iters);
    WEFT_CHECK(iter >= 0 && iter <= max_iters, what, ": iteration ", iter, " is outside [0, ", max_iters, "]");
    return double(iter) / double(max_iters);
}
}  // namespace detail

// mmcv policy='poly'.
struct PolySchedule {
    double base_lr = 0;
    std::int64_t max_iters = 0;
    double power = 1;
    double min_lr = 0;
    WarmupConfig warmup{};

    double lr_at(std::int64_t iter) const { return lr_at(iter, base_lr); }
    // The lr of a parameter group whose initial lr is `group_lr` (min_lr stays absolute, as in mmcv).
    double lr_at(std::int64_t iter, double group_lr) const {
        const double coeff = std::pow(1 - detail::progress_of(iter, max_iters, "PolySchedule"), power);
        return ((group_lr - min_lr) * coeff + min_lr) * warmup.factor(iter);
    }
};

// mmcv policy='CosineAnnealing': exactly one of min_lr and min_lr_ratio.
struct CosineSchedule {
    double base_lr = 0;
    std::int64_t max_iters = 0;
    std::optional<double> min_lr{};
    std::optional<double> min_lr_ratio{};
    WarmupConfig warmup{};

    double lr_at(std::int64_t iter) const { return lr_at(iter, base_lr); }
    double lr_at(std::int64_t iter, double group_lr) const {
        WEFT_CHECK(min_lr.has_value() != min_lr_ratio.has_value(),
                   "CosineSchedule: give exactly one of min_lr and min_lr_ratio");
        const double progress = detail::progress_of(iter, max_iters, "CosineSchedule");
        const double target = min_lr_ratio ? group_lr * *min_lr_ratio : *min_lr;
        const double regular = target + 0.5 * (group_lr - target) * (std::cos(std::numbers::pi * progress) + 1);
        return regular * warmup.factor(iter);
    }
};

// mmcv policy='step': decays by gamma at each milestone (step=[a, b]), or every `every`
// iterations (step=n). Exactly one of the two is given.
struct StepSchedule {
    double base_lr = 0;
    std::vector<std::int64_t> milestones{};
    std::int64_t every = 0;
    double gamma = 0.1;
    std::optional<double> min_lr{};
    WarmupConfig warmup{};

    double lr_at(std::int64_t iter) const { return lr_at(iter, base_lr); }
    double lr_at(std::int64_t iter, double group_lr) const {
        WEFT_CHECK(milestones.empty() != (every == 0),
                   "StepSchedule: give either milestones or every (a positive interval), not both or neither");
        WEFT_CHECK(every >= 0, "StepSchedule: every must be positive, got ", every);
        WEFT_CHECK(iter >= 0, "StepSchedule: iteration ", iter, " is negative");
        std::int64_t k = 0;
        if (every > 0) {
            k = iter / every;
        } else {
            k = std::int64_t(milestones.size());
            for (std::size_t i = 0; i < milestones.size(); ++i)
                if (iter < milestones[i]) {
                    k = std::int64_t(i);
                    break;
                }
        }
        double lr = group_lr * std::pow(gamma, double(k));
        if (min_lr) lr = std::max(lr, *min_lr);
        return lr * warmup.factor(iter);
    }
};

// Sets the lr of every group of `opt` for iteration `iter`, as mmcv's hook does: a group whose
// lr_mult is m starts from base_lr * m and follows the schedule from there. (This differs from
// opt.set_lr(schedule.lr_at(iter)), which scales the whole lr by m, only where the schedule has
// an absolute floor: min_lr in poly, cosine and step.)
template <class Optimizer, class Schedule>
void apply_schedule(Optimizer& opt, const Schedule& schedule, std::int64_t iter) {
    opt.set_lr(schedule.lr_at(iter));
    for (auto& g : opt.groups()) g.lr = schedule.lr_at(iter, schedule.base_lr * g.lr_mult);
}

}  // namespace weft::optim
