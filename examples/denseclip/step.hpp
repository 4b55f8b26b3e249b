// examples/denseclip/step.hpp: DenseCLIP's optimizer, learning-rate schedule and one training
// iteration, as the released configs run them (spec §5.1-5.2).
//
//   auto opt   = denseclip::make_optimizer(model, cfg.train);            // AdamW, mmcv's groups
//   auto sched = denseclip::make_schedule(cfg.train);                    // poly + linear warmup
//   for (std::int64_t iter = 0; iter < cfg.train.iters; ++iter)
//       auto terms = denseclip::train_step(model, opt, sched, iter, images, labels);
//
// Groups (mmcv's custom_keys, longest key first, first match decides): names containing
// "text_encoder" get lr × text_encoder_lr_mult (0), "backbone" lr × backbone_lr_mult (0.1),
// "norm" weight decay × norm_decay_mult (0); everything else the base lr and decay. With lr
// multiplier 0 the text encoder is not frozen: mmcv's poly schedule floors every group at
// min_lr, so it moves with lr 1e-6·(1 - (1 - t/T)^0.9), as the released checkpoints did. That is
// the default; freeze_text takes the text encoder out of training altogether (no gradient, no
// update; the gradient still flows through it to the learnable contexts).
#pragma once

#include <cstdint>

#include <weft/dist/data_parallel.hpp>
#include <weft/optim/adamw.hpp>
#include <weft/optim/param_groups.hpp>
#include <weft/optim/schedule.hpp>

#include "model.hpp"

namespace denseclip {

template <Element T, Device D>
void freeze_text_encoder(DenseClip<T, D>& model) {
    for (auto& p : model.text_encoder.named_parameters()) p.tensor.visit([](auto& t) { t.requires_grad_(false); });
}

template <Element T, Device D>
optim::AdamW<T, D> make_optimizer(DenseClip<T, D>& model, const TrainConfig& t) {
    auto groups = optim::make_param_groups(model.named_parameters(), {{"backbone", t.backbone_lr_mult},
                                                                       {"text_encoder", t.text_encoder_lr_mult},
                                                                       {"norm", 1.0, t.norm_decay_mult}});
    return optim::AdamW<T, D>(std::move(groups), {.lr = t.lr,
                                                  .betas = {t.betas[0], t.betas[1]},
                                                  .eps = t.eps,
                                                  .weight_decay = t.weight_decay});
}

inline optim::PolySchedule make_schedule(const TrainConfig& t) {
    return {.base_lr = t.lr,
            .max_iters = t.iters,
            .power = t.poly_power,
            .min_lr = t.min_lr,
            .warmup = {t.warmup_iters > 0 ? optim::Warmup::linear : optim::Warmup::none, t.warmup_iters,
                       t.warmup_ratio}};
}

// One iteration at `iter` (0-based): set every group's lr, forward, backward, AdamW step.
// Returns the loss terms of this batch, computed before the update. With `dp` this process is
// one rank of data-parallel training: images and labels are its slice of the global batch, its
// dropout masks are the ones the whole batch would draw for these samples, the gradients are
// averaged over the ranks before the step, and the returned terms are the global batch's.
template <Element T, Device D>
LossTerms train_step(DenseClip<T, D>& model, optim::AdamW<T, D>& opt, const optim::PolySchedule& sched,
                     std::int64_t iter, const Tensor<T, 4, D>& images, const Tensor<std::int64_t, 3, D>& labels,
                     dist::DataParallel<T, D>* dp = nullptr) {
    optim::apply_schedule(opt, sched, iter);
    opt.zero_grad();
    LossTerms terms;
    {
        const ReplicaScope slice(default_generator(), dp ? std::uint64_t(dp->rank()) : 0,
                                 dp ? std::uint64_t(dp->size()) : 1);
        auto l = model.losses(images, labels);
        l.total.backward();
        terms = l.values();
    }
    if (dp) {
        dp->synchronize();
        // Each rank's terms are means over equal slices: their mean is the global batch's.
        // Reduced on the model's device: NCCL, the communicator of GPU training, reads GPU memory only.
        auto v = Tensor<double, 1>::empty({3});
        v.data()[0] = terms.total, v.data()[1] = terms.decode, v.data()[2] = terms.aux;
        auto on_device = v.template to<D>();
        dp->communicator().all_reduce(on_device);
        v = on_device.template to<Cpu>();
        const double n = dp->size();
        terms = {v.data()[0] / n, v.data()[1] / n, v.data()[2] / n};
    }
    opt.step();
    return terms;
}

}  // namespace denseclip
