// examples/denseclip/commands_data.cpp: `make-synthetic`, `score`, and the metrics printout.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include <weft/data/ade20k.hpp>
#include <weft/data/image.hpp>
#include <weft/metrics/confusion_matrix.hpp>
#include <weft/metrics/json.hpp>
#include <weft/metrics/reduce_zero_label.hpp>
#include <weft/metrics/table.hpp>

#include "commands.hpp"
#include "synthetic.hpp"

namespace denseclip {

namespace fs = std::filesystem;
using namespace weft;

void make_synthetic_command(const fs::path& out, std::int64_t n_train, std::int64_t n_val, int size,
                            std::uint64_t seed) {
    WEFT_CHECK(size >= 32, "make-synthetic: --size ", size, " is too small (at least 32 pixels)");
    const auto set = make_synthetic(out, n_train, n_val, size, seed);
    std::printf("wrote %lld training and %lld validation scenes (%dx%d) under %s\n", (long long)set.n_train,
                (long long)set.n_val, size, size, out.c_str());
    const auto& names = data::ade20k_class_names();
    std::printf("classes (ADE20K ids) and their share of the training pixels:\n");
    double total = 0;
    for (auto c : set.train_pixels) total += double(c);
    for (std::size_t v = 1; v < set.train_pixels.size(); ++v)
        if (set.train_pixels[v] > 0)
            std::printf("  %3zu %-12s %5.1f%%\n", v - 1, names[v - 1].c_str(), 100.0 * double(set.train_pixels[v]) / total);
}

void print_metrics(const metrics::SegmentationMetrics& m, bool json) {
    const auto& names = data::ade20k_class_names();
    const bool named = m.iou.size() == names.size();
    if (json) {
        std::cout << metrics::to_json(m, named ? std::span<const std::string>(names) : std::span<const std::string>())
                         .dump(1)
                  << "\n";
    } else {
        // Rows for the classes that occur (labelled or predicted); mIoU is their mean anyway, and
        // a set such as the synthetic one holds 15 of ADE20K's 150 classes. --json lists all.
        metrics::SegmentationMetrics shown = m;
        shown.iou.clear(), shown.acc.clear();
        std::vector<std::string> shown_names;
        for (std::size_t c = 0; c < m.iou.size(); ++c) {
            if (std::isnan(m.iou[c])) continue;
            shown.iou.push_back(m.iou[c]), shown.acc.push_back(m.acc[c]);
            shown_names.push_back(named ? names[c] : "class " + std::to_string(c));
        }
        std::cout << metrics::format_metrics_table(shown, shown_names);
        if (shown.iou.size() < m.iou.size())
            std::printf("(%zu classes neither labelled nor predicted are not listed)\n", m.iou.size() - shown.iou.size());
        std::printf("mIoU %.2f  mAcc %.2f  aAcc %.2f\n", 100 * m.miou, 100 * m.macc, 100 * m.aacc);
    }
}

// Prediction and annotation PNGs in ADE's encoding (class k stored as k + 1, 0 = "other"),
// matched by file name. Both are reduced (0 -> 255, k + 1 -> k) and compared as mmseg's
// evaluation compares a prediction with a reduced annotation. Every prediction needs its
// annotation (and the other way round), of the same size; values above 150 are errors; so is
// 0 in a prediction, which names no class (mmseg's predictions are always 0..149).
void score_command(const fs::path& pred_dir, const fs::path& gt_dir, bool json) {
    std::map<std::string, fs::path> preds, gts;
    for (const auto& e : fs::directory_iterator(pred_dir))
        if (e.is_regular_file() && e.path().extension() == ".png") preds[e.path().filename().string()] = e.path();
    for (const auto& e : fs::directory_iterator(gt_dir))
        if (e.is_regular_file() && e.path().extension() == ".png") gts[e.path().filename().string()] = e.path();
    WEFT_CHECK(!preds.empty(), "score: no .png predictions in '", pred_dir.string(), "'");
    for (const auto& [name, path] : preds)
        WEFT_CHECK(gts.count(name), "score: the prediction '", path.string(), "' has no annotation '",
                   (gt_dir / name).string(), "'");
    for (const auto& [name, path] : gts)
        WEFT_CHECK(preds.count(name), "score: the annotation '", path.string(), "' has no prediction '",
                   (pred_dir / name).string(), "'");

    constexpr int K = data::Ade20k::num_classes;
    metrics::ConfusionMatrix cm(K);
    for (const auto& [name, pred_path] : preds) {
        const auto pred = data::read_label_png(pred_path);
        const auto gt = data::read_label_png(gts[name]);
        WEFT_CHECK(pred.size(0) == gt.size(0) && pred.size(1) == gt.size(1), "score: the prediction '",
                   pred_path.string(), "' is ", pred.size(1), "x", pred.size(0), " (WxH), its annotation '",
                   gts[name].string(), "' ", gt.size(1), "x", gt.size(0));
        const auto check = [&](const Tensor<std::uint8_t, 2>& t, const fs::path& p, bool is_pred) {
            const std::uint8_t* v = t.data();
            for (index_t i = 0; i < t.numel(); ++i)
                if (v[i] > K || (is_pred && v[i] == 0))
                    WEFT_FAIL("score: '", p.string(), "' holds ", int(v[i]), " at row ", i / t.size(1), ", column ",
                              i % t.size(1), is_pred ? "; predictions must be 1..150 (class k written as k + 1)"
                                                     : "; ADE20K annotations hold 0 (other) to 150");
        };
        check(pred, pred_path, true);
        check(gt, gts[name], false);
        cm.add(metrics::reduce_zero_label(pred), metrics::reduce_zero_label(gt));
    }
    const auto m = metrics::segmentation_metrics(cm);
    if (!json) std::printf("%zu images\n", preds.size());
    print_metrics(m, json);
}

}  // namespace denseclip
