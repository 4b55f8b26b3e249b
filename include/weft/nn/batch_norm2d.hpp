// weft/nn/batch_norm2d.hpp: `BatchNorm2d`, batch normalization of [N, C, H, W] feature maps.
//
//   nn::BatchNorm2d<float> bn(64);
//   auto y = bn(x);          // training: batch statistics, running statistics updated in place
//   bn.eval();
//   auto z = bn(x);          // evaluation: running statistics
//   bn.set_cross_replica_sum(sum_over_replicas);   // data-parallel: SyncBatchNorm
//
// As torch.nn.BatchNorm2d(C, eps, momentum, affine, track_running_stats): parameters weight
// (ones) and bias (zeros); buffers running_mean (zeros), running_var (ones) and
// num_batches_tracked, the number of training batches seen. PyTorch keeps that counter in
// int64; weft keeps every buffer in the module's element type T, so it is a rank-0 T tensor
// (exact to 2^24 batches in float), and load_state converts a checkpoint's int64 into it.
// momentum = std::nullopt averages cumulatively (factor 1 / num_batches_tracked), as
// momentum=None does. Without track_running_stats the buffers do not exist and both modes use
// batch statistics.
//
// set_cross_replica_sum makes it torch.nn.SyncBatchNorm: in training the statistics are those of
// all data-parallel replicas' batches together (ops/batch_norm.hpp, CrossReplicaSum), and
// backward() sends each replica the gradient of the sum over replicas. Evaluation never
// synchronizes, even without running statistics (PyTorch's rule). Every replica must run the
// same training forwards and backwards in the same order, since each calls the collective.
#pragma once

#include <optional>
#include <utility>

#include "../ops/batch_norm.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class BatchNorm2d : public Module<T, D> {
public:
    Tensor<T, 1, D> weight;               // [C], ones; undefined without affine
    Tensor<T, 1, D> bias;                 // [C], zeros; undefined without affine
    Tensor<T, 1, D> running_mean;         // [C], zeros; undefined without track_running_stats
    Tensor<T, 1, D> running_var;          // [C], ones
    Tensor<T, 0, D> num_batches_tracked;  // [], 0

    explicit BatchNorm2d(index_t channels, double eps = 1e-5, std::optional<double> momentum = 0.1,
                         bool affine = true, bool track_running_stats = true)
        : channels_(channels), eps_(eps), momentum_(momentum) {
        WEFT_CHECK(channels > 0, "BatchNorm2d: needs a positive number of channels, got ", channels);
        if (affine) {
            weight = Tensor<T, 1, D>::ones({channels});
            bias = Tensor<T, 1, D>::zeros({channels});
            this->register_parameter("weight", weight);
            this->register_parameter("bias", bias);
        }
        if (track_running_stats) {
            running_mean = Tensor<T, 1, D>::zeros({channels});
            running_var = Tensor<T, 1, D>::ones({channels});
            num_batches_tracked = Tensor<T, 0, D>::zeros({});
            this->register_buffer("running_mean", running_mean);
            this->register_buffer("running_var", running_var);
            this->register_buffer("num_batches_tracked", num_batches_tracked);
        }
    }

    Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
        WEFT_CHECK(x.size(1) == channels_, "BatchNorm2d(", channels_, "): input of shape ", x.shape(), " has ",
                   x.size(1), " channels");
        const bool tracking = running_mean.defined();
        double factor = momentum_.value_or(0.0);
        if (this->is_training() && tracking) {
            // The buffers are handles: their elements change in place, which a const forward may do.
            Tensor<T, 0, D> count = num_batches_tracked;
            {
                NoGrad no_grad;
                count = count + 1;
            }
            if (!momentum_) factor = 1.0 / double(count.item());
        }
        // Without running statistics both modes normalize with the batch's (PyTorch's rule).
        const CrossReplicaSum local;
        return batch_norm(x, running_mean, running_var, weight, bias, this->is_training() || !tracking, factor,
                          eps_, this->is_training() ? replicas_ : local);
    }
    Tensor<T, 4, D> operator()(const Tensor<T, 4, D>& x) const { return forward(x); }

    index_t channels() const { return channels_; }

    // The collective that synchronizes training over replicas; empty (the default) undoes it.
    void set_cross_replica_sum(CrossReplicaSum f) { replicas_ = std::move(f); }
    const CrossReplicaSum& cross_replica_sum() const { return replicas_; }
    bool synchronized() const { return bool(replicas_); }

private:
    index_t channels_;
    double eps_;
    std::optional<double> momentum_;
    CrossReplicaSum replicas_;
};

}  // namespace weft::nn
