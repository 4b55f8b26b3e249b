// examples/denseclip/commands_no_cuda.cpp: --device cuda in a build without CUDA: a clear error
// with the configure line that builds commands_cuda.cu, never a silent run on the CPU.
#if !WEFT_CUDA

#include <weft/core/error.hpp>

#include "commands.hpp"

namespace denseclip {

namespace {

[[noreturn]] void no_cuda(const char* command) {
    WEFT_FAIL("denseclip ", command, " --device cuda: this build has no CUDA; configure weft with "
              "-DWEFT_CUDA=ON -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc (and -DWEFT_NCCL=ON for "
              "data-parallel training), or use --device cpu");
}

}  // namespace

void cuda_train_command(const DenseClipConfig&, const TrainOptions&) { no_cuda("train"); }

void cuda_eval_command(const DenseClipConfig&, const InferCommand&, const std::filesystem::path&, const std::string&,
                       bool) {
    no_cuda("eval");
}

void cuda_predict_command(const DenseClipConfig&, const InferCommand&, const std::filesystem::path&,
                          const std::vector<std::string>&) {
    no_cuda("predict");
}

}  // namespace denseclip

#endif
