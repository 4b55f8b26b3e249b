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
#include <weft/dist/communicator.hpp>
#include <weft/metrics/confusion_matrix.hpp>
#include <weft/metrics/segmentation_metrics.hpp>

#include "inference.hpp"

namespace denseclip {

struct EvalResult {
    metrics::SegmentationMetrics metrics;
    index_t images = 0;
    double seconds = 0;
};

// `progress(done, total)` is called after each image (for a progress line), if given. With
// `comm`, every rank predicts every world-size-th image and the confusion tables are summed over
// the ranks, so each rank returns the metrics of the whole split (`done` counts its own images).
template <Element T, Device D>
EvalResult evaluate(DenseClip<T, D>& model, const data::Ade20k& split, const InferenceOptions& options,
                    const std::function<void(index_t, index_t)>& progress = nullptr,
                    dist::Communicator* comm = nullptr) {
    WEFT_CHECK(split.size() > 0, "denseclip evaluate: the split has no images");
    const auto start = std::chrono::steady_clock::now();
    const Inference<T, D> infer(model, options);
    metrics::ConfusionMatrix cm(model.config().num_classes(), model.config().ignore_index);
    const index_t rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
    for (index_t i = rank, done = 0; i < split.size(); i += world) {
        const auto s = split.get(i);  // image [H, W, 3] RGB, label [H, W] 0..149 / 255
        cm.add(infer.predict(s.image), s.label);
        if (progress) progress(++done, (split.size() - rank + world - 1) / world);
    }
    EvalResult r;
    if (world > 1) {
        auto table = cm.to_tensor().template to<D>();  // [K, K], on the communicator's device
        comm->all_reduce(table);
        metrics::ConfusionMatrix all(cm.num_classes(), cm.ignore_index());
        all.add_counts(table.template to<Cpu>());
        r.metrics = metrics::segmentation_metrics(all);
    } else {
        r.metrics = metrics::segmentation_metrics(cm);
    }
    r.images = split.size();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

}  // namespace denseclip
