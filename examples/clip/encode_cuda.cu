// examples/clip/encode_cuda.cu: `clip encode-text | encode-image | zeroshot --device cuda`, compiled by
// nvcc when weft is configured with -DWEFT_CUDA=ON.
#include <weft/weft.hpp>

#include "encode_commands.hpp"

namespace clip_cli {

void run_encode_cuda(EncodeCommand command, const EncodeOptions& c) {
    WEFT_CHECK(weft::cuda::is_available(), "clip --device cuda: no CUDA device is visible (check nvidia-smi and "
               "CUDA_VISIBLE_DEVICES), or use --device cpu");
    run_encode<Cuda>(command, c);
}

}  // namespace clip_cli
