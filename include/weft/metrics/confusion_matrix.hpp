// weft/metrics/confusion_matrix.hpp: pixel counts of (ground-truth class, predicted class) pairs,
// accumulated over a whole evaluation set.
//
//   weft::metrics::ConfusionMatrix cm(150);                     // ignore_index 255
//   for (each image) cm.add(pred, label);                       // [H, W] class indices each
//   auto m = weft::metrics::segmentation_metrics(cm);           // segmentation_metrics.hpp
//
// Row = ground truth, column = prediction. Pixels whose label equals ignore_index are skipped
// whatever was predicted there (mmseg masks them out before counting). Every other label must lie
// in [0, num_classes), and so must the prediction at every counted pixel: a value outside the
// range is a bug upstream (wrong encoding, a missed reduce_zero_label), so it is an error naming
// the value and the pixel, not a silently dropped count. (mmseg's torch.histc drops such
// predictions from the prediction histogram without a word.)
//
// Thread safety: add() counts an image into a private histogram and then adds it under the
// matrix's lock, so any number of threads may add() images to one matrix. The other pattern,
// one matrix per thread merged at the end, goes through merge(), which is safe as well.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace weft::metrics {

// mmseg's and DenseCLIP's value for "not evaluated" (ADE20K's 0 after reduce_zero_label).
inline constexpr std::int64_t default_ignore_index = 255;

class ConfusionMatrix {
public:
    explicit ConfusionMatrix(std::int64_t num_classes, std::int64_t ignore_index = default_ignore_index)
        : num_classes_(num_classes), ignore_index_(ignore_index) {
        WEFT_CHECK(num_classes > 0, "ConfusionMatrix: num_classes must be positive, got ", num_classes);
        WEFT_CHECK(num_classes <= (std::int64_t(1) << 16), "ConfusionMatrix: num_classes ", num_classes,
                   " would need a ", num_classes, " x ", num_classes, " table; at most 65536 classes");
        counts_.assign(std::size_t(num_classes * num_classes), 0);
    }

    // Copies take a consistent snapshot of `other` (its lock is held while copying).
    ConfusionMatrix(const ConfusionMatrix& other) {
        std::lock_guard lock(other.mutex_);
        num_classes_ = other.num_classes_;
        ignore_index_ = other.ignore_index_;
        counts_ = other.counts_;
    }
    ConfusionMatrix& operator=(const ConfusionMatrix& other) {
        if (this == &other) return *this;
        std::scoped_lock lock(mutex_, other.mutex_);
        num_classes_ = other.num_classes_;
        ignore_index_ = other.ignore_index_;
        counts_ = other.counts_;
        return *this;
    }

    std::int64_t num_classes() const { return num_classes_; }
    std::int64_t ignore_index() const { return ignore_index_; }

    // Counts one image: pred and label are [H, W] class indices of the same shape (any integer
    // element type, any strides). Throws weft::Error, leaving the matrix unchanged, on a shape
    // mismatch or a value out of range.
    template <class P, class L, Device D>
    void add(const Tensor<P, 2, D>& pred, const Tensor<L, 2, D>& label) {
        static_assert(std::same_as<D, Cpu>,
                      "weft: ConfusionMatrix::add takes CPU tensors; copy CUDA "
                      "predictions to the CPU first (.to<Cpu>())");
        static_assert(std::integral<P> && !std::same_as<P, bool> && std::integral<L> && !std::same_as<L, bool>,
                      "weft: ConfusionMatrix::add takes integer class indices (uint8, int32, int64); "
                      "take argmax over the class axis of the logits first");
        WEFT_CHECK(pred.defined() && label.defined(), "ConfusionMatrix::add: undefined prediction or label tensor");
        WEFT_CHECK(pred.shape() == label.shape(), "ConfusionMatrix::add: prediction of shape ", pred.shape(),
                   " and label of shape ", label.shape(), " differ; resize the prediction to the label's size");
        const std::vector<std::int64_t> local = count_image(pred.contiguous(), label.contiguous());
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < local.size(); ++i) counts_[i] += local[i];
    }

    // Adds a table of counts [K, K] (label class, predicted class), as to_tensor() gives it: the
    // sum of every process's table after an all-reduce, for instance.
    void add_counts(const Tensor<std::int64_t, 2>& table) {
        WEFT_CHECK(table.defined() && table.size(0) == num_classes_ && table.size(1) == num_classes_,
                   "ConfusionMatrix::add_counts: a table of shape ", table.shape(), " does not fit ", num_classes_,
                   " classes (expected [", num_classes_, ", ", num_classes_, "])");
        const auto t = table.contiguous();
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            WEFT_CHECK(t.data()[i] >= 0, "ConfusionMatrix::add_counts: negative count ", t.data()[i]);
            counts_[i] += t.data()[i];
        }
    }

    // Adds another matrix's counts (e.g. one accumulated by another thread or process).
    void merge(const ConfusionMatrix& other) {
        WEFT_CHECK(this != &other, "ConfusionMatrix::merge: merging a matrix into itself would double it");
        const ConfusionMatrix snapshot(other);  // other's lock only while copying: no lock-order cycle
        WEFT_CHECK(snapshot.num_classes_ == num_classes_ && snapshot.ignore_index_ == ignore_index_,
                   "ConfusionMatrix::merge: matrices differ (", num_classes_, " classes, ignore_index ", ignore_index_,
                   " vs ", snapshot.num_classes_, " classes, ignore_index ", snapshot.ignore_index_, ")");
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += snapshot.counts_[i];
    }

    void reset() {
        std::lock_guard lock(mutex_);
        std::fill(counts_.begin(), counts_.end(), 0);
    }

    // Pixels labelled `label_class` and predicted `pred_class`.
    std::int64_t count(std::int64_t label_class, std::int64_t pred_class) const {
        WEFT_CHECK(label_class >= 0 && label_class < num_classes_ && pred_class >= 0 && pred_class < num_classes_,
                   "ConfusionMatrix::count: (", label_class, ", ", pred_class, ") is outside [0, ", num_classes_, ")");
        std::lock_guard lock(mutex_);
        return counts_[std::size_t(label_class * num_classes_ + pred_class)];
    }

    // The whole table, row-major [label][pred], num_classes^2 entries.
    std::vector<std::int64_t> counts() const {
        std::lock_guard lock(mutex_);
        return counts_;
    }

    // [num_classes, num_classes] int64 tensor (row = label, column = prediction).
    Tensor<std::int64_t, 2> to_tensor() const {
        return Tensor<std::int64_t, 2>::from_vector(counts(), {num_classes_, num_classes_});
    }

    // Pixels counted so far (ignored ones excluded).
    std::int64_t total() const {
        std::lock_guard lock(mutex_);
        std::int64_t s = 0;
        for (auto c : counts_) s += c;
        return s;
    }

private:
    template <class P, class L>
    std::vector<std::int64_t> count_image(const Tensor<P, 2>& pred, const Tensor<L, 2>& label) const {
        const index_t h = label.size(0), w = label.size(1);
        const P* p = pred.data();
        const L* l = label.data();
        const std::int64_t n = num_classes_, ignore = ignore_index_;
        std::vector<std::int64_t> local(std::size_t(n * n), 0);
        for (index_t i = 0; i < h * w; ++i) {
            const auto lab = std::int64_t(l[i]);
            if (lab == ignore) continue;
            const auto prd = std::int64_t(p[i]);
            if (lab < 0 || lab >= n) [[unlikely]]
                WEFT_FAIL("ConfusionMatrix::add: label ", lab, " at (row ", i / w, ", column ", i % w,
                          ") of a label map of shape ", label.shape(), " is outside [0, ", n,
                          ") and is not the ignore index ", ignore,
                          " (ADE20K annotations need reduce_zero_label first)");
            if (prd < 0 || prd >= n) [[unlikely]]
                WEFT_FAIL("ConfusionMatrix::add: prediction ", prd, " at (row ", i / w, ", column ", i % w,
                          ") of a prediction of shape ", pred.shape(), " is outside [0, ", n, ")");
            ++local[std::size_t(lab * n + prd)];
        }
        return local;
    }

    std::int64_t num_classes_ = 0;
    std::int64_t ignore_index_ = default_ignore_index;
    std::vector<std::int64_t> counts_;
    mutable std::mutex mutex_;
};

}  // namespace weft::metrics
