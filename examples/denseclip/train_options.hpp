// examples/denseclip/train_options.hpp: what `denseclip train` takes besides the config
// (train.hpp runs it). Set values override the config's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <weft/dist/communicator.hpp>

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
    std::string device = "cpu";   // "cpu" or "cuda" (the model, its gradients and AdamW on the GPU)
    // Data-parallel: this process is one rank of `comm`'s world, batch_size is per rank (the
    // global batch is batch_size x world size), rank 0 writes logs and checkpoints. Null: alone.
    weft::dist::Communicator* comm = nullptr;
};

}  // namespace denseclip
