// examples/denseclip/commands.hpp: the subcommands of `denseclip` (main.cpp parses the options).
// They are split over three translation units so that the two that instantiate the model compile
// in parallel: commands_data.cpp (make-synthetic, score), commands_infer.cpp (eval, predict,
// zeroshot) and commands_train.cpp (train).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <weft/metrics/segmentation_metrics.hpp>

#include "config.hpp"
#include "train_options.hpp"

namespace denseclip {

void make_synthetic_command(const std::filesystem::path& out, std::int64_t n_train, std::int64_t n_val, int size,
                            std::uint64_t seed);

// mmseg's per-class table and summary (or the JSON form) on stdout.
void print_metrics(const weft::metrics::SegmentationMetrics& m, bool json);

void score_command(const std::filesystem::path& pred_dir, const std::filesystem::path& gt_dir, bool json);

void eval_command(const DenseClipConfig& cfg, const std::filesystem::path& data_root, const std::string& split,
                  const std::filesystem::path& checkpoint, const std::string& mode, bool aug, bool json,
                  const std::filesystem::path& vocab);

void predict_command(const DenseClipConfig& cfg, const std::filesystem::path& checkpoint,
                     const std::filesystem::path& out_dir, const std::vector<std::string>& images,
                     const std::string& mode, bool aug, const std::filesystem::path& vocab);

void zeroshot_command(const std::filesystem::path& clip_file, const std::filesystem::path& image,
                      const std::filesystem::path& out_dir, const std::filesystem::path& vocab);

// Runs (or resumes) training and prints the final evaluation.
void train_command(const DenseClipConfig& cfg, const TrainOptions& options);

}  // namespace denseclip
