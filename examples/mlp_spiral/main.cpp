// mlp_spiral: a small MLP learns three interleaved spirals with AdamW (see spiral.hpp).
//
//   mlp_spiral                 # progress every 50 steps, then the final accuracy
//   mlp_spiral --json          # only {"accuracy": <value>}
//   mlp_spiral --steps 500 --lr 0.005 --seed 3
#include <cstdio>

#include <CLI/CLI.hpp>

#include "spiral.hpp"

int main(int argc, char** argv) {
    spiral::Config cfg;
    bool json = false;
    CLI::App app{"mlp_spiral: an MLP (2 -> 64 -> 64 -> 3, ReLU) trained on a 2-D spiral with AdamW"};
    app.add_option("--steps", cfg.steps, "full-batch training steps")->check(CLI::PositiveNumber);
    app.add_option("--lr", cfg.lr, "peak learning rate (cosine schedule after a linear warmup)")
        ->check(CLI::PositiveNumber);
    app.add_option("--points", cfg.per_class, "points per class")->check(CLI::Range(2, 100000));
    app.add_option("--seed", cfg.seed, "seed of the data set and of the initial weights");
    app.add_flag("--json", json, "print only {\"accuracy\": <value>}");
    CLI11_PARSE(app, argc, argv);

    try {
        if (!json)
            std::printf("spiral: %d classes x %lld points, MLP 2 -> %lld -> %lld -> %d, AdamW lr %g, %d steps\n",
                        cfg.classes, static_cast<long long>(cfg.per_class), static_cast<long long>(cfg.hidden),
                        static_cast<long long>(cfg.hidden), cfg.classes, cfg.lr, cfg.steps);
        auto report = [](int step, double loss, double acc) {
            std::printf("step %4d  loss %.4f  accuracy %.3f\n", step, loss, acc);
        };
        const spiral::Result r = json ? spiral::train(cfg) : spiral::train(cfg, report);
        if (json) std::printf("{\"accuracy\": %.6f}\n", r.accuracy);
        else std::printf("final: loss %.4f, accuracy %.3f\n", r.loss, r.accuracy);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mlp_spiral: %s\n", e.what());
        return 1;
    }
    return 0;
}
