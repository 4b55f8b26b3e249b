// examples/denseclip/commands.hpp: the subcommands of `denseclip` (main.cpp parses the options).
// They are split over translation units so that those that instantiate the model compile in
// parallel: commands_data.cpp (make-synthetic, score), commands_infer.cpp (eval, predict,
// zeroshot), commands_train.cpp (train), and, with --device cuda, commands_cuda.cu (train, eval and
// predict on the GPU; nvcc compiles it when weft is configured with -DWEFT_CUDA=ON, otherwise
// commands_no_cuda.cpp says how to get it).
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

// What eval and predict share: which checkpoint, how to infer, and where.
struct InferCommand {
    std::filesystem::path checkpoint, vocab;
    std::string mode;  // empty: the config's
    bool aug = false;
    std::string device = "cpu";
};

void eval_command(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& data_root,
                  const std::string& split, bool json);

void predict_command(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& out_dir,
                     const std::vector<std::string>& images);

void zeroshot_command(const std::filesystem::path& clip_file, const std::filesystem::path& image,
                      const std::filesystem::path& out_dir, const std::filesystem::path& vocab);

// Runs (or resumes) training and prints the final evaluation.
void train_command(const DenseClipConfig& cfg, const TrainOptions& options);

// The --device cuda halves of the commands above (commands_cuda.cu, or commands_no_cuda.cpp, which
// fails with the configure line that builds them).
void cuda_train_command(const DenseClipConfig& cfg, const TrainOptions& options);
void cuda_eval_command(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& data_root,
                       const std::string& split, bool json);
void cuda_predict_command(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& out_dir,
                          const std::vector<std::string>& images);

}  // namespace denseclip
