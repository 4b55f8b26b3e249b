// weft/dist/sync_batch_norm.hpp: every batch norm of a model synchronized over the ranks.
//
//   dist::synchronize_batch_norm(model, comm);   // PyTorch: nn.SyncBatchNorm.convert_sync_batchnorm
//
// In training, each BatchNorm2d then normalizes with the statistics of the global batch (every
// rank's slice together) and sends each rank the gradient of the sum over ranks, so a model with
// batch norm trains on N processes exactly as on one process with the whole batch (the released
// DenseCLIP configs use SyncBN). It costs one all-reduce of 3C + 1 doubles per layer forward and
// 2C backward, issued in the same order on every rank. Evaluation is unchanged (running
// statistics). The batch norm hands its sums over as host doubles (the CUDA batch norm copies
// its C-element sums over once per layer and pass); a device communicator (NCCL) reduces them
// through a device buffer, so this works in translation units that nvcc compiles.
#pragma once

#include <algorithm>
#include <span>

#include "../nn/batch_norm2d.hpp"
#include "../nn/module.hpp"
#include "communicator.hpp"

namespace weft::dist {

// The collective batch norm asks for: each element summed over the ranks of `comm` (which must
// outlive its use).
inline CrossReplicaSum cross_replica_sum(Communicator& comm) {
    if (comm.device() == Cpu::name)
        return [&comm](std::span<double> values) {
            comm.all_reduce_async(values.data(), values.size(), DType::f64, ReduceOp::sum).wait();
        };
#if WEFT_WITH_CUDA
    WEFT_CHECK(comm.device() == Cuda::name, "dist::cross_replica_sum: the ", comm.backend(), " communicator works on ",
               comm.device(), " memory, which synchronized batch norm cannot reach");
    return [&comm](std::span<double> values) {  // through GPU memory, which NCCL reads
        auto host = Tensor<double, 1>::empty({index_t(values.size())});
        std::copy(values.begin(), values.end(), host.data());
        auto on_device = host.template to<Cuda>();
        comm.all_reduce(on_device);
        host = on_device.template to<Cpu>();
        std::copy(host.data(), host.data() + values.size(), values.begin());
    };
#else
    WEFT_FAIL("dist::cross_replica_sum: the ", comm.backend(), " communicator reduces ", comm.device(),
              " memory; synchronized batch norm over it needs a translation unit compiled by nvcc with WEFT_CUDA");
#endif
}

// Synchronizes every BatchNorm2d in `model` over `comm` (a world of one leaves them local).
// Returns how many batch norms the model has.
template <Element T, Device D>
int synchronize_batch_norm(nn::Module<T, D>& model, Communicator& comm) {
    int n = 0;
    const CrossReplicaSum sum = comm.size() > 1 ? cross_replica_sum(comm) : CrossReplicaSum{};
    for (auto& [name, m] : model.named_modules())
        if (auto* bn = dynamic_cast<nn::BatchNorm2d<T, D>*>(m)) {
            bn->set_cross_replica_sum(sum);
            ++n;
        }
    return n;
}

}  // namespace weft::dist
