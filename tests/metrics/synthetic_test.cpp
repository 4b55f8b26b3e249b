// examples/denseclip/synthetic.hpp: the procedurally drawn ADE20K-format data set.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <unistd.h>

#include <weft/data/image.hpp>
#include <weft/metrics.hpp>

#include "../../examples/denseclip/synthetic.hpp"

using namespace weft;

namespace {

std::filesystem::path fresh_dir(const std::string& name) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("weft_synthetic_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    return dir;
}

bool same_tensor(const Tensor<std::uint8_t, 3>& a, const Tensor<std::uint8_t, 3>& b) {
    return a.shape() == b.shape() && std::equal(a.data(), a.data() + a.numel(), b.data());
}
bool same_tensor(const Tensor<std::uint8_t, 2>& a, const Tensor<std::uint8_t, 2>& b) {
    return a.shape() == b.shape() && std::equal(a.data(), a.data() + a.numel(), b.data());
}

}  // namespace

TEST_CASE("synthetic: class ids and names are ADE20K's") {
    std::ifstream in(std::string(WEFT_SHARED_DIR) + "/data/ade20k/classes.txt");
    REQUIRE(in);
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);) names.push_back(line);
    REQUIRE(names.size() == 150);
    std::set<int> seen;
    for (const auto& c : denseclip::synthetic_classes()) {
        INFO(c.name);
        REQUIRE(c.index >= 0);
        REQUIRE(c.index < 150);
        CHECK(names[std::size_t(c.index)] == c.name);
        CHECK(seen.insert(c.index).second);
    }
}

TEST_CASE("synthetic: ADE20K layout, equal sizes, label range, every class present") {
    const auto dir = fresh_dir("layout");
    const auto set = denseclip::make_synthetic(dir, 16, 15, 48, 3);
    std::set<int> allowed{0};
    for (const auto& c : denseclip::synthetic_classes()) allowed.insert(c.index + 1);
    for (auto split : {denseclip::Split::training, denseclip::Split::validation}) {
        const std::int64_t n = split == denseclip::Split::training ? 16 : 15;
        const auto& counted = split == denseclip::Split::training ? set.train_pixels : set.val_pixels;
        std::array<std::int64_t, 256> pixels{};
        std::int64_t files = 0;
        for (const auto& entry : std::filesystem::directory_iterator(dir / "images" / denseclip::split_name(split))) {
            INFO(entry.path());
            CHECK(entry.path().extension() == ".jpg");
            ++files;
        }
        CHECK(files == n);
        for (std::int64_t i = 0; i < n; ++i) {
            const std::string stem = denseclip::synthetic_stem(split, i);
            INFO(stem);
            const auto img = data::read_image(dir / "images" / denseclip::split_name(split) / (stem + ".jpg"));
            const auto ann = data::read_label_png(dir / "annotations" / denseclip::split_name(split) / (stem + ".png"));
            CHECK(img.size(0) == ann.size(0));
            CHECK(img.size(1) == ann.size(1));
            CHECK(img.size(0) == 48);
            CHECK(img.size(1) >= 48);
            CHECK(img.size(1) <= 64);
            // The PNG holds exactly what was rendered; the JPEG is close to it.
            const auto scene = denseclip::render_synthetic(3, split, i, 48);
            CHECK(same_tensor(ann, scene.annotation));
            double err = 0;
            for (index_t k = 0; k < img.numel(); ++k)
                err += std::abs(double(img.data()[k]) - double(scene.image.data()[k]));
            CHECK(err / double(img.numel()) < 6.0);
            for (index_t k = 0; k < ann.numel(); ++k) ++pixels[ann.data()[k]];
            // The annotation passes the metric's checks once reduced (ADE's 0 becomes ignored).
            metrics::ConfusionMatrix cm(150);
            CHECK_NOTHROW(cm.add(metrics::reduce_zero_label(ann), metrics::reduce_zero_label(ann)));
        }
        for (int v = 0; v < 256; ++v) {
            INFO("value " << v);
            if (!allowed.count(v))
                CHECK(pixels[std::size_t(v)] == 0);
            else if (v > 0)
                CHECK(pixels[std::size_t(v)] > 0);  // every class appears in each split
            if (v <= 150) CHECK(counted[std::size_t(v)] == pixels[std::size_t(v)]);
        }
    }
    CHECK(std::filesystem::exists(dir / "annotations" / "validation" / "ADE_val_00000015.png"));
    CHECK_FALSE(std::filesystem::exists(dir / "annotations" / "validation" / "ADE_val_00000016.png"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("synthetic: deterministic from the seed, independent of the set size") {
    using denseclip::Split;
    const auto a = denseclip::render_synthetic(11, Split::training, 4, 64);
    const auto b = denseclip::render_synthetic(11, Split::training, 4, 64);
    CHECK(same_tensor(a.image, b.image));
    CHECK(same_tensor(a.annotation, b.annotation));
    CHECK_FALSE(same_tensor(a.annotation, denseclip::render_synthetic(12, Split::training, 4, 64).annotation));
    CHECK_FALSE(same_tensor(a.annotation, denseclip::render_synthetic(11, Split::validation, 4, 64).annotation));
    CHECK_FALSE(same_tensor(a.annotation, denseclip::render_synthetic(11, Split::training, 5, 64).annotation));

    // Files: the same bytes whatever the number of images made alongside.
    const auto d1 = fresh_dir("det1"), d2 = fresh_dir("det2");
    denseclip::make_synthetic(d1, 3, 1, 40, 11);
    denseclip::make_synthetic(d2, 6, 0, 40, 11);
    for (const char* sub : {"images/training/ADE_train_00000003.jpg", "annotations/training/ADE_train_00000003.png"}) {
        INFO(sub);
        std::ifstream f1(d1 / sub, std::ios::binary), f2(d2 / sub, std::ios::binary);
        const std::string s1((std::istreambuf_iterator<char>(f1)), {}), s2((std::istreambuf_iterator<char>(f2)), {});
        CHECK(!s1.empty());
        CHECK(s1 == s2);
    }
    std::filesystem::remove_all(d1);
    std::filesystem::remove_all(d2);
}

TEST_CASE("synthetic: colour and texture tell the classes apart") {
    // Mean colour per class over a few scenes: the classes' colour distributions differ, so no
    // two of the large-area classes have nearly the same mean.
    std::array<std::array<double, 3>, 151> sum{};
    std::array<double, 151> count{};
    for (int i = 0; i < 30; ++i) {
        const auto s = denseclip::render_synthetic(5, denseclip::Split::training, i, 64);
        for (index_t p = 0; p < s.annotation.numel(); ++p) {
            const int v = s.annotation.data()[p];
            for (int c = 0; c < 3; ++c) sum[std::size_t(v)][std::size_t(c)] += s.image.data()[3 * p + c];
            count[std::size_t(v)] += 1;
        }
    }
    std::vector<int> present;
    for (const auto& c : denseclip::synthetic_classes())
        if (count[std::size_t(c.index + 1)] > 0) present.push_back(c.index + 1);
    CHECK(present.size() == denseclip::synthetic_classes().size());
    int close_pairs = 0;
    for (std::size_t i = 0; i < present.size(); ++i)
        for (std::size_t j = i + 1; j < present.size(); ++j) {
            double d = 0;
            for (std::size_t c = 0; c < 3; ++c) {
                const double a = sum[std::size_t(present[i])][c] / count[std::size_t(present[i])];
                const double b = sum[std::size_t(present[j])][c] / count[std::size_t(present[j])];
                d += (a - b) * (a - b);
            }
            if (std::sqrt(d) < 12) ++close_pairs;
        }
    CHECK(close_pairs <= 2);  // (door and table are both wood; texture and shape separate them)
}

TEST_CASE("synthetic: textures differ, smooth sky and ceiling, busy bricks, grass and wood grain") {
    // Mean |horizontal difference| of grey values inside each class (pairs of same-class pixels).
    std::array<double, 151> grad{}, pairs{};
    for (int i = 0; i < 30; ++i) {
        const auto s = denseclip::render_synthetic(9, denseclip::Split::validation, i, 96);
        const index_t h = s.annotation.size(0), w = s.annotation.size(1);
        for (index_t y = 0; y < h; ++y)
            for (index_t x = 0; x + 1 < w; ++x) {
                const int v = s.annotation(y, x);
                if (s.annotation(y, x + 1) != v) continue;
                double d = 0;
                for (index_t c = 0; c < 3; ++c) d += double(s.image(y, x + 1, c)) - double(s.image(y, x, c));
                grad[std::size_t(v)] += std::abs(d) / 3;
                pairs[std::size_t(v)] += 1;
            }
    }
    const auto busy = [&](int cls) { return grad[std::size_t(cls + 1)] / pairs[std::size_t(cls + 1)]; };
    namespace id = denseclip::synthetic_ids;
    INFO("sky " << busy(id::sky) << ", ceiling " << busy(id::ceiling) << ", building " << busy(id::building)
                << ", grass " << busy(id::grass) << ", door " << busy(id::door));
    CHECK(busy(id::sky) < 6);
    CHECK(busy(id::ceiling) < 6);
    CHECK(busy(id::building) > 3 * busy(id::sky));
    CHECK(busy(id::grass) > 3 * busy(id::sky));
    CHECK(busy(id::door) > 3 * busy(id::ceiling));
}

TEST_CASE("synthetic: bad arguments") {
    CHECK_THROWS_WITH(denseclip::render_synthetic(0, denseclip::Split::training, 0, 8), Catch::Contains("size 8"));
    CHECK_THROWS_WITH(denseclip::make_synthetic(fresh_dir("bad"), -1, 0, 64, 0), Catch::Contains("negative"));
    CHECK_THROWS_WITH(data::write_jpeg(fresh_dir("bad") / "x.jpg", Tensor<std::uint8_t, 3>::zeros({4, 4, 2})),
                      Catch::Contains("2 channels"));
    CHECK_THROWS_WITH(data::encode_jpeg(Tensor<std::uint8_t, 3>::zeros({4, 4, 3}), 0), Catch::Contains("quality 0"));
}

TEST_CASE("write_jpeg writes a JPEG that reads back close to the input, atomically") {
    const auto dir = fresh_dir("jpeg");
    std::filesystem::create_directories(dir);
    auto img = Tensor<std::uint8_t, 3>::empty({20, 30, 3});
    for (index_t y = 0; y < 20; ++y)
        for (index_t x = 0; x < 30; ++x) {
            img(y, x, 0) = std::uint8_t(8 * x);
            img(y, x, 1) = std::uint8_t(12 * y);
            img(y, x, 2) = 128;
        }
    data::write_jpeg(dir / "g.jpg", img);
    CHECK_FALSE(std::filesystem::exists(dir / "g.jpg.tmp"));
    const auto back = data::read_image(dir / "g.jpg");
    REQUIRE(back.shape() == img.shape());
    int worst = 0;
    for (index_t k = 0; k < img.numel(); ++k)
        worst = std::max(worst, std::abs(int(back.data()[k]) - int(img.data()[k])));
    CHECK(worst <= 8);
    const auto grey = data::encode_jpeg(Tensor<std::uint8_t, 3>::full({8, 8, 1}, 77), 90);
    const auto g = data::decode_image(grey);
    CHECK(std::abs(int(g(3, 3, 0)) - 77) <= 1);
    CHECK_THROWS_WITH(data::write_jpeg(dir / "missing" / "x.jpg", img), Catch::Contains("x.jpg.tmp"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("metrics: scoring ADE-encoded prediction PNGs against the synthetic annotations (docs/metrics.md)") {
    const auto root = fresh_dir("score");
    denseclip::make_synthetic(root, 0, 15, 40, 21);
    // Predictions in ADE's encoding: the annotations themselves, with class wall (PNG 1) painted
    // as floor (PNG 4) in one image, written where a predict command would put them.
    const auto pred_dir = root / "pred";
    std::filesystem::create_directories(pred_dir);
    std::vector<std::pair<std::filesystem::path, std::filesystem::path>> files;
    std::int64_t wall_pixels = 0;
    for (std::int64_t i = 0; i < 15; ++i) {
        const std::string stem = denseclip::synthetic_stem(denseclip::Split::validation, i);
        const auto label_png = root / "annotations" / "validation" / (stem + ".png");
        auto pred = data::read_label_png(label_png).clone();
        if (i == 0)
            for (index_t k = 0; k < pred.numel(); ++k)
                if (pred.data()[k] == 1) pred.data()[k] = 4, ++wall_pixels;
        data::write_png(pred_dir / (stem + ".png"), pred);
        files.emplace_back(pred_dir / (stem + ".png"), label_png);
    }
    REQUIRE(wall_pixels > 0);  // image 0 features class 0, wall
    std::vector<std::string> class_names(150);
    for (int c = 0; c < 150; ++c) class_names[std::size_t(c)] = "class " + std::to_string(c);

    // as in docs/metrics.md
    using namespace weft::metrics;
    ConfusionMatrix cm(150);  // ignore_index 255
    for (const auto& [pred_png, label_png] : files) {
        auto label = reduce_zero_label(weft::data::read_label_png(label_png));  // [H, W], 0 -> 255, v -> v-1
        auto pred = reduce_zero_label(weft::data::read_label_png(pred_png));    // same encoding
        cm.add(pred, label);                                                    // any thread; counts this image
    }
    SegmentationMetrics m = segmentation_metrics(cm);

    const std::string table = format_metrics_table(m, class_names);
    namespace id = denseclip::synthetic_ids;
    const double wall_total = m.totals.label[id::wall];
    CHECK(m.totals.intersect[id::wall] == wall_total - double(wall_pixels));
    CHECK(m.acc[id::wall] == (wall_total - double(wall_pixels)) / wall_total);
    CHECK(m.iou[id::floor] == m.totals.label[id::floor] / (m.totals.label[id::floor] + double(wall_pixels)));
    CHECK(m.iou[id::sky] == 1.0);
    CHECK(std::isnan(m.iou[id::sky + 100]));  // a class the generator never draws
    int defined = 0;
    for (double v : m.iou) defined += !std::isnan(v);
    CHECK(defined == 15);
    CHECK(m.aacc == 1.0 - double(wall_pixels) / double(cm.total()));
    CHECK(table.find("| class 2   | 100.00 | 100.00 |") != std::string::npos);
    std::filesystem::remove_all(root);
}
