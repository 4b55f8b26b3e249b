// examples/denseclip/commands_train.cpp: `train`.
#include "commands.hpp"
#include "train.hpp"

namespace denseclip {

void train_command(const DenseClipConfig& cfg, const TrainOptions& options) {
    const auto r = train(cfg, options);
    if (r) {
        std::printf("\nvalidation after %lld iterations (%lld images):\n", (long long)options.iters.value_or(cfg.train.iters),
                    (long long)r->images);
        print_metrics(r->metrics, false);
    }
    std::printf("work dir: %s (log.jsonl, eval.jsonl, loss.svg, miou.svg, checkpoints)\n",
                options.work_dir.c_str());
}

}  // namespace denseclip
