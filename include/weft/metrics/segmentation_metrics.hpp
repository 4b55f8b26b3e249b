// weft/metrics/segmentation_metrics.hpp: mmseg's semantic segmentation metrics (IoU, Acc, aAcc,
// mIoU, mAcc) from area totals, as mmseg 0.x computes them in
// mmseg/core/evaluation/metrics.py (intersect_and_union, total_area_to_metrics).
//
//   ConfusionMatrix cm(150);
//   for (...) cm.add(pred, reduce_zero_label(encoded_label));
//   SegmentationMetrics m = segmentation_metrics(cm);
//   std::cout << format_metrics_table(m, class_names);   // table.hpp
//
// For each class c, over all evaluated pixels of all images (ignored pixels excluded):
//   intersect[c] = pixels labelled c and predicted c
//   pred[c]      = pixels predicted c,   label[c] = pixels labelled c
//   union[c]     = pred[c] + label[c] - intersect[c]
//   IoU[c] = intersect[c] / union[c]      (NaN when union[c] = 0: c neither labelled nor predicted)
//   Acc[c] = intersect[c] / label[c]      (NaN when label[c] = 0: c never labelled)
//   aAcc   = sum_c intersect[c] / sum_c label[c]
//   mIoU   = nanmean(IoU), mAcc = nanmean(Acc)   (mean over the non-NaN entries; NaN if none)
// Values are fractions; mmseg reports them x100. The areas are summed over the whole set first
// and divided once (not averaged per image), exactly as mmseg does.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "confusion_matrix.hpp"

namespace weft::metrics {

// mmseg's four per-class histograms, summed over images (float64, as mmseg keeps them).
struct AreaTotals {
    std::vector<double> intersect;   // [K]
    std::vector<double> union_;      // [K]  (`union` is a keyword)
    std::vector<double> pred_label;  // [K]
    std::vector<double> label;       // [K]

    std::int64_t num_classes() const { return std::int64_t(intersect.size()); }

    AreaTotals& operator+=(const AreaTotals& o) {
        WEFT_CHECK(o.num_classes() == num_classes(), "AreaTotals: adding totals of ", o.num_classes(),
                   " classes to totals of ", num_classes());
        for (std::size_t c = 0; c < intersect.size(); ++c) {
            intersect[c] += o.intersect[c];
            union_[c] += o.union_[c];
            pred_label[c] += o.pred_label[c];
            label[c] += o.label[c];
        }
        return *this;
    }
};

// Totals from a confusion matrix: the diagonal, the column sums (predictions), the row sums
// (labels), and pred + label - intersect.
inline AreaTotals area_totals(const ConfusionMatrix& cm) {
    const std::int64_t k = cm.num_classes();
    const std::vector<std::int64_t> counts = cm.counts();
    AreaTotals t;
    t.intersect.assign(std::size_t(k), 0.0);
    t.union_.assign(std::size_t(k), 0.0);
    t.pred_label.assign(std::size_t(k), 0.0);
    t.label.assign(std::size_t(k), 0.0);
    std::vector<std::int64_t> row(std::size_t(k), 0), col(std::size_t(k), 0);
    for (std::int64_t l = 0; l < k; ++l)
        for (std::int64_t p = 0; p < k; ++p) {
            const std::int64_t n = counts[std::size_t(l * k + p)];
            row[std::size_t(l)] += n;
            col[std::size_t(p)] += n;
        }
    for (std::int64_t c = 0; c < k; ++c) {
        const auto i = std::size_t(c);
        const std::int64_t inter = counts[std::size_t(c * k + c)];
        t.intersect[i] = double(inter);
        t.pred_label[i] = double(col[i]);
        t.label[i] = double(row[i]);
        t.union_[i] = double(col[i] + row[i] - inter);
    }
    return t;
}

// One image's totals, mmseg's intersect_and_union on class-index maps (ignored pixels skipped).
template <class P, class L, Device D>
AreaTotals intersect_and_union(const Tensor<P, 2, D>& pred, const Tensor<L, 2, D>& label, std::int64_t num_classes,
                               std::int64_t ignore_index = default_ignore_index) {
    ConfusionMatrix cm(num_classes, ignore_index);
    cm.add(pred, label);
    return area_totals(cm);
}

// numpy's nanmean: the mean of the non-NaN values, summed in order; NaN if all are NaN (or none).
inline double nanmean(std::span<const double> values) {
    double sum = 0;
    std::int64_t n = 0;
    for (double v : values)
        if (!std::isnan(v)) {
            sum += v;
            ++n;
        }
    return n > 0 ? sum / double(n) : std::numeric_limits<double>::quiet_NaN();
}

struct SegmentationMetrics {
    std::vector<double> iou;  // [K] per-class IoU, NaN where the union is empty
    std::vector<double> acc;  // [K] per-class accuracy (recall), NaN where the class has no labelled pixel
    double aacc = std::numeric_limits<double>::quiet_NaN();  // all-pixel accuracy
    double miou = std::numeric_limits<double>::quiet_NaN();  // nanmean(iou)
    double macc = std::numeric_limits<double>::quiet_NaN();  // nanmean(acc)
    AreaTotals totals;                                       // what they were computed from

    std::int64_t num_classes() const { return std::int64_t(iou.size()); }
};

// mmseg's total_area_to_metrics(..., metrics=['mIoU']) plus the nanmeans its evaluate() takes.
// 0/0 gives NaN as in torch; x/0 with x > 0 cannot happen (intersect <= label <= union).
inline SegmentationMetrics total_area_to_metrics(const AreaTotals& t) {
    const std::size_t k = t.intersect.size();
    WEFT_CHECK(k > 0 && t.union_.size() == k && t.pred_label.size() == k && t.label.size() == k,
               "total_area_to_metrics: the four histograms must have the same, non-zero length (", k, ", ",
               t.union_.size(), ", ", t.pred_label.size(), ", ", t.label.size(), ")");
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    SegmentationMetrics m;
    m.iou.resize(k);
    m.acc.resize(k);
    double inter_sum = 0, label_sum = 0;
    for (std::size_t c = 0; c < k; ++c) {
        m.iou[c] = t.union_[c] == 0 ? nan : t.intersect[c] / t.union_[c];
        m.acc[c] = t.label[c] == 0 ? nan : t.intersect[c] / t.label[c];
        inter_sum += t.intersect[c];
        label_sum += t.label[c];
    }
    m.aacc = label_sum == 0 ? nan : inter_sum / label_sum;
    m.miou = nanmean(m.iou);
    m.macc = nanmean(m.acc);
    m.totals = t;
    return m;
}

inline SegmentationMetrics segmentation_metrics(const ConfusionMatrix& cm) {
    return total_area_to_metrics(area_totals(cm));
}

}  // namespace weft::metrics
