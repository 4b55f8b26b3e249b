// ADE20K listing and checks, the transforms' semantics, the pipelines' determinism, and the
// prefetching loader (order, thread-count independence, errors, shutdown).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include <weft/data.hpp>

using namespace weft;
namespace fs = std::filesystem;

namespace {

const std::string sample_dir = std::string(WEFT_SHARED_DIR) + "/data/ade20k/sample";

data::Ade20k sample_set() { return data::Ade20k::from_folders(sample_dir + "/images", sample_dir + "/annotations", true); }

// A scratch copy of the sample set that a test may damage.
struct ScratchSet {
    fs::path root;
    ScratchSet() {
        static int counter = 0;
        root = fs::temp_directory_path() / ("weft_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(root / "images/training");
        fs::create_directories(root / "annotations/training");
        for (const auto& e : fs::directory_iterator(sample_dir + "/images"))
            fs::copy_file(e.path(), root / "images/training" / e.path().filename());
        for (const auto& e : fs::directory_iterator(sample_dir + "/annotations"))
            fs::copy_file(e.path(), root / "annotations/training" / e.path().filename());
        fs::permissions(root, fs::perms::owner_all, fs::perm_options::add);
        for (const auto& e : fs::recursive_directory_iterator(root))
            fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
    }
    ~ScratchSet() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    fs::path annotation(const std::string& stem) const { return root / "annotations/training" / (stem + ".png"); }
};

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const weft::Error& e) {
        return e.what();
    }
    return "(no error)";
}

bool same(const Tensor<float, 4>& a, const Tensor<float, 4>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), std::size_t(a.numel()) * sizeof(float)) == 0;
}
bool same(const Tensor<std::int64_t, 3>& a, const Tensor<std::int64_t, 3>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), std::size_t(a.numel()) * 8) == 0;
}

// A small training pipeline (128 crops) so the tests stay fast.
data::SegTrainPipeline small_pipeline() {
    data::SegTrainPipeline p;
    p.resize.scale_long = 512;
    p.resize.scale_short = 128;
    p.crop.crop_h = p.crop.crop_w = 128;
    return p;
}

}  // namespace

TEST_CASE("Ade20k lists the sample sorted and decodes checked pairs", "[data]") {
    const auto ade = sample_set();
    REQUIRE(ade.size() == 3);
    CHECK(ade.image_path(0).filename() == "ADE_val_00000001.jpg");
    CHECK(ade.image_path(2).filename() == "ADE_val_00000003.jpg");
    CHECK(fs::path(ade.annotation_path(1)).filename() == "ADE_val_00000002.png");
    for (index_t i = 0; i < ade.size(); ++i) {
        const auto s = ade.get(i);
        REQUIRE(s.image.size(0) == s.label.size(0));
        REQUIRE(s.image.size(1) == s.label.size(1));
        const auto raw = data::read_label_png(ade.annotation_path(i));
        index_t ignored = 0;
        for (index_t k = 0; k < raw.numel(); ++k) {
            const int r = raw.data()[k], v = s.label.data()[k];
            CHECK((r == 0 ? v == 255 : v == r - 1));
            ignored += v == 255;
        }
        CHECK(ignored < raw.numel());
    }
    const auto raw_set = data::Ade20k::from_folders(sample_dir + "/images", sample_dir + "/annotations", false);
    CHECK(raw_set.get(0).label.data()[0] == data::read_label_png(ade.annotation_path(0)).data()[0]);
    CHECK_THROWS_WITH(ade.get(3), Catch::Contains("out of range"));
}

TEST_CASE("reduce_zero_label maps 0 to 255 and k to k - 1", "[data]") {
    auto l = Tensor<std::uint8_t, 2>::from_vector({0, 1, 2, 150, 255, 77}, Shape<2>{2, 3});
    const auto r = data::reduce_zero_label(l);
    const std::uint8_t want[] = {255, 0, 1, 149, 255, 76};
    for (int i = 0; i < 6; ++i) CHECK(int(r.data()[i]) == int(want[i]));
}

TEST_CASE("ADE20K class names: built-in table equals classes.txt", "[data]") {
    const auto& names = data::ade20k_class_names();
    REQUIRE(names.size() == 150);
    CHECK(names[0] == "wall");
    CHECK(names[7] == "bed ");
    CHECK(names[149] == "flag");
    CHECK(data::read_class_names(std::string(WEFT_SHARED_DIR) + "/data/ade20k/classes.txt") == names);
    CHECK_THROWS_WITH(data::read_class_names("/nonexistent/classes.txt"), Catch::Contains("/nonexistent/classes.txt"));
}

TEST_CASE("Ade20k with the ADEChallengeData2016 layout and bad inputs", "[data]") {
    SECTION("layout") {
        ScratchSet s;
        data::Ade20k ade(s.root, "training");
        CHECK(ade.size() == 3);
        CHECK(error_of([&] { data::Ade20k(s.root, "validation"); }).find("images/validation") != std::string::npos);
    }
    SECTION("missing annotation") {
        ScratchSet s;
        fs::remove(s.annotation("ADE_val_00000002"));
        const auto msg = error_of([&] { data::Ade20k(s.root, "training"); });
        CHECK(msg.find("ADE_val_00000002.jpg") != std::string::npos);
        CHECK(msg.find("no annotation") != std::string::npos);
    }
    SECTION("size mismatch") {
        ScratchSet s;
        data::write_png(s.annotation("ADE_val_00000003"), Tensor<std::uint8_t, 2>::full(Shape<2>{10, 12}, 3));
        data::Ade20k ade(s.root, "training");
        const auto msg = error_of([&] { ade.get(2); });
        CHECK(msg.find("ADE_val_00000003.png") != std::string::npos);
        CHECK(msg.find("12x10") != std::string::npos);
        CHECK_NOTHROW(ade.get(0));
    }
    SECTION("label value above 150") {
        ScratchSet s;
        data::Ade20k ade(s.root, "training");
        auto label = data::read_label_png(ade.annotation_path(0));
        label(5, 7) = 151;
        data::write_png(s.annotation("ADE_val_00000001"), label);
        const auto msg = error_of([&] { ade.get(0); });
        CHECK(msg.find("ADE_val_00000001.png") != std::string::npos);
        CHECK(msg.find("151 at row 5, column 7") != std::string::npos);
    }
    SECTION("corrupt image") {
        ScratchSet s;
        fs::resize_file(s.root / "images/training/ADE_val_00000002.jpg", 100);
        data::Ade20k ade(s.root, "training");
        CHECK(error_of([&] { ade.get(1); }).find("ADE_val_00000002.jpg") != std::string::npos);
    }
}

TEST_CASE("crop, flip and pad do what mmseg's do", "[data]") {
    auto img = Tensor<std::uint8_t, 3>::empty(Shape<3>{4, 5, 3});
    auto lab = Tensor<std::uint8_t, 2>::empty(Shape<2>{4, 5});
    for (index_t y = 0; y < 4; ++y)
        for (index_t x = 0; x < 5; ++x) {
            lab(y, x) = std::uint8_t(10 * y + x);
            for (index_t k = 0; k < 3; ++k) img(y, x, k) = std::uint8_t(100 * k + 10 * y + x);
        }
    const data::SegSample s{img, lab, "toy"};
    const auto c = data::crop(s, {1, 3, 2, 9});  // the box runs past the right edge: clipped
    REQUIRE(c.image.shape() == Shape<3>{2, 3, 3});
    CHECK(int(c.label(0, 0)) == 12);
    CHECK(int(c.image(1, 2, 2)) == 200 + 24);
    const auto f = data::flip_horizontal(s);
    CHECK(int(f.label(2, 0)) == 24);
    CHECK(int(f.image(3, 4, 1)) == 130);
    // A crop larger than the image keeps it whole, offsets 0.
    data::SampleRandom rng(1, 0, 0);
    const auto box = data::RandomCrop{}.random_box(4, 5, rng);
    CHECK(box.y0 == 0);
    CHECK(box.x0 == 0);
    const auto t = data::pad_to({data::Normalize::clip()(img), lab, "toy"}, 6, 8);
    REQUIRE(t.image.shape() == Shape<3>{3, 6, 8});
    CHECK(t.image(0, 5, 7) == 0.f);
    CHECK(t.image(2, 3, 4) == data::Normalize::clip()(img)(2, 3, 4));
    CHECK(int(t.label(4, 0)) == 255);
    CHECK(int(t.label(3, 4)) == 34);
    CHECK_THROWS_WITH(data::pad_to(t, 5, 8), Catch::Contains("larger than the padded size"));
}

TEST_CASE("SampleRandom: same stream for the same seed, epoch and index", "[data]") {
    data::SampleRandom a(7, 2, 11), b(7, 2, 11), c(7, 3, 11), d(7, 2, 12);
    for (int i = 0; i < 100; ++i) {
        const double x = a.uniform();
        CHECK(x == b.uniform());
        CHECK(x >= 0.0);
        CHECK(x < 1.0);
    }
    CHECK(c.uniform() != a.uniform());
    CHECK(d.uniform() != a.uniform());
    data::SampleRandom r(3, 0, 0);
    int seen[36] = {};
    for (int i = 0; i < 20000; ++i) {
        const auto k = r.randint(-18, 18);
        REQUIRE(k >= -18);
        REQUIRE(k < 18);
        ++seen[k + 18];
    }
    for (int v : seen) CHECK(v > 400);  // every value of numpy's randint(-18, 18) range occurs
}

TEST_CASE("training pipeline: shapes, label range, determinism", "[data]") {
    const auto ade = sample_set();
    const auto pipe = data::SegTrainPipeline{};
    const auto s = ade.get(0);
    data::SampleRandom r1(5, 0, 0), r2(5, 0, 0), r3(6, 0, 0);
    const auto a = pipe(s, r1), b = pipe(s, r2), c = pipe(s, r3);
    REQUIRE(a.image.shape() == Shape<3>{3, 512, 512});
    REQUIRE(a.label.shape() == Shape<2>{512, 512});
    CHECK(std::memcmp(a.image.data(), b.image.data(), std::size_t(a.image.numel()) * 4) == 0);
    CHECK(std::memcmp(a.label.data(), b.label.data(), std::size_t(a.label.numel())) == 0);
    CHECK(std::memcmp(a.image.data(), c.image.data(), std::size_t(a.image.numel()) * 4) != 0);
    for (index_t i = 0; i < a.label.numel(); ++i) REQUIRE((a.label.data()[i] < 150 || a.label.data()[i] == 255));
    // The test pipeline: short side 512 unless the long side would pass 2048; no label change.
    const auto v = data::SegTestPipeline{}(s);
    const auto r = data::rescale_size(s.image.size(1), s.image.size(0), 2048, 512);
    CHECK(v.image.shape() == Shape<3>{3, r.h, r.w});
    CHECK(std::min(r.h, r.w) == 512);
    CHECK(v.label.shape() == s.label.shape());
}

TEST_CASE("SegLoader gives the same batches for any number of workers", "[data]") {
    const auto ade = sample_set();
    const auto pipe = small_pipeline();
    auto run = [&](int workers, std::uint64_t seed, std::uint64_t epoch) {
        data::SegLoader loader(ade, pipe, {.batch_size = 2, .workers = workers, .prefetch = 1, .drop_last = false, .seed = seed});
        loader.start_epoch(epoch);
        std::vector<data::SegBatch> out;
        while (auto b = loader.next()) out.push_back(std::move(*b));
        return out;
    };
    const auto base = run(0, 42, 1);
    REQUIRE(base.size() == 2);
    CHECK(base[0].images.shape() == Shape<4>{2, 3, 128, 128});
    CHECK(base[1].images.shape() == Shape<4>{1, 3, 128, 128});
    std::vector<index_t> seen;
    for (const auto& b : base) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<index_t>{0, 1, 2});
    for (int workers : {1, 3}) {
        INFO(workers << " workers");
        const auto other = run(workers, 42, 1);
        REQUIRE(other.size() == base.size());
        for (std::size_t i = 0; i < base.size(); ++i) {
            CHECK(same(other[i].images, base[i].images));
            CHECK(same(other[i].labels, base[i].labels));
            CHECK(other[i].indices == base[i].indices);
        }
    }
    const auto reseeded = run(2, 43, 1);
    CHECK(!same(reseeded[0].images, base[0].images));
    // Sample i of an epoch has its own stream: its tensors do not depend on its batch position.
    data::SampleRandom rng(42, 1, std::uint64_t(base[0].indices[0]));
    const auto alone = pipe(ade.get(base[0].indices[0]), rng);
    CHECK(std::memcmp(alone.image.data(), base[0].images.data(), std::size_t(alone.image.numel()) * 4) == 0);
}

TEST_CASE("SegLoader rethrows a worker's failure naming the file, and shuts down cleanly", "[data]") {
    ScratchSet s;
    fs::resize_file(s.root / "images/training/ADE_val_00000002.jpg", 100);
    const data::Ade20k ade(s.root, "training");
    for (int workers : {0, 2}) {
        INFO(workers << " workers");
        data::SegLoader loader(ade, small_pipeline(), {.batch_size = 1, .workers = workers, .shuffle = false, .seed = 3});
        loader.start_epoch(0);
        CHECK(loader.next().has_value());
        const auto msg = error_of([&] { loader.next(); });
        CHECK(msg.find("ADE_val_00000002.jpg") != std::string::npos);
        CHECK(msg.find("epoch 0") != std::string::npos);
        CHECK_THROWS_WITH(loader.next(), Catch::Contains("start_epoch"));  // not a hang
        loader.start_epoch(0);
        CHECK(loader.next().has_value());
    }
    // Destroyed mid-epoch with batches in flight: the destructor joins the workers.
    const auto good = sample_set();
    {
        data::SegLoader loader(good, small_pipeline(), {.batch_size = 1, .workers = 3, .prefetch = 2, .seed = 9});
        loader.start_epoch(0);
        CHECK(loader.next().has_value());
    }
    data::SegLoader loader(good, small_pipeline(), {.batch_size = 2, .workers = 2, .seed = 9});
    CHECK(loader.batches_per_epoch() == 1);  // drop_last
    CHECK_THROWS_WITH(loader.next(), Catch::Contains("start_epoch"));
    loader.start_epoch(0);
    loader.start_epoch(1);  // restarting mid-epoch is allowed
    CHECK(loader.next().has_value());
    CHECK(!loader.next().has_value());
}

TEST_CASE("SegLoader prefetches at most `prefetch` batches ahead of the consumer", "[data]") {
    const auto ade = sample_set();
    std::atomic<int> made{0};
    const data::SegTestPipeline test_pipe;
    auto counting = [&](const data::SegSample& s, data::SampleRandom& rng) {
        ++made;
        return test_pipe(s, rng);
    };
    data::SegLoader loader(ade, counting, {.batch_size = 1, .workers = 3, .prefetch = 1, .shuffle = false});
    // Waits until `n` samples were started (the machine may be slow), then a little longer.
    auto settle = [&](int n) {
        for (int i = 0; i < 1000 && made.load() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    };
    loader.start_epoch(0);
    settle(1);
    CHECK(made.load() == 1);  // three idle workers, but only one batch may be ahead
    auto b = loader.next();
    REQUIRE(b.has_value());
    CHECK(b->indices == std::vector<index_t>{0});
    CHECK(b->labels.shape() == Shape<3>{1, ade.get(0).label.size(0), ade.get(0).label.size(1)});  // original size
    settle(2);
    CHECK(made.load() == 2);
    int rest = 0;
    while (loader.next()) ++rest;
    CHECK(rest == 2);
    CHECK(made.load() == 3);
}

TEST_CASE("SegLoader replicas cut each global batch in rank order", "[data]") {
    const auto ade = sample_set();
    const auto pipe = small_pipeline();
    auto run = [&](index_t batch, index_t replica, index_t replicas, int workers) {
        data::SegLoader loader(ade, pipe, {.batch_size = batch, .workers = workers, .seed = 7,
                                           .replica = replica, .replicas = replicas});
        loader.start_epoch(3);
        std::vector<data::SegBatch> out;
        while (auto b = loader.next()) out.push_back(std::move(*b));
        CHECK(index_t(out.size()) == loader.batches_per_epoch());
        return out;
    };
    for (index_t replicas : {2, 3}) {
        INFO(replicas << " replicas");
        const auto whole = run(replicas, 0, 1, 0);  // one process, the global batch
        REQUIRE(whole.size() == 1);
        for (index_t r = 0; r < replicas; ++r) {
            const auto part = run(1, r, replicas, int(r % 2));
            REQUIRE(part.size() == 1);
            REQUIRE(part[0].indices == std::vector<index_t>{whole[0].indices[std::size_t(r)]});
            CHECK(same(part[0].images, whole[0].images.slice(0, r, r + 1).contiguous()));
            CHECK(same(part[0].labels, whole[0].labels.slice(0, r, r + 1).contiguous()));
        }
    }
    CHECK_THROWS_WITH((data::SegLoader(ade, pipe, {.batch_size = 1, .drop_last = false, .replicas = 2})),
                      Catch::Contains("need drop_last"));
    CHECK_THROWS_WITH((data::SegLoader(ade, pipe, {.batch_size = 1, .replica = 2, .replicas = 2})),
                      Catch::Contains("replica 2 is not one of 2"));
}
