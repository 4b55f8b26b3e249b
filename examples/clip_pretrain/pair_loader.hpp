// examples/clip_pretrain/pair_loader.hpp: batches of (image, caption) pairs for contrastive
// training, each prepared on a background thread while the previous one trains.
//
//   clip_pretrain::PairLoader loader(pairs, tokenizer, {.batch_size = 128, .resolution = 32,
//                                                       .context_length = 16, .seed = 0});
//   loader.start_epoch(0);
//   while (auto b = loader.next()) step(b->images, b->tokens);     // [B, 3, R, R], [B, L]
//
// As SegLoader: an epoch's order is a permutation drawn from (seed, epoch), and sample i of
// epoch e is cropped with SampleRandom(seed, e, i), so batches do not depend on timing or
// threads. With replicas, this process takes slice `replica` of every global batch of
// batch_size × replicas pairs, in rank order: N processes see exactly the batches one process
// with N times the batch sees. The last partial global batch of an epoch is dropped.
#pragma once

#include <future>
#include <optional>
#include <vector>

#include <weft/data/image.hpp>
#include <weft/data/loader.hpp>
#include <weft/models/clip/tokenizer.hpp>

#include "pairs.hpp"
#include "train_transform.hpp"

namespace clip_pretrain {

using namespace weft;

struct PairBatch {
    Tensor<float, 4> images;          // [B, 3, R, R], CLIP-normalised
    Tensor<std::int64_t, 2> tokens;   // [B, L]
    std::vector<index_t> indices;     // pair index of each row
};

struct PairLoaderOptions {
    index_t batch_size = 128;  // per replica
    index_t resolution = 224;
    index_t context_length = 77;
    std::uint64_t seed = 0;
    index_t replica = 0, replicas = 1;
};

class PairLoader {
public:
    PairLoader(const std::vector<Pair>& pairs, const clip::Tokenizer& tokenizer, PairLoaderOptions o)
        : pairs_(pairs), tokenizer_(tokenizer), o_(o) {
        WEFT_CHECK(o.batch_size >= 1 && o.resolution >= 1 && o.context_length >= 2,
                   "PairLoader: batch size, resolution and context length must be positive");
        WEFT_CHECK(o.replicas >= 1 && o.replica >= 0 && o.replica < o.replicas, "PairLoader: replica ", o.replica,
                   " is not one of ", o.replicas);
    }
    ~PairLoader() {
        if (pending_.valid()) pending_.wait();
    }

    index_t batches_per_epoch() const { return index_t(pairs_.size()) / (o_.batch_size * o_.replicas); }

    void start_epoch(std::uint64_t epoch) {
        if (pending_.valid()) pending_.wait();
        pending_ = {};
        epoch_ = epoch;
        order_ = data::epoch_order(index_t(pairs_.size()), true, o_.seed, epoch);
        next_ = 0;
        prefetch();
    }

    // The next batch of the epoch, or nullopt at its end. Rethrows a failure (naming the file).
    std::optional<PairBatch> next() {
        if (!pending_.valid()) return std::nullopt;
        PairBatch b = pending_.get();
        prefetch();
        return b;
    }

    // Skips n batches (resuming mid-epoch) without preparing them.
    void skip(index_t n) {
        if (pending_.valid()) pending_.wait();
        pending_ = {};
        next_ = std::min(next_ - 1 + n, batches_per_epoch());
        prefetch();
    }

private:
    void prefetch() {
        if (next_ >= batches_per_epoch()) {
            pending_ = {};
            ++next_;
            return;
        }
        const index_t b = next_++;
        pending_ = std::async(std::launch::async, [this, b] { return make(b); });
    }

    PairBatch make(index_t b) const {
        const index_t first = (b * o_.replicas + o_.replica) * o_.batch_size, n = o_.batch_size, r = o_.resolution;
        PairBatch out;
        out.images = Tensor<float, 4>::empty({n, 3, r, r});
        std::vector<std::string> captions;
        for (index_t k = 0; k < n; ++k) {
            const index_t idx = order_[std::size_t(first + k)];
            const Pair& p = pairs_[std::size_t(idx)];
            try {
                data::SampleRandom rng(o_.seed, epoch_, std::uint64_t(idx));
                const auto x = clip_train_transform(data::read_image(p.image), r, rng).contiguous();  // [3, R, R]
                std::copy_n(x.data(), x.numel(), out.images.data() + k * x.numel());
            } catch (const std::exception& e) {
                WEFT_FAIL("PairLoader: pair ", idx, " ('", p.image.string(), "'): ", e.what());
            }
            captions.push_back(p.caption);
            out.indices.push_back(idx);
        }
        out.tokens = tokenizer_.tokenize(captions, o_.context_length, /*truncate=*/true);
        return out;
    }

    const std::vector<Pair>& pairs_;
    const clip::Tokenizer& tokenizer_;
    PairLoaderOptions o_;
    std::uint64_t epoch_ = 0;
    std::vector<index_t> order_;
    index_t next_ = 0;
    std::future<PairBatch> pending_;
};

}  // namespace clip_pretrain
