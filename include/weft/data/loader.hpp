// weft/data/loader.hpp: batches of transformed samples, prepared by worker threads ahead of use.
//
//   data::Ade20k ade(root, "training");
//   data::SegLoader loader(ade, data::SegTrainPipeline{}, {.batch_size = 8, .workers = 4, .seed = 1});
//   for (std::uint64_t epoch = 0;; ++epoch) {
//       loader.start_epoch(epoch);
//       while (auto batch = loader.next()) train_step(batch->images, batch->labels);
//   }
//
// Determinism: the order of an epoch is a permutation drawn from (seed, epoch), and sample i
// (dataset index) of epoch e is transformed with SampleRandom(seed, e, i) whatever thread runs
// it, so the batches are the same for any number of workers (0 = in the calling thread).
// Workers claim whole batches in order and may run at most `prefetch` batches ahead of the
// consumer (a bounded queue: memory stays at prefetch + workers batches). next() hands batches
// out in order. A failure in a worker (a corrupt file, a bad label) is kept with its batch and
// rethrown by next() as a weft::Error naming the sample's file; the workers stop, and the
// epoch ends (next() then asks for start_epoch, which may begin the same epoch again). The
// destructor, and start_epoch, stop and join the workers of the previous epoch.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "sample_random.hpp"
#include "seg_transforms.hpp"

namespace weft::data {

// A batch: samples stacked along a new first axis.
struct SegBatch {
    Tensor<float, 4> images;           // [B, 3, H, W]
    Tensor<std::int64_t, 3> labels;    // [B, H', W'] class indices, 255 = ignore (H', W' = H, W in
                                       // training; the original size with SegTestPipeline)
    std::vector<index_t> indices;      // dataset index of each sample
    std::vector<std::string> names;    // image file of each sample
};

// What a loader reads: size() and get(i) -> SegSample, image_path(i) for messages (Ade20k).
template <class D>
concept SegDataset = requires(const D& d, index_t i) {
    { d.size() } -> std::convertible_to<index_t>;
    { d.get(i) } -> std::same_as<SegSample>;
    { d.image_path(i) };
};

struct LoaderOptions {
    index_t batch_size = 1;
    int workers = 0;          // threads; 0 prepares batches in the calling thread
    index_t prefetch = 2;     // batches prepared ahead of the consumer (>= 1)
    bool shuffle = true;
    bool drop_last = true;    // drop a final partial batch (training); false keeps it
    std::uint64_t seed = 0;
    // Data-parallel training: this process takes slice `replica` of `replicas` of each global
    // batch of batch_size * replicas samples. The epoch's order and each sample's randomness are
    // those of the whole run, so N processes with batch b see exactly the batches one process
    // with batch N * b sees, cut in rank order (needs drop_last).
    index_t replica = 0, replicas = 1;
};

// The order of samples in an epoch: identity, or a Fisher-Yates shuffle from (seed, epoch).
inline std::vector<index_t> epoch_order(index_t n, bool shuffle, std::uint64_t seed, std::uint64_t epoch) {
    std::vector<index_t> order(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) order[std::size_t(i)] = i;
    if (shuffle) {
        SampleRandom rng(seed ^ 0x5EEDF00Dull, epoch, ~std::uint64_t(0));  // a stream no sample index uses
        for (index_t i = n - 1; i > 0; --i) std::swap(order[std::size_t(i)], order[std::size_t(rng.randint(0, i + 1))]);
    }
    return order;
}

template <SegDataset Dataset>
class SegLoader {
public:
    using Transform = std::function<SegTensors(const SegSample&, SampleRandom&)>;

    SegLoader(const Dataset& dataset, Transform transform, LoaderOptions options)
        : dataset_(dataset), transform_(std::move(transform)), opt_(options) {
        WEFT_CHECK(opt_.batch_size >= 1, "SegLoader: batch_size ", opt_.batch_size, " must be at least 1");
        WEFT_CHECK(opt_.workers >= 0, "SegLoader: workers ", opt_.workers, " must be 0 or more");
        WEFT_CHECK(opt_.prefetch >= 1, "SegLoader: prefetch ", opt_.prefetch, " must be at least 1");
        WEFT_CHECK(transform_, "SegLoader: the transform is empty");
        WEFT_CHECK(opt_.replicas >= 1 && opt_.replica >= 0 && opt_.replica < opt_.replicas, "SegLoader: replica ",
                   opt_.replica, " is not one of ", opt_.replicas);
        WEFT_CHECK(opt_.replicas == 1 || opt_.drop_last, "SegLoader: ", opt_.replicas,
                   " replicas need drop_last (every replica's batch must be full)");
    }
    SegLoader(const SegLoader&) = delete;
    SegLoader& operator=(const SegLoader&) = delete;
    ~SegLoader() { stop(); }

    index_t batches_per_epoch() const {
        const index_t n = dataset_.size(), global = opt_.batch_size * opt_.replicas;
        return opt_.drop_last ? n / global : (n + global - 1) / global;
    }

    // Begins `epoch` (stopping the workers of the previous one).
    void start_epoch(std::uint64_t epoch) {
        stop();
        epoch_ = epoch;
        order_ = epoch_order(dataset_.size(), opt_.shuffle, opt_.seed, epoch);
        total_ = batches_per_epoch();
        next_claim_ = 0;
        next_out_ = 0;
        ready_.clear();
        stopping_ = false;
        started_ = true;
        for (int w = 0; w < opt_.workers; ++w) threads_.emplace_back([this] { work(); });
    }

    // The next batch of the epoch in order, or nullopt at its end. Rethrows a worker's failure.
    std::optional<SegBatch> next() {
        WEFT_CHECK(started_, "SegLoader::next: call start_epoch(epoch) first");
        index_t b;
        {
            std::lock_guard lock(mutex_);  // workers read next_out_ for the prefetch bound
            if (next_out_ >= total_) return std::nullopt;
            b = next_out_++;
        }
        if (opt_.workers == 0) {
            try {
                return make_batch(b);
            } catch (...) {
                started_ = false;
                throw;
            }
        }
        Slot slot;
        {
            std::unique_lock lock(mutex_);
            ready_cv_.wait(lock, [&] { return ready_.count(b) != 0; });
            slot = std::move(ready_.at(b));
            ready_.erase(b);
        }
        space_cv_.notify_all();
        if (slot.error) {
            stop();
            started_ = false;  // the epoch cannot continue: later batches were never made
            std::rethrow_exception(slot.error);
        }
        return std::move(slot.batch);
    }

private:
    struct Slot {
        std::optional<SegBatch> batch;
        std::exception_ptr error;
    };

    SegBatch make_batch(index_t b) const {
        const index_t first = (b * opt_.replicas + opt_.replica) * opt_.batch_size;  // this replica's slice
        const index_t count = std::min(opt_.batch_size, dataset_.size() - first);
        SegBatch batch;
        for (index_t k = 0; k < count; ++k) {
            const index_t idx = order_[std::size_t(first + k)];
            SegTensors t;
            try {
                SampleRandom rng(opt_.seed, epoch_, std::uint64_t(idx));
                t = transform_(dataset_.get(idx), rng);
            } catch (const std::exception& e) {
                WEFT_FAIL("SegLoader: sample ", idx, " ('", std::string(dataset_.image_path(idx)), "') of epoch ",
                          epoch_, " failed: ", e.what());
            }
            if (k == 0) {
                batch.images = Tensor<float, 4>::empty(Shape<4>{count, t.image.size(0), t.image.size(1), t.image.size(2)});
                WEFT_CHECK(t.label.defined(), "SegLoader: sample ", idx, " ('", t.name, "') has no label");
                batch.labels = Tensor<std::int64_t, 3>::empty(Shape<3>{count, t.label.size(0), t.label.size(1)});
            }
            const bool same_shape = t.image.size(0) == batch.images.size(1) && t.image.size(1) == batch.images.size(2) &&
                                    t.image.size(2) == batch.images.size(3);
            WEFT_CHECK(same_shape,
                       "SegLoader: sample ", idx, " ('", t.name, "') has shape ", t.image.shape(),
                       " but the batch started with ", batch.images.shape(),
                       "; batch samples of one size (pad or crop) or use batch_size 1");
            // Training labels match their (padded) image; test labels keep the original size.
            const bool same_label = t.label.defined() && t.label.size(0) == batch.labels.size(1) &&
                                    t.label.size(1) == batch.labels.size(2);
            WEFT_CHECK(same_label, "SegLoader: sample ", idx, " ('", t.name, "') has a label of shape ",
                       (t.label.defined() ? t.label.shape() : Shape<2>()), " but the batch's labels are ",
                       batch.labels.shape(), "; batch samples of one size or use batch_size 1");
            const auto img = t.image.contiguous();
            std::copy_n(img.data(), img.numel(), batch.images.data() + k * img.numel());
            const auto lab = t.label.contiguous();
            std::int64_t* dst = batch.labels.data() + k * lab.numel();
            for (index_t p = 0; p < lab.numel(); ++p) dst[p] = lab.data()[p];
            batch.indices.push_back(idx);
            batch.names.push_back(t.name);
        }
        return batch;
    }

    void work() {
        for (;;) {
            index_t b;
            {
                std::unique_lock lock(mutex_);
                space_cv_.wait(lock, [&] { return stopping_ || next_claim_ >= total_ || next_claim_ < next_out_ + opt_.prefetch; });
                if (stopping_ || next_claim_ >= total_) return;
                b = next_claim_++;
            }
            Slot slot;
            try {
                slot.batch = make_batch(b);
            } catch (...) {
                slot.error = std::current_exception();
            }
            {
                std::lock_guard lock(mutex_);
                ready_[b] = std::move(slot);
            }
            ready_cv_.notify_all();
        }
    }

    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        space_cv_.notify_all();
        for (auto& t : threads_) t.join();
        threads_.clear();
    }

    const Dataset& dataset_;
    Transform transform_;
    LoaderOptions opt_;
    std::uint64_t epoch_ = 0;
    std::vector<index_t> order_;
    index_t total_ = 0, next_claim_ = 0, next_out_ = 0;
    bool started_ = false, stopping_ = false;
    std::map<index_t, Slot> ready_;
    std::mutex mutex_;
    std::condition_variable space_cv_, ready_cv_;
    std::vector<std::thread> threads_;
};

template <class Dataset, class F>
SegLoader(const Dataset&, F, LoaderOptions) -> SegLoader<Dataset>;

}  // namespace weft::data
