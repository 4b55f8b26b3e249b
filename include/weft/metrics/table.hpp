// weft/metrics/table.hpp: the per-class results table and the summary line, as mmseg prints them
// after an evaluation (percentages with 2 decimals; "nan" where a value is undefined).
//
//   std::cout << weft::metrics::format_metrics_table(m, class_names);
//
//   +---------+-------+-------+
//   | Class   |   IoU |   Acc |
//   +---------+-------+-------+
//   | wall    | 71.43 | 83.33 |
//   | ...     |       |       |
//   +---------+-------+-------+
//   |    aAcc |  mIoU |  mAcc |
//   |   80.00 | 55.56 | 66.67 |
//   +---------+-------+-------+
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "segmentation_metrics.hpp"

namespace weft::metrics {

// A fraction as a percentage with 2 decimals ("45.10"), or "nan".
inline std::string format_percent(double fraction) {
    if (std::isnan(fraction)) return "nan";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f", fraction * 100.0);
    return buf;
}

// class_names: one per class (ADE20K's classes.txt order); empty gives "class 0", "class 1", ...
// Trailing spaces in a name (mmseg's 'bed ') are not printed.
inline std::string format_metrics_table(const SegmentationMetrics& m, std::span<const std::string> class_names = {}) {
    const std::size_t k = m.iou.size();
    WEFT_CHECK(class_names.empty() || class_names.size() == k, "format_metrics_table: ", class_names.size(),
               " class names for metrics of ", k, " classes");
    std::vector<std::string> names(k), iou(k), acc(k);
    for (std::size_t c = 0; c < k; ++c) {
        std::string n = class_names.empty() ? "class " + std::to_string(c) : class_names[c];
        while (!n.empty() && (n.back() == ' ' || n.back() == '\r')) n.pop_back();
        names[c] = n;
        iou[c] = format_percent(m.iou[c]);
        acc[c] = format_percent(m.acc[c]);
    }
    const std::string aacc = format_percent(m.aacc), miou = format_percent(m.miou), macc = format_percent(m.macc);
    std::size_t w0 = 5, w1 = 4, w2 = 4;  // the headers "Class", "mIoU", "mAcc"
    for (std::size_t c = 0; c < k; ++c) {
        w0 = std::max(w0, names[c].size());
        w1 = std::max(w1, iou[c].size());
        w2 = std::max(w2, acc[c].size());
    }
    w0 = std::max(w0, aacc.size());
    w1 = std::max(w1, miou.size());
    w2 = std::max(w2, macc.size());
    const auto pad_left = [](const std::string& s, std::size_t w) { return std::string(w - s.size(), ' ') + s; };
    const auto pad_right = [](const std::string& s, std::size_t w) { return s + std::string(w - s.size(), ' '); };
    std::string rule = "+";
    for (std::size_t w : {w0, w1, w2}) rule.append(w + 2, '-').append("+");
    rule += "\n";
    const auto row = [&](const std::string& a, const std::string& b, const std::string& c, bool left) {
        std::string line = "| ";
        line += left ? pad_right(a, w0) : pad_left(a, w0);
        line += " | ";
        line += pad_left(b, w1);
        line += " | ";
        line += pad_left(c, w2);
        line += " |\n";
        return line;
    };
    std::string out = rule + row("Class", "IoU", "Acc", true) + rule;
    for (std::size_t c = 0; c < k; ++c) out += row(names[c], iou[c], acc[c], true);
    out += rule + row("aAcc", "mIoU", "mAcc", false) + row(aacc, miou, macc, false) + rule;
    return out;
}

inline void print_metrics_table(std::ostream& os, const SegmentationMetrics& m,
                                std::span<const std::string> class_names = {}) {
    os << format_metrics_table(m, class_names);
}

}  // namespace weft::metrics
