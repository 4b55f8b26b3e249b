// The synthetic image-text set: layout, determinism, held-out combinations, and pixels that
// show what the captions say.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <weft/data/image.hpp>

#include "../../examples/clip_pretrain/pairs.hpp"
#include "../../examples/clip_pretrain/synthetic_pairs.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace clip_pretrain;
using clip_pretrain_test::TempDir;

namespace {

std::string file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// Every file under `root`, relative, sorted.
std::vector<std::string> tree(const fs::path& root) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file()) out.push_back(fs::relative(e.path(), root).string());
    std::sort(out.begin(), out.end());
    return out;
}

using Rgb = std::array<int, 3>;

Rgb rgb_of(int colour) {
    const auto& c = synthetic_colours()[std::size_t(colour)];
    return {c.r, c.g, c.b};
}

// Counts of each exact colour in an [H, W, 3] image.
std::map<Rgb, int> histogram(const weft::Tensor<std::uint8_t, 3>& img) {
    std::map<Rgb, int> h;
    for (weft::index_t y = 0; y < img.size(0); ++y)
        for (weft::index_t x = 0; x < img.size(1); ++x) ++h[{img(y, x, 0), img(y, x, 1), img(y, x, 2)}];
    return h;
}

// The scene shows `colour` on `background`: the corners (always outside the shape's circle) are
// the background, and the most frequent colour other than the background is the shape's, on at
// least `min_pixels` pixels.
void check_scene_pixels(const weft::Tensor<std::uint8_t, 3>& img, int colour, int background, int min_pixels) {
    const weft::index_t n = img.size(0);
    for (auto [y, x] : {std::pair<weft::index_t, weft::index_t>{0, 0}, {0, n - 1}, {n - 1, 0}, {n - 1, n - 1}})
        CHECK(Rgb{img(y, x, 0), img(y, x, 1), img(y, x, 2)} == rgb_of(background));
    auto h = histogram(img);
    h.erase(rgb_of(background));
    REQUIRE(!h.empty());
    const auto top = std::max_element(h.begin(), h.end(), [](auto& a, auto& b) { return a.second < b.second; });
    CHECK(top->first == rgb_of(colour));
    CHECK(top->second >= min_pixels);
}

// The caption's template: colour names -> C, shape names -> S, "an" -> "a".
std::string wording(std::string w) {
    auto replace_all = [&](const std::string& from, const std::string& to) {
        for (auto at = w.find(from); at != std::string::npos; at = w.find(from, at + to.size())) w.replace(at, from.size(), to);
    };
    for (const auto& c : synthetic_colours()) replace_all(c.name, "C");
    // Longest names first: "semicircle" is one shape, not "semi" + "circle".
    std::vector<std::string> shapes(synthetic_shape_names().begin(), synthetic_shape_names().end());
    std::sort(shapes.begin(), shapes.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& s : shapes) replace_all(s, "S");
    replace_all("an C", "a C");
    return w;
}

}  // namespace

TEST_CASE("synthetic pairs: the classes, the held-out set and its coverage") {
    const auto classes = synthetic_classes();
    REQUIRE(classes.size() == 48);
    CHECK(std::set<std::string>(classes.begin(), classes.end()).size() == 48);
    CHECK(classes.front() == "red circle");
    std::set<int> heldout_shapes;
    int heldout = 0;
    for (int c = 0; c < synthetic_colour_count; ++c) {
        int per_colour = 0;
        for (int s = 0; s < synthetic_shape_count; ++s)
            if (synthetic_is_heldout(c, s)) {
                ++per_colour;
                ++heldout;
                heldout_shapes.insert(s);
            }
        CHECK(per_colour == 1);  // one per colour, so each colour keeps 11 training shapes
    }
    // Every class shape held out once or more, and never a training-only shape.
    CHECK(heldout_shapes.size() == std::size_t(synthetic_class_shape_count));
    CHECK(*heldout_shapes.rbegin() < synthetic_class_shape_count);
    CHECK(heldout == 8);  // 1/6 of the 48
    CHECK(std::string(indefinite_article("orange")) == "an");
    CHECK(std::string(indefinite_article("oval")) == "an");
    CHECK(std::string(indefinite_article("red")) == "a");
}

TEST_CASE("synthetic pairs: layout, counts, held-out combinations absent from training") {
    TempDir tmp("layout");
    const fs::path out = tmp.path / "set";
    // 88 training images: one cycle through the 8 x 12 - 8 training pairs.
    const auto sum = make_synthetic_pairs(out, {.train = 88, .heldout = 20, .size = 32, .seed = 7});
    CHECK(sum.train == 88);
    CHECK(sum.heldout == 20);
    CHECK(sum.classes == synthetic_classes());
    REQUIRE(sum.heldout_classes.size() == 8);
    REQUIRE(sum.train_pairs.size() == 88);
    // Colour-major, the shapes in name order: red's held-out square is skipped.
    CHECK(sum.train_pairs[0] == "red circle");
    CHECK(sum.train_pairs[5] == "red pentagon");

    CHECK(lines(out / "classes.txt") == sum.classes);
    CHECK(lines(out / "heldout_classes.txt") == sum.heldout_classes);

    const auto tsv = lines(out / "train.tsv");
    REQUIRE(tsv.size() == 88);
    CHECK(tsv[0].rfind("train/00000.png\t", 0) == 0);
    CHECK(tsv[87].rfind("train/00087.png\t", 0) == 0);

    const auto pairs = read_pairs(out / "train.tsv");
    REQUIRE(pairs.size() == 88);
    const std::set<std::string> heldout(sum.heldout_classes.begin(), sum.heldout_classes.end());
    const std::set<std::string> classes(sum.classes.begin(), sum.classes.end());
    std::vector<std::string> every_pair = sum.train_pairs;
    every_pair.insert(every_pair.end(), sum.heldout_classes.begin(), sum.heldout_classes.end());
    std::set<std::string> colours_seen, shapes_seen, pairs_seen, classes_seen, wordings;
    for (const auto& p : pairs) {
        const auto img = weft::data::read_image(p.image);
        CHECK(img.shape() == weft::Shape<3>{32, 32, 3});
        // The caption names exactly one (colour, shape) pair, never a held-out one.
        int named = 0;
        for (const auto& pair : every_pair) {
            // "red circle" as whole words ("red circle on blue", "a red circle", ...).
            const auto at = p.caption.find(pair);
            const auto end = at + pair.size();
            if (at == std::string::npos || (at > 0 && p.caption[at - 1] != ' ') ||
                (end < p.caption.size() && p.caption[end] != ' '))
                continue;
            ++named;
            CHECK(heldout.count(pair) == 0);
            pairs_seen.insert(pair);
            if (classes.count(pair)) classes_seen.insert(pair);
            colours_seen.insert(pair.substr(0, pair.find(' ')));
            shapes_seen.insert(pair.substr(pair.find(' ') + 1));
        }
        CHECK(named == 1);
        wordings.insert(wording(p.caption));
    }
    CHECK(colours_seen.size() == 8);  // every colour and every shape is trained on
    CHECK(shapes_seen.size() == 12);
    CHECK(pairs_seen.size() == 88);    // 88 images cycle once through the training pairs
    CHECK(classes_seen.size() == 40);  // of which 40 are classes
    CHECK(wordings.size() == 5);       // all five caption templates occur

    // heldout/: one folder per held-out class, 20 images shared out 3, 3, 3, 3, 2, 2, 2, 2.
    const auto eval = read_labelled_folder(out / "heldout", sum.classes);
    CHECK(eval.class_names == sum.classes);
    REQUIRE(eval.images.size() == 20);
    std::map<int, int> per_class;
    for (const auto& [path, label] : eval.images) {
        ++per_class[label];
        CHECK(heldout.count(sum.classes[std::size_t(label)]) == 1);
        CHECK(weft::data::read_image(path).shape() == weft::Shape<3>{32, 32, 3});
    }
    CHECK(per_class.size() == 8);
    for (const auto& [label, n] : per_class) CHECK((n == 2 || n == 3));
    CHECK(fs::exists(out / "heldout" / "red_square" / "00000.png"));
    CHECK(fs::exists(out / "heldout" / "red_square" / "00002.png"));
    CHECK(!fs::exists(out / "heldout" / "red_square" / "00003.png"));

    // A second run into the same, now full, folder is refused rather than mixed in.
    CHECK_THROWS_WITH(make_synthetic_pairs(out, {.train = 4, .heldout = 0}), Catch::Contains("not empty"));
}

TEST_CASE("synthetic pairs: same seed, byte-identical files; another seed, other images") {
    TempDir tmp("determinism");
    const SyntheticPairsOptions opt{.train = 12, .heldout = 9, .size = 24, .seed = 3};
    make_synthetic_pairs(tmp.path / "a", opt);
    make_synthetic_pairs(tmp.path / "b", opt);
    auto other = opt;
    other.seed = 4;
    make_synthetic_pairs(tmp.path / "c", other);
    const auto files = tree(tmp.path / "a");
    REQUIRE(files == tree(tmp.path / "b"));
    REQUIRE(files.size() == 12 + 9 + 3);
    int differ = 0;
    for (const auto& f : files) {
        INFO(f);
        CHECK(file_bytes(tmp.path / "a" / f) == file_bytes(tmp.path / "b" / f));
        if (f.rfind("train/", 0) == 0) differ += file_bytes(tmp.path / "a" / f) != file_bytes(tmp.path / "c" / f);
    }
    CHECK(differ == 12);
}

TEST_CASE("synthetic pairs: the shape carries the named colour, the background its own") {
    // Every colour and shape, at the smallest and largest sizes the draws allow (many samples).
    for (int c = 0; c < synthetic_colour_count; ++c)
        for (int s = 0; s < synthetic_shape_count; ++s)
            for (std::uint64_t k = 0; k < 4; ++k) {
                INFO(synthetic_class_text(c, s) << " sample " << k);
                weft::data::SampleRandom rng(11, 0, std::uint64_t(c * 100 + s * 10) + k);
                const auto scene = render_synthetic_scene(c, s, 32, rng);
                CHECK(scene.colour == c);
                CHECK(scene.shape == s);
                CHECK(scene.background != c);
                CHECK(scene.caption.find(synthetic_class_text(c, s)) != std::string::npos);
                // At 32 px the thinnest shape at its smallest (60%) still fully covers 16+ pixels.
                check_scene_pixels(scene.image, c, scene.background, 16);
            }
}

TEST_CASE("synthetic pairs: the written images decode to the rendered scenes") {
    TempDir tmp("decode");
    const fs::path out = tmp.path / "set";
    make_synthetic_pairs(out, {.train = 6, .heldout = 8, .size = 40, .seed = 5});
    const auto pairs = read_pairs(out / "train.tsv");
    for (weft::index_t i = 0; i < 6; ++i) {
        const auto scene = synthetic_pair_scene(5, false, i, 40);
        const auto img = weft::data::read_image(pairs[std::size_t(i)].image);
        REQUIRE(img.shape() == weft::Shape<3>{40, 40, 3});
        CHECK(std::equal(img.data(), img.data() + img.numel(), scene.image.data()));
        CHECK(pairs[std::size_t(i)].caption == scene.caption);
        check_scene_pixels(img, scene.colour, scene.background, 25);
    }
    // Held-out image i is class i mod 8: here image 0 of each class folder.
    const auto held = read_class_list(out / "heldout_classes.txt");
    for (weft::index_t i = 0; i < 8; ++i) {
        const auto scene = synthetic_pair_scene(5, true, i, 40);
        CHECK(synthetic_class_text(scene.colour, scene.shape) == held[std::size_t(i)]);
        CHECK(synthetic_is_heldout(scene.colour, scene.shape));
        std::string folder = held[std::size_t(i)];
        std::replace(folder.begin(), folder.end(), ' ', '_');
        const auto img = weft::data::read_image(out / "heldout" / folder / "00000.png");
        CHECK(std::equal(img.data(), img.data() + img.numel(), scene.image.data()));
    }
}

TEST_CASE("synthetic pairs: bad options are errors") {
    TempDir tmp("bad");
    CHECK_THROWS_WITH(make_synthetic_pairs(tmp.path / "x", {.train = -1}), Catch::Contains("negative"));
    CHECK_THROWS_WITH(make_synthetic_pairs(tmp.path / "y", {.size = 4}), Catch::Contains("image size"));
    std::ofstream(tmp.path / "file") << "x";
    CHECK_THROWS_WITH(make_synthetic_pairs(tmp.path / "file", {.train = 1}), Catch::Contains("not a folder"));
}
