// weft/metrics/json.hpp: SegmentationMetrics as JSON (for result files and plots).
//
// Needs nlohmann-json (Debian: nlohmann-json3-dev), which the rest of weft does not: this header
// is therefore not in the weft/metrics.hpp umbrella; include it where nlohmann_json is linked.
//
//   {"aAcc": 0.8, "mIoU": 0.5556, "mAcc": 0.6667,
//    "IoU": [0.7143, null, ...], "Acc": [0.8333, null, ...], "classes": ["wall", ...]}
//
// Values are fractions (mmseg's, before its x100). NaN (undefined: a class neither labelled nor
// predicted, or never labelled) becomes null, since JSON has no NaN. "classes" is present only
// when names are given (trailing spaces removed, as in the table).
#pragma once

#include <cmath>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "segmentation_metrics.hpp"

namespace weft::metrics {

namespace detail {
inline nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }
}  // namespace detail

inline nlohmann::json to_json(const SegmentationMetrics& m, std::span<const std::string> class_names = {}) {
    WEFT_CHECK(class_names.empty() || class_names.size() == m.iou.size(), "metrics::to_json: ", class_names.size(),
               " class names for metrics of ", m.iou.size(), " classes");
    nlohmann::json j;
    j["aAcc"] = detail::number_or_null(m.aacc);
    j["mIoU"] = detail::number_or_null(m.miou);
    j["mAcc"] = detail::number_or_null(m.macc);
    j["IoU"] = nlohmann::json::array();
    j["Acc"] = nlohmann::json::array();
    for (std::size_t c = 0; c < m.iou.size(); ++c) {
        j["IoU"].push_back(detail::number_or_null(m.iou[c]));
        j["Acc"].push_back(detail::number_or_null(m.acc[c]));
    }
    if (!class_names.empty()) {
        j["classes"] = nlohmann::json::array();
        for (const auto& name : class_names) {
            std::string n = name;
            while (!n.empty() && (n.back() == ' ' || n.back() == '\r')) n.pop_back();
            j["classes"].push_back(n);
        }
    }
    return j;
}

}  // namespace weft::metrics
