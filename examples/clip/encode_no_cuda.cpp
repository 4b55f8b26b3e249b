// examples/clip/encode_no_cuda.cpp: --device cuda in a build without CUDA is an error that says how to
// build it, never a silent run on the CPU.
#if !WEFT_CUDA

#include "encode_commands.hpp"

namespace clip_cli {

void run_encode_cuda(EncodeCommand, const EncodeOptions&) {
    WEFT_FAIL("clip --device cuda: this build has no CUDA; configure weft with -DWEFT_CUDA=ON "
              "-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc, or use --device cpu");
}

}  // namespace clip_cli

#endif
