// mlp_spiral's core: the data set, the model and the training loop (main.cpp adds the flags;
// tests/optim/spiral_test.cpp runs the same loop).
//
// Three interleaved spiral arms in the plane, one class each: no straight line separates them,
// so a linear model stays near 1/3 accuracy while a small MLP learns the arms.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>

#include <weft/weft.hpp>

namespace spiral {

using namespace weft;

struct Dataset {
    Tensor<float, 2> x;         // [N, 2] points
    Tensor<std::int64_t, 1> y;  // [N] class of each point, 0..classes-1
};

// `per_class` points per arm: arm k runs from the centre outwards (radius 0..1) while its angle
// turns through 4 radians starting at 4k, with Gaussian noise of 0.2 on the angle.
inline Dataset make_spiral(index_t per_class, int classes, std::uint64_t seed) {
    Generator gen(seed);
    const index_t n = per_class * classes;
    const auto noise = Tensor<float, 1>::randn({n}, gen);  // [N]
    Dataset d{Tensor<float, 2>::empty({n, 2}), Tensor<std::int64_t, 1>::empty({n})};
    for (int k = 0; k < classes; ++k) {
        for (index_t i = 0; i < per_class; ++i) {
            const index_t row = k * per_class + i;
            const double t = double(i) / double(per_class - 1);  // 0..1 along the arm
            const double angle = 4.0 * (k + t) + 0.2 * double(noise(row));
            d.x(row, 0) = float(t * std::sin(angle));
            d.x(row, 1) = float(t * std::cos(angle));
            d.y(row) = k;
        }
    }
    return d;
}

// 2 -> hidden -> hidden -> classes with ReLU between the layers.
class Mlp : public nn::Module<float> {
public:
    nn::Linear<float> fc1, fc2, fc3;

    Mlp(index_t hidden, index_t classes, Generator& gen)
        : fc1(2, hidden, true, gen), fc2(hidden, hidden, true, gen), fc3(hidden, classes, true, gen) {
        register_module("fc1", fc1);
        register_module("fc2", fc2);
        register_module("fc3", fc3);
    }

    Tensor<float, 2> forward(const Tensor<float, 2>& x) const {
        const Tensor<float, 2> h1 = relu(fc1(x));   // [N, hidden]
        const Tensor<float, 2> h2 = relu(fc2(h1));  // [N, hidden]
        return fc3(h2);                             // [N, classes]
    }
};

struct Config {
    index_t per_class = 100;
    int classes = 3;
    index_t hidden = 64;
    int steps = 200;
    double lr = 0.01;
    double weight_decay = 1e-4;
    std::uint64_t seed = 0;
};

struct Result {
    double loss = 0;      // after the last step
    double accuracy = 0;  // on the training points, after the last step
};

inline double accuracy(const Tensor<float, 2>& logits, const Tensor<std::int64_t, 1>& y) {
    return double(mean(cast<float>(argmax(logits, 1) == y)).item());
}

// Full-batch AdamW with cross-entropy; the lr follows a cosine from cfg.lr down to a hundredth
// after a linear warmup of 20 steps (mmcv's policy='CosineAnnealing'). `progress(step, loss,
// accuracy)` is called every `report_every` steps.
inline Result train(const Config& cfg, const std::function<void(int, double, double)>& progress = {},
                    int report_every = 50) {
    const Dataset data = make_spiral(cfg.per_class, cfg.classes, cfg.seed);
    Generator gen(cfg.seed + 1);
    Mlp model(cfg.hidden, cfg.classes, gen);
    optim::AdamW<float> opt(model.named_parameters(), {.lr = cfg.lr, .weight_decay = cfg.weight_decay});
    const optim::CosineSchedule schedule{.base_lr = cfg.lr,
                                         .max_iters = cfg.steps,
                                         .min_lr_ratio = 0.01,
                                         .warmup = {optim::Warmup::linear, 20, 0.1}};
    Result r;
    for (int step = 0; step < cfg.steps; ++step) {
        optim::apply_schedule(opt, schedule, step);
        opt.zero_grad();
        const auto logits = model.forward(data.x);  // [N, classes]
        const auto loss = cross_entropy(logits, data.y);
        loss.backward();
        opt.step();
        r.loss = double(loss.item());
        if (progress && (step % report_every == 0 || step + 1 == cfg.steps))
            progress(step, r.loss, accuracy(logits.detach(), data.y));
    }
    NoGrad no_grad;
    const auto logits = model.forward(data.x);
    r.loss = double(cross_entropy(logits, data.y).item());
    r.accuracy = accuracy(logits, data.y);
    return r;
}

}  // namespace spiral
