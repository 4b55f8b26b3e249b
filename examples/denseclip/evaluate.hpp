// examples/denseclip/evaluate.hpp: mIoU of a model over a data set split, as mmseg's evaluation
// computes it (spec §5.4): each image predicted at its original size, the confusion of the whole
// split accumulated, then IoU per class and their mean over the classes that occur.
//
//   auto r = denseclip::evaluate(model, data::Ade20k(root, "validation"), InferenceOptions::from(cfg));
//   std::cout << metrics::format_metrics_table(r.metrics, data::ade20k_class_names());
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>

#include <weft/data/ade20k.hpp>
#include <weft/metrics/confusion_matrix.hpp>
#include <weft/metrics/segmentation_metrics.hpp>

#include "inference.hpp"

namespace denseclip {

struct EvalResult {
    metrics::SegmentationMetrics metrics;
    index_t images = 0;
    double seconds = 0;
};

// `progress(done, total)` is called after each image (for a progress line), if given.
template <Element T>
EvalResult evaluate(DenseClip<T>& model, const data::Ade20k& split, const InferenceOptions& options,
                    const std::function<void(index_t, index_t)>& progress = nullptr) {
    WEFT_CHECK(split.size() > 0, "denseclip evaluate: the split has no images");
    const auto start = std::chrono::steady_clock::now();
    const Inference<T> infer(model, options);
    metrics::ConfusionMatrix cm(model.config().num_classes(), model.config().ignore_index);
    for (index_t i = 0; i < split.size(); ++i) {
        const auto s = split.get(i);  // image [H, W, 3] RGB, label [H, W] 0..149 / 255
        cm.add(infer.predict(s.image), s.label);
        if (progress) progress(i + 1, split.size());
    }
    EvalResult r;
    r.metrics = metrics::segmentation_metrics(cm);
    r.images = split.size();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

}  // namespace denseclip
