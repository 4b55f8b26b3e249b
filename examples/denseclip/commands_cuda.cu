// examples/denseclip/commands_cuda.cu: `train`, `eval` and `predict` with --device cuda. nvcc
// compiles this file when weft is configured with -DWEFT_CUDA=ON; the model, its gradients and
// AdamW's state then live on the GPU, and the data pipeline stays on the host.
//
// Data-parallel training on GPUs runs one process per GPU over NCCL (-DWEFT_NCCL=ON): each rank
// takes GPU local_rank, and the communicator meets its peers through WEFT_RENDEZVOUS or
// WEFT_MASTER_ADDR/PORT (dist/nccl_communicator.cuh).
#include <memory>

#include <weft/weft.hpp>
#include <weft/dist/launch_env.hpp>
#if WEFT_NCCL
#include <weft/dist/nccl_communicator.cuh>
#endif

#include "commands.hpp"
#include "infer_commands.hpp"
#include "train.hpp"

namespace denseclip {

namespace {

void require_gpu(const char* command) {
    WEFT_CHECK(weft::cuda::is_available(), "denseclip ", command,
               " --device cuda: no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), "
               "or use --device cpu");
}

}  // namespace

void cuda_train_command(const DenseClipConfig& cfg, const TrainOptions& options) {
    require_gpu("train");
    const auto env = dist::launch_env();
    weft::cuda::set_device(env.local_rank % weft::cuda::device_count());
    std::unique_ptr<dist::Communicator> comm;
    if (env.size > 1) {
#if WEFT_NCCL
        comm = dist::NcclCommunicator::from_env(env);
#else
        WEFT_FAIL("denseclip train --device cuda: launched as rank ", env.rank, " of ", env.size, " (", env.launcher,
                  ") but built without NCCL; configure weft with -DWEFT_NCCL=ON");
#endif
    }
    train_and_report<Cuda>(cfg, options, comm.get());
}

void cuda_eval_command(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& data_root,
                       const std::string& split, bool json) {
    require_gpu("eval");
    run_eval<Cuda>(cfg, c, data_root, split, json);
}

void cuda_predict_command(const DenseClipConfig& cfg, const InferCommand& c, const std::filesystem::path& out_dir,
                          const std::vector<std::string>& images) {
    require_gpu("predict");
    run_predict<Cuda>(cfg, c, out_dir, images);
}

}  // namespace denseclip
