// weft/dist/data_parallel.hpp: data-parallel training: every rank ends each backward with the
// gradients of the global batch.
//
//   dist::DataParallel dp(comm, model);      // broadcasts rank 0's parameters and buffers
//   opt.zero_grad();
//   model.losses(images, labels).total.backward();   // buckets all-reduce as their gradients complete
//   dp.synchronize();                        // waits; every gradient is now the mean over ranks
//   opt.step();                              // identical on every rank
//
// Each rank computes the loss of its slice of the global batch as a mean over that slice, so the
// mean of the ranks' gradients is the gradient of the global batch's mean loss (slices of equal
// size; DistributedSampler-style loaders give that).
//
// Gradients travel in buckets of about `bucket_mb`, filled in reverse registration order (the
// order the backward produces them, roughly). autograd calls back when a parameter's gradient
// is complete (autograd::on_grad_ready); when a bucket is full it starts its all-reduce on the
// communicator, in bucket order, so communication overlaps the rest of the backward.
// synchronize() sends the buckets still open (parameters this backward did not reach contribute
// zeros), waits, divides by the world size and writes the means into the gradients. A parameter
// that received no gradient on any rank keeps none, so the optimizer treats it as a single
// process would.
//
// One backward per synchronize(): a second backward before it would send buckets twice (gradient
// accumulation over micro-batches is a plain loop of backward() calls followed by one
// synchronize() only if each micro-batch's buckets are disabled; not provided yet).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../autograd/tape.hpp"
#include "../expr.hpp"
#include "../nn/module.hpp"
#include "communicator.hpp"

namespace weft::dist {

struct DataParallelOptions {
    double bucket_mb = 25;            // PyTorch DDP's default bucket size
    bool broadcast_from_root = true;  // start every rank from rank 0's parameters and buffers
};

template <Element T, Device D = Cpu>
class DataParallel {
public:
    DataParallel(Communicator& comm, const nn::Module<T, D>& model, DataParallelOptions options = {})
        : comm_(comm) {
        if (options.broadcast_from_root && comm.size() > 1) {
            for (auto& p : model.named_parameters()) broadcast(p);
            for (auto& b : model.named_buffers()) broadcast(b);
        }
        auto params = model.named_parameters();
        const auto bucket_elems = index_t(std::max(1.0, options.bucket_mb * 1024 * 1024 / double(sizeof(T))));
        for (auto it = params.rbegin(); it != params.rend(); ++it) {
            if (!it->tensor.requires_grad()) continue;
            if (buckets_.empty() || (buckets_.back().elems > 0 && buckets_.back().elems + it->tensor.numel() > bucket_elems))
                buckets_.push_back({});
            Bucket& b = buckets_.back();
            params_.push_back({it->name, it->tensor, int(buckets_.size() - 1), b.elems});
            b.elems += it->tensor.numel();
            ++b.params;
        }
        for (auto& b : buckets_) b.data = Tensor<T, 1, D>::zeros({b.elems});
        for (std::size_t i = 0; i < params_.size(); ++i)
            params_[i].ref.visit([this, i](auto& t) { autograd::on_grad_ready(t, [this, i] { ready(i); }); });
    }
    DataParallel(const DataParallel&) = delete;
    DataParallel& operator=(const DataParallel&) = delete;

    ~DataParallel() {
        for (auto& p : params_)
            if (p.ref.requires_grad()) p.ref.visit([](auto& t) { autograd::on_grad_ready(t, nullptr); });
    }

    Communicator& communicator() const { return comm_; }
    int rank() const { return comm_.rank(); }
    int size() const { return comm_.size(); }
    std::size_t bucket_count() const { return buckets_.size(); }

    // After backward(): every trainable parameter's gradient becomes the mean over the ranks.
    void synchronize() {
        for (std::size_t i = 0; i < params_.size(); ++i)
            if (!params_[i].ready) stage(i);
        launch_ready_buckets();
        // Which parameters received a gradient anywhere: max over ranks of 0/1 flags.
        auto flags = Tensor<std::int32_t, 1, Cpu>::empty({index_t(params_.size())});
        for (std::size_t i = 0; i < params_.size(); ++i) flags.data()[i] = params_[i].had_grad ? 1 : 0;
        auto had_here = flags.template to<D>();
        Work had_work = comm_.all_reduce_async(had_here, ReduceOp::max);
        for (auto& b : buckets_) b.work.wait();
        had_work.wait();
        const auto had = had_here.template to<Cpu>();
        const T inv = T(1.0 / double(comm_.size()));
        for (std::size_t i = 0; i < params_.size(); ++i) {
            Param& p = params_[i];
            if (had.data()[i] != 0) {
                auto mean = buckets_[std::size_t(p.bucket)].data.slice(0, p.offset, p.offset + p.ref.numel());
                auto g = p.ref.grad_flat();
                if (g.defined()) {
                    g = mean * inv;  // written into the gradient's elements
                } else {
                    Tensor<T, 1, D> m = mean * inv;
                    p.ref.visit([&](auto& t) { autograd::slot_of(t).accumulate_flat(m); });
                }
            }
            p.ready = false;
            p.had_grad = false;
        }
        for (auto& b : buckets_) {
            b.staged = 0;
            b.work = {};
        }
        next_launch_ = 0;
    }

private:
    struct Param {
        std::string name;
        TensorRef<T, D> ref;
        int bucket;
        index_t offset;  // in the bucket
        bool ready = false, had_grad = false;
    };
    struct Bucket {
        index_t elems = 0;
        int params = 0, staged = 0;
        Tensor<T, 1, D> data;
        Work work;
    };

    void broadcast(const NamedTensor<T, D>& n) {
        auto flat = n.tensor.flat();
        comm_.broadcast(flat, 0);
    }

    // Called by autograd when parameter i's gradient is complete.
    void ready(std::size_t i) {
        WEFT_CHECK(!params_[i].ready, "dist::DataParallel: the gradient of '", params_[i].name,
                   "' completed twice; call synchronize() after every backward()");
        stage(i);
        launch_ready_buckets();
    }

    // Copies parameter i's gradient (zeros if it has none) into its bucket.
    void stage(std::size_t i) {
        Param& p = params_[i];
        Bucket& b = buckets_[std::size_t(p.bucket)];
        auto dst = b.data.slice(0, p.offset, p.offset + p.ref.numel());
        const auto g = p.ref.grad_flat();
        p.had_grad = g.defined();
        if (p.had_grad) dst.copy_from(g);
        else dst = T(0);
        p.ready = true;
        ++b.staged;
    }

    // Starts the all-reduce of every full bucket, in bucket order (all ranks issue the same
    // collectives in the same order).
    void launch_ready_buckets() {
        while (next_launch_ < buckets_.size() && buckets_[next_launch_].staged == buckets_[next_launch_].params) {
            Bucket& b = buckets_[next_launch_++];
            b.work = comm_.all_reduce_async(b.data, ReduceOp::sum);
        }
    }

    Communicator& comm_;
    std::vector<Param> params_;
    std::vector<Bucket> buckets_;
    std::size_t next_launch_ = 0;
};

}  // namespace weft::dist
