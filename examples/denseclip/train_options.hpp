// examples/denseclip/train_options.hpp: what `denseclip train` takes besides the config
// (train.hpp runs it). Set values override the config's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

namespace denseclip {

struct TrainOptions {
    std::filesystem::path data_root, work_dir;
    std::optional<std::int64_t> iters, batch_size, log_interval, eval_interval;
    std::optional<std::int64_t> stop_at;  // end the session after this iteration (checkpointed); --resume goes on
    std::uint64_t seed = 0;
    bool resume = false;
    std::optional<std::filesystem::path> clip_weights;
    bool freeze_text = false;
    std::filesystem::path vocab;  // CLIP's BPE vocabulary
    int workers = -1;             // -1: the config's
};

}  // namespace denseclip
