// weft::metrics against hand-computed cases and a NumPy re-implementation of mmseg 0.19's
// intersect_and_union / total_area_to_metrics (tests/reference/metrics.py), plus bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/io/safetensors.hpp>
#include <weft/metrics.hpp>
#include <weft/metrics/json.hpp>

using namespace weft;
using namespace weft::metrics;

namespace {

SafetensorsFile metrics_fixture() {
    return SafetensorsFile::open(std::string(WEFT_SOURCE_DIR) + "/tests/reference/data/metrics.safetensors");
}

// Equal as doubles, NaN equal to NaN: the reference computes the same divisions on the same sums.
bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void check_same(const std::vector<double>& actual, const Tensor<double, 1>& expected, const std::string& what) {
    INFO(what);
    REQUIRE(index_t(actual.size()) == expected.size(0));
    for (index_t i = 0; i < expected.size(0); ++i) {
        INFO("class " << i << ": " << actual[std::size_t(i)] << " vs " << expected(i));
        CHECK(same(actual[std::size_t(i)], expected(i)));
    }
}

template <class Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

auto u8(std::initializer_list<std::initializer_list<std::uint8_t>> rows) { return Tensor<std::uint8_t, 2>::from(rows); }

}  // namespace

TEST_CASE("metrics: hand-computed three-class case with an ignored pixel") {
    // label [[0 0 1] [1 2 255]], pred [[0 1 1] [1 0 2]]: the ignored pixel's prediction 2 is not
    // counted. intersect [1 2 0], label [2 2 1], pred [2 3 0], union [3 3 1].
    ConfusionMatrix cm(3);
    cm.add(u8({{0, 1, 1}, {1, 0, 2}}), u8({{0, 0, 1}, {1, 2, 255}}));
    CHECK(cm.total() == 5);
    CHECK(cm.count(0, 0) == 1);
    CHECK(cm.count(0, 1) == 1);
    CHECK(cm.count(1, 1) == 2);
    CHECK(cm.count(2, 0) == 1);
    const auto m = segmentation_metrics(cm);
    CHECK(m.totals.intersect == std::vector<double>{1, 2, 0});
    CHECK(m.totals.label == std::vector<double>{2, 2, 1});
    CHECK(m.totals.pred_label == std::vector<double>{2, 3, 0});
    CHECK(m.totals.union_ == std::vector<double>{3, 3, 1});
    CHECK(m.iou == std::vector<double>{1.0 / 3, 2.0 / 3, 0.0});
    CHECK(m.acc == std::vector<double>{0.5, 1.0, 0.0});
    CHECK(m.aacc == 3.0 / 5);
    CHECK(m.miou == (1.0 / 3 + 2.0 / 3 + 0.0) / 3);
    CHECK(m.macc == 0.5);
}

TEST_CASE("metrics: absent classes are NaN and left out of the means") {
    // K = 4: class 3 neither labelled nor predicted -> IoU and Acc NaN; class 2 only predicted
    // -> Acc NaN, IoU 0.
    ConfusionMatrix cm(4);
    cm.add(Tensor<std::int64_t, 2>::from({{0, 0, 2, 1}}), Tensor<std::int32_t, 2>::from({{0, 1, 1, 1}}));
    const auto m = segmentation_metrics(cm);
    // intersect [1 1 0 0], label [1 3 0 0], pred [2 1 1 0], union [2 3 1 0]
    CHECK(m.iou[0] == 0.5);
    CHECK(m.iou[1] == 1.0 / 3);
    CHECK(m.iou[2] == 0.0);
    CHECK(std::isnan(m.iou[3]));
    CHECK(m.acc[0] == 1.0);
    CHECK(m.acc[1] == 1.0 / 3);
    CHECK(std::isnan(m.acc[2]));
    CHECK(std::isnan(m.acc[3]));
    CHECK(m.miou == (0.5 + 1.0 / 3 + 0.0) / 3);
    CHECK(m.macc == (1.0 + 1.0 / 3) / 2);
    CHECK(m.aacc == 2.0 / 4);

    ConfusionMatrix empty(3);
    empty.add(u8({{1, 2}}), u8({{255, 255}}));  // everything ignored
    const auto e = segmentation_metrics(empty);
    CHECK(empty.total() == 0);
    CHECK(std::isnan(e.aacc));
    CHECK(std::isnan(e.miou));
    CHECK(std::isnan(e.macc));
}

TEST_CASE("metrics: match mmseg 0.19 (NumPy re-implementation) on random maps with ignored pixels") {
    const auto f = metrics_fixture();
    const auto n = f.get<std::int64_t, 1>("small_count")(0);
    ConfusionMatrix cm(6);
    for (std::int64_t i = 0; i < n; ++i)
        cm.add(f.get<std::uint8_t, 2>("small_pred" + std::to_string(i)),
               f.get<std::uint8_t, 2>("small_label" + std::to_string(i)));
    const auto m = segmentation_metrics(cm);
    check_same(m.totals.intersect, f.get<double, 1>("small_area_intersect"), "area_intersect");
    check_same(m.totals.union_, f.get<double, 1>("small_area_union"), "area_union");
    check_same(m.totals.pred_label, f.get<double, 1>("small_area_pred_label"), "area_pred_label");
    check_same(m.totals.label, f.get<double, 1>("small_area_label"), "area_label");
    check_same(m.iou, f.get<double, 1>("small_IoU"), "IoU");
    check_same(m.acc, f.get<double, 1>("small_Acc"), "Acc");
    CHECK(std::isnan(m.iou[4]));  // the fixture's class 4 is absent from both
    CHECK(std::isnan(m.acc[5]));  // and class 5 only predicted
    CHECK(m.aacc == f.get<double, 1>("small_aAcc")(0));
    // Fewer than 8 classes: NumPy's nanmean sums in order, as weft does, so equality is exact.
    CHECK(m.miou == f.get<double, 1>("small_mIoU")(0));
    CHECK(m.macc == f.get<double, 1>("small_mAcc")(0));

    const auto one =
        intersect_and_union(f.get<std::uint8_t, 2>("small_pred0"), f.get<std::uint8_t, 2>("small_label0"), 6);
    check_same(one.intersect, f.get<double, 1>("small_image0_area_intersect"), "image 0 intersect");
    check_same(one.union_, f.get<double, 1>("small_image0_area_union"), "image 0 union");
    check_same(one.pred_label, f.get<double, 1>("small_image0_area_pred_label"), "image 0 pred");
    check_same(one.label, f.get<double, 1>("small_image0_area_label"), "image 0 label");
}

TEST_CASE("metrics: match mmseg on 150 classes in ADE20K's encoding read with reduce_zero_label") {
    const auto f = metrics_fixture();
    const auto n = f.get<std::int64_t, 1>("ade_count")(0);
    ConfusionMatrix cm(150);
    AreaTotals summed = intersect_and_union(f.get<std::int64_t, 2>("ade_pred0"),
                                            reduce_zero_label(f.get<std::uint8_t, 2>("ade_label0")), 150);
    for (std::int64_t i = 0; i < n; ++i) {
        const auto pred = f.get<std::int64_t, 2>("ade_pred" + std::to_string(i));
        const auto label = reduce_zero_label(f.get<std::uint8_t, 2>("ade_label" + std::to_string(i)));
        cm.add(pred, label);
        if (i > 0) summed += intersect_and_union(pred, label, 150);
    }
    const auto m = segmentation_metrics(cm);
    check_same(m.totals.intersect, f.get<double, 1>("ade_area_intersect"), "area_intersect");
    check_same(m.totals.union_, f.get<double, 1>("ade_area_union"), "area_union");
    check_same(m.totals.pred_label, f.get<double, 1>("ade_area_pred_label"), "area_pred_label");
    check_same(m.totals.label, f.get<double, 1>("ade_area_label"), "area_label");
    check_same(m.iou, f.get<double, 1>("ade_IoU"), "IoU");
    check_same(m.acc, f.get<double, 1>("ade_Acc"), "Acc");
    CHECK(m.aacc == f.get<double, 1>("ade_aAcc")(0));
    // 150 values: NumPy sums pairwise (8 partial sums), weft in order; they agree to rounding.
    CHECK(m.miou == Approx(f.get<double, 1>("ade_mIoU")(0)).epsilon(1e-14));
    CHECK(m.macc == Approx(f.get<double, 1>("ade_mAcc")(0)).epsilon(1e-14));
    // Summing per-image totals (mmseg's pre_eval path) gives the same numbers.
    CHECK(summed.intersect == m.totals.intersect);
    CHECK(summed.union_ == m.totals.union_);
    CHECK(summed.label == m.totals.label);
}

TEST_CASE("metrics: reduce_zero_label and encode_zero_label") {
    const auto r = reduce_zero_label(u8({{0, 1, 150, 255, 254}}));
    CHECK(r(0, 0) == 255);
    CHECK(r(0, 1) == 0);
    CHECK(r(0, 2) == 149);
    CHECK(r(0, 3) == 255);
    CHECK(r(0, 4) == 253);
    const auto e = encode_zero_label(Tensor<std::int64_t, 2>::from({{0, 149}}));
    CHECK(e(0, 0) == 1);
    CHECK(e(0, 1) == 150);
    CHECK(error_of([] { encode_zero_label(Tensor<std::int32_t, 2>::from({{254}})); }).find("class 254") !=
          std::string::npos);
}

TEST_CASE("metrics: bad input names the shapes and the value, and leaves the matrix unchanged") {
    ConfusionMatrix cm(3);
    cm.add(u8({{0}}), u8({{0}}));
    const std::string shapes = error_of([&] { cm.add(u8({{0, 1, 2}, {0, 1, 2}}), u8({{0, 1}, {2, 0}, {1, 2}})); });
    CHECK(shapes.find("[2, 3]") != std::string::npos);
    CHECK(shapes.find("[3, 2]") != std::string::npos);
    const std::string label = error_of([&] { cm.add(u8({{0, 1}, {2, 0}}), u8({{0, 1}, {7, 0}})); });
    CHECK(label.find("label 7") != std::string::npos);
    CHECK(label.find("row 1, column 0") != std::string::npos);
    const std::string negative = error_of([&] {
        cm.add(Tensor<std::int32_t, 2>::from({{0, 1}}), Tensor<std::int32_t, 2>::from({{0, -1}}));
    });
    CHECK(negative.find("label -1") != std::string::npos);
    const std::string pred = error_of([&] { cm.add(u8({{0, 3}}), u8({{0, 1}})); });
    CHECK(pred.find("prediction 3") != std::string::npos);
    CHECK(cm.total() == 1);  // none of the failed images counted, not even their first pixels
    CHECK(cm.count(0, 0) == 1);
    // An out-of-range prediction on an ignored pixel is fine: mmseg never looks at it.
    cm.add(u8({{200}}), u8({{255}}));
    CHECK(cm.total() == 1);

    ConfusionMatrix other(4);
    CHECK(error_of([&] { cm.merge(other); }).find("4 classes") != std::string::npos);
    CHECK(error_of([&] { cm.merge(cm); }).find("itself") != std::string::npos);
    CHECK(error_of([] { ConfusionMatrix bad(0); }).find("positive") != std::string::npos);
}

TEST_CASE("metrics: a custom ignore index, strided views") {
    ConfusionMatrix cm(2, /*ignore_index=*/0);  // class 0 itself ignored
    const auto label = u8({{0, 1, 1}, {1, 0, 1}});
    const auto pred = u8({{1, 1, 0}, {1, 1, 1}});
    cm.add(pred.transpose(0, 1), label.transpose(0, 1));  // [3, 2] non-contiguous views
    CHECK(cm.count(1, 1) == 3);
    CHECK(cm.count(1, 0) == 1);
    CHECK(cm.total() == 4);
}

TEST_CASE("metrics: concurrent add and merge equal serial accumulation") {
    Generator gen(7);
    std::vector<Tensor<std::uint8_t, 2>> preds, labels;
    for (int i = 0; i < 16; ++i) {
        preds.push_back(Tensor<std::uint8_t, 2>::randint(0, 5, {37, 23}, gen));
        auto l = Tensor<std::uint8_t, 2>::randint(0, 6, {37, 23}, gen);
        for (index_t k = 0; k < l.numel(); ++k)
            if (l.data()[k] == 5) l.data()[k] = 255;  // about a sixth ignored
        labels.push_back(l);
    }
    ConfusionMatrix serial(5), shared(5), merged(5);
    for (int i = 0; i < 16; ++i) serial.add(preds[std::size_t(i)], labels[std::size_t(i)]);
    std::vector<std::thread> threads;
    std::vector<ConfusionMatrix> partial(4, ConfusionMatrix(5));
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = t; i < 16; i += 4) {
                shared.add(preds[std::size_t(i)], labels[std::size_t(i)]);
                partial[std::size_t(t)].add(preds[std::size_t(i)], labels[std::size_t(i)]);
            }
            merged.merge(partial[std::size_t(t)]);
        });
    for (auto& th : threads) th.join();
    CHECK(serial.total() > 16 * 37 * 23 / 2);
    CHECK(shared.counts() == serial.counts());
    CHECK(merged.counts() == serial.counts());
    const ConfusionMatrix copy = merged;
    CHECK(copy.counts() == serial.counts());
    // Tables summed elsewhere (an all-reduce over processes) add back in as counts.
    auto table = partial[0].to_tensor();
    for (int t = 1; t < 4; ++t) {
        const auto more = partial[std::size_t(t)].to_tensor();
        for (index_t i = 0; i < table.numel(); ++i) table.data()[i] += more.data()[i];
    }
    ConfusionMatrix from_table(5);
    from_table.add_counts(table);
    CHECK(from_table.counts() == serial.counts());
    CHECK(error_of([&] { from_table.add_counts(Tensor<std::int64_t, 2>::zeros({4, 5})); }).find("[4, 5]") !=
          std::string::npos);
    CHECK(copy.to_tensor()(1, 1) == serial.count(1, 1));
    merged.reset();
    CHECK(merged.total() == 0);
}

TEST_CASE("metrics: results table and JSON") {
    ConfusionMatrix cm(3);
    cm.add(u8({{0, 1, 1}, {1, 0, 0}}), u8({{0, 0, 1}, {1, 0, 0}}));  // class 2 absent
    const auto m = segmentation_metrics(cm);
    CHECK(format_percent(0.451) == "45.10");
    CHECK(format_percent(std::nan("")) == "nan");
    const std::vector<std::string> names{"wall", "bed ", "sky"};
    const std::string table = format_metrics_table(m, names);
    INFO(table);
    // intersect [3 2 0], label [4 2 0], pred [3 3 0], union [4 3 0]
    CHECK(table.find("| wall  | 75.00 |  75.00 |") != std::string::npos);
    CHECK(table.find("| bed   | 66.67 | 100.00 |") != std::string::npos);  // trailing space dropped
    CHECK(table.find("| sky   |   nan |    nan |") != std::string::npos);
    CHECK(table.find("| 83.33 | 70.83 |  87.50 |") != std::string::npos);  // aAcc, mIoU, mAcc
    CHECK(error_of([&] { (void)format_metrics_table(m, std::vector<std::string>{"a"}); }).find("1 class names") !=
          std::string::npos);

    const nlohmann::json j = to_json(m, names);
    CHECK(j["mIoU"].get<double>() == m.miou);
    CHECK(j["aAcc"].get<double>() == 5.0 / 6);
    CHECK(j["mAcc"].get<double>() == 0.875);
    REQUIRE(j["IoU"].size() == 3);
    CHECK(j["IoU"][0].get<double>() == 0.75);
    CHECK(j["IoU"][2].is_null());
    CHECK(j["Acc"][2].is_null());
    CHECK(j["classes"][1] == "bed");
    const auto round_trip = nlohmann::json::parse(j.dump());
    CHECK(round_trip["IoU"][2].is_null());
    CHECK(to_json(segmentation_metrics(ConfusionMatrix(2)))["mIoU"].is_null());
}
