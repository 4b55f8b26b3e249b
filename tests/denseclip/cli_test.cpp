// The denseclip command (examples/denseclip) end to end on a small synthetic set with the
// smallest config (tests/denseclip/cli.json): every subcommand, resume continuing exactly where
// an interrupted run stopped, `score` against mmseg's metric (tests/reference/metrics.py), and
// every bad input the issue lists failing with the file or key named.
#include <catch2/catch.hpp>

#ifdef WEFT_DENSECLIP_EXE

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <weft/data/image.hpp>
#include <weft/io/safetensors.hpp>

#include "../../examples/denseclip/config.hpp"
#include "support/fixture.hpp"

using namespace weft;
namespace fs = std::filesystem;

namespace {

// One folder per process (ctest runs each case as its own process, two at a time), made at start
// and removed at exit.
const fs::path dir = [] {
    const auto d = fs::temp_directory_path() / ("weft_denseclip_cli_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
}();
const struct RemoveAtExit {
    ~RemoveAtExit() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
} remove_at_exit;
const std::string vocab = std::string(WEFT_SHARED_DIR) + "/data/clip/bpe_simple_vocab_16e6.txt.gz";
const std::string config = std::string(WEFT_SOURCE_DIR) + "/tests/denseclip/cli.json";

struct Run {
    int status;
    std::string out, err;
};

// Runs `launcher` denseclip `args` (launcher: empty, or mpirun and its options).
Run run(const std::string& args, const std::string& launcher = "") {
    const std::string cmd = std::string("WEFT_CLIP_VOCAB='") + vocab + "' " + launcher + " '" + WEFT_DENSECLIP_EXE +
                            "' " + args + " > '" + (dir / "stdout.txt").string() + "' 2> '" +
                            (dir / "stderr.txt").string() + "'";
    const int status = std::system(cmd.c_str());
    auto slurp = [](const fs::path& p) {
        std::ostringstream s;
        s << std::ifstream(p).rdbuf();
        return s.str();
    };
    return {status, slurp(dir / "stdout.txt"), slurp(dir / "stderr.txt")};
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// A synthetic set made once and shared by the cases (copied where a case damages it).
const fs::path& synthetic() {
    static const fs::path root = [] {
        const fs::path r = dir / "synthetic";
        const auto res = run("make-synthetic --out " + q(r) + " --train 6 --val 3 --size 64 --seed 3");
        REQUIRE(res.status == 0);
        return r;
    }();
    return root;
}

// A trained checkpoint, made once.
const fs::path& trained() {
    static const fs::path ck = [] {
        const fs::path work = dir / "work_full";
        const auto r = run("train --config " + q(config) + " --data-root " + q(synthetic()) + " --work-dir " + q(work));
        INFO(r.err);
        REQUIRE(r.status == 0);
        return work / "iter_4.safetensors";
    }();
    return ck;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
    std::vector<nlohmann::json> out;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
}

fs::path copy_of_synthetic(const std::string& name) {
    const fs::path to = dir / name;
    fs::remove_all(to);
    fs::copy(synthetic(), to, fs::copy_options::recursive);
    return to;
}

void expect_failure(const Run& r, const std::string& needle) {
    INFO("stderr: " << r.err);
    CHECK(r.status != 0);
    CHECK(r.err.find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("denseclip's released configs hold the spec's numbers", "[denseclip]") {
    const std::string root = std::string(WEFT_SOURCE_DIR) + "/examples/denseclip/configs/";
    for (const char* name : {"rn50", "rn101", "vit-b16"}) {
        INFO(name);
        const auto c = denseclip::read_config(root + name + ".json");
        const bool vit = std::string(name) == "vit-b16";
        CHECK(c.is_vit() == vit);
        CHECK(c.embed_dim() == (std::string(name) == "rn50" ? 1024 : 512));
        CHECK(c.score_concat_index == (vit ? 2 : 3));
        CHECK(c.neck_in_channels == (vit ? std::vector<index_t>{768, 768, 918, 768}
                                         : std::vector<index_t>{256, 512, 1024, 2198}));
        CHECK(c.text.context_length == 13);
        CHECK(c.n_ctx == 8);
        CHECK(c.context_decoder.transformer_layers == 3);
        CHECK(c.context_decoder.transformer_width == 256);
        CHECK(c.gamma_init == 1e-4);
        CHECK(c.tau == 0.07);
        CHECK(c.identity_weight == 0.4);
        CHECK(c.train.iters == 80000);
        CHECK(c.train.batch_size == 32);
        CHECK(c.train.lr == 1e-4);
        CHECK(c.train.backbone_lr_mult == 0.1);
        CHECK(c.train.text_encoder_lr_mult == 0.0);
        CHECK(c.train.warmup_iters == 1500);
        CHECK(c.data.crop_size[0] == (vit ? 640 : 512));
        CHECK(c.test.stride[0] == (vit ? 426 : 341));
        if (vit) {
            const auto& b = std::get<denseclip::ViTBackboneConfig>(c.backbone);
            CHECK(b.vit.drop_path_rate == 0.1);
            CHECK(b.vit.drop_path_axis == 1);
            CHECK(b.out_indices == std::vector<index_t>{3, 5, 7, 11});
        } else {
            const auto& b = std::get<denseclip::ResNetBackboneConfig>(c.backbone);
            CHECK(b.layers[2] == (std::string(name) == "rn50" ? 6 : 23));
        }
    }
    CHECK_NOTHROW(denseclip::read_config(root + "tiny.json"));
    // A neck that does not fit the backbone is refused when the file is read, naming the key.
    auto j = nlohmann::json::parse(std::ifstream(root + "rn50.json"));
    j["neck"]["in_channels"][3] = 2048;
    try {
        denseclip::parse_config(j, "edited rn50");
        FAIL("a wrong neck was accepted");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("neck.in_channels") != std::string::npos);
        CHECK(std::string(e.what()).find("2198") != std::string::npos);
    }
}

TEST_CASE("denseclip make-synthetic writes ADE20K's layout deterministically", "[denseclip][cli]") {
    const auto& root = synthetic();
    for (const char* split : {"training", "validation"}) {
        const auto n = std::distance(fs::directory_iterator(root / "images" / split), fs::directory_iterator());
        CHECK(n == (std::string(split) == "training" ? 6 : 3));
    }
    const auto label = data::read_label_png(root / "annotations" / "training" / "ADE_train_00000001.png");
    CHECK(label.size(0) == 64);
    for (index_t i = 0; i < label.numel(); ++i) REQUIRE(label.data()[i] <= 150);
    const fs::path again = dir / "synthetic_again";
    REQUIRE(run("make-synthetic --out " + q(again) + " --train 6 --val 3 --size 64 --seed 3").status == 0);
    const auto a = data::read_label_png(again / "annotations" / "validation" / "ADE_val_00000002.png");
    const auto b = data::read_label_png(root / "annotations" / "validation" / "ADE_val_00000002.png");
    CHECK(std::equal(a.data(), a.data() + a.numel(), b.data()));
}

TEST_CASE("denseclip score equals mmseg's metric", "[denseclip][cli]") {
    // The three ADE-encoded maps of tests/reference/metrics.py, as prediction and annotation PNGs.
    const auto f = test::fixture("metrics");
    const fs::path pred = dir / "score_pred", gt = dir / "score_gt";
    fs::create_directories(pred);
    fs::create_directories(gt);
    for (int i = 0; i < 3; ++i) {
        const auto p = f.get<std::int64_t, 2>("ade_pred" + std::to_string(i));
        Tensor<std::uint8_t, 2> encoded = cast<std::uint8_t>(p + std::int64_t(1));
        const std::string name = "img" + std::to_string(i) + ".png";
        data::write_png(pred / name, encoded);
        data::write_png(gt / name, f.get<std::uint8_t, 2>("ade_label" + std::to_string(i)));
    }
    const auto r = run("score --pred " + q(pred) + " --gt " + q(gt) + " --json");
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["mIoU"].get<double>() == Approx(f.get<double, 1>("ade_mIoU")(0)).epsilon(1e-12));
    CHECK(j["mAcc"].get<double>() == Approx(f.get<double, 1>("ade_mAcc")(0)).epsilon(1e-12));
    CHECK(j["aAcc"].get<double>() == Approx(f.get<double, 1>("ade_aAcc")(0)).epsilon(1e-12));
    const auto iou = f.get<double, 1>("ade_IoU");
    REQUIRE(j["IoU"].size() == 150);
    for (int c = 0; c < 150; ++c) {
        if (std::isnan(iou(c))) CHECK(j["IoU"][c].is_null());
        else CHECK(j["IoU"][c].get<double>() == Approx(iou(c)).epsilon(1e-12));
    }

    // A prediction without its annotation, and a prediction of 0 ("other"), are errors.
    fs::copy_file(pred / "img0.png", pred / "extra.png");
    expect_failure(run("score --pred " + q(pred) + " --gt " + q(gt)), "extra.png");
    fs::remove(pred / "extra.png");
    data::write_png(pred / "img1.png", Tensor<std::uint8_t, 2>::zeros({12, 9}));
    expect_failure(run("score --pred " + q(pred) + " --gt " + q(gt)), "img1.png");
}

TEST_CASE("denseclip train writes logs, curves and checkpoints, and resumes exactly", "[denseclip][cli]") {
    const auto& ck = trained();
    const fs::path full = ck.parent_path();
    for (const char* f : {"log.jsonl", "eval.jsonl", "loss.svg", "miou.svg", "iter_2.safetensors",
                          "iter_4.safetensors", "latest"})
        CHECK(fs::exists(full / f));
    const auto log = read_jsonl(full / "log.jsonl");
    REQUIRE(log.size() == 4);
    for (const char* key : {"iter", "loss", "loss_decode", "loss_aux", "lr"}) CHECK(log[0].contains(key));
    CHECK(log[3]["iter"] == 4);
    CHECK(log[0]["loss"].get<double>() ==
          Approx(log[0]["loss_decode"].get<double>() + log[0]["loss_aux"].get<double>()).epsilon(1e-6));
    const auto ev = read_jsonl(full / "eval.jsonl");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["mIoU"].get<double>() >= 0);

    // Stop after 2 of 4 iterations, resume: the same losses as the uninterrupted run.
    const fs::path split = dir / "work_split";
    const std::string args = "train --config " + q(config) + " --data-root " + q(synthetic()) + " --work-dir " + q(split);
    auto r = run(args + " --stop-at 2");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(read_jsonl(split / "log.jsonl").size() == 2);
    r = run(args + " --resume");
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto resumed = read_jsonl(split / "log.jsonl");
    REQUIRE(resumed.size() == 4);
    for (int i = 0; i < 4; ++i) {
        INFO("iteration " << i + 1);
        CHECK(resumed[i]["loss"].get<double>() == Approx(log[i]["loss"].get<double>()).epsilon(1e-6));
        CHECK(resumed[i]["lr"].get<double>() == Approx(log[i]["lr"].get<double>()).epsilon(1e-12));
    }

    // Resuming where nothing was saved says so.
    expect_failure(run("train --config " + q(config) + " --data-root " + q(synthetic()) + " --work-dir " +
                       q(dir / "work_empty") + " --resume"),
                   "latest");
}

TEST_CASE("denseclip eval and predict read a checkpoint", "[denseclip][cli]") {
    const auto& ck = trained();
    for (const std::string extra : {"", " --mode whole --aug"}) {
        const auto r = run("eval --config " + q(config) + " --data-root " + q(synthetic()) + " --checkpoint " + q(ck) +
                           " --json" + extra);
        INFO(r.err);
        REQUIRE(r.status == 0);
        const auto j = nlohmann::json::parse(r.out);
        CHECK(j["images"] == 3);
        CHECK(j["IoU"].size() == 150);
        CHECK(j["mIoU"].get<double>() >= 0);
        CHECK(j["aAcc"].get<double>() <= 1);
    }
    const auto table = run("eval --config " + q(config) + " --data-root " + q(synthetic()) + " --checkpoint " + q(ck));
    REQUIRE(table.status == 0);
    CHECK(table.out.find("| wall") != std::string::npos);
    CHECK(table.out.find("mIoU") != std::string::npos);

    const fs::path out = dir / "predictions";
    const fs::path images = synthetic() / "images" / "validation";
    const auto r = run("predict --config " + q(config) + " --checkpoint " + q(ck) + " --out " + q(out) + " " +
                       q(images / "ADE_val_00000001.jpg") + " " + q(images / "ADE_val_00000002.jpg") + " " +
                       q(images / "ADE_val_00000003.jpg"));
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto pred = data::read_label_png(out / "ADE_val_00000001.png");
    CHECK(pred.size(0) == 64);
    for (index_t i = 0; i < pred.numel(); ++i) REQUIRE((pred.data()[i] >= 1 && pred.data()[i] <= 150));
    CHECK(data::read_image(out / "overlay" / "ADE_val_00000001.png").size(2) == 3);
    // The predictions score against the annotations (the same numbers as eval's whole-image
    // mode would give is not claimed: eval slides; this checks the files fit `score`).
    const auto s = run("score --pred " + q(out) + " --gt " + q(synthetic() / "annotations" / "validation") + " --json");
    INFO(s.err);
    CHECK(s.status == 0);
}

TEST_CASE("denseclip trains and evaluates with pre-model prompting", "[denseclip][cli]") {
    auto j = nlohmann::json::parse(std::ifstream(config));
    j["prompting"] = "pre";
    const fs::path pre_config = dir / "pre.json";
    std::ofstream(pre_config) << j.dump();
    const fs::path work = dir / "work_pre";
    auto r = run("train --config " + q(pre_config) + " --data-root " + q(synthetic()) + " --work-dir " + q(work) +
                 " --iters 2");
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto f = SafetensorsFile::open(work / "iter_2.safetensors");
    CHECK(f.contains("pre_prompt.queries"));
    CHECK(f.contains("pre_prompt.decoder.out_proj.1.weight"));
    CHECK_FALSE(f.contains("gamma"));
    CHECK_FALSE(f.contains("context_decoder.out_proj.1.weight"));
    r = run("eval --config " + q(pre_config) + " --data-root " + q(synthetic()) + " --checkpoint " +
            q(work / "iter_2.safetensors") + " --json");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(nlohmann::json::parse(r.out)["images"] == 3);
    // A post-model checkpoint does not load into the pre-model program: the keys are named.
    r = run("eval --config " + q(pre_config) + " --data-root " + q(synthetic()) + " --checkpoint " + q(trained()));
    expect_failure(r, "pre_prompt.queries");
}

#ifdef WEFT_MPIEXEC
// The data-parallel done-when of issue 7: the tiny model trained by two processes with 2 images
// each logs the losses one process logs with 4 images, from the same seed and data.
TEST_CASE("denseclip train under mpirun -np 2 logs the losses of one process with the whole batch",
          "[denseclip][cli][mpi]") {
    const std::string tiny = std::string(WEFT_SOURCE_DIR) + "/examples/denseclip/configs/tiny.json";
    const auto train = [&](int np, int batch, const fs::path& work) {
        const auto r = run("train --config " + q(tiny) + " --data-root " + q(synthetic()) + " --work-dir " + q(work) +
                               " --iters 4 --batch-size " + std::to_string(batch) +
                               " --log-interval 1 --eval-interval 0 --workers 0 --seed 5",
                           std::string(WEFT_MPIEXEC) + " -np " + std::to_string(np) + " -x WEFT_CLIP_VOCAB" +
                               (np > 1 ? " -x WEFT_NUM_THREADS=1" : ""));
        INFO(r.err);
        REQUIRE(r.status == 0);
        return r;
    };
    const auto one = train(1, 4, dir / "mpi_np1");
    const auto two = train(2, 2, dir / "mpi_np2");
    CHECK(two.err.find("data-parallel over 2 ranks (mpi): 2 images per rank, 4 per iteration") != std::string::npos);
    const auto a = read_jsonl(dir / "mpi_np1" / "log.jsonl"), b = read_jsonl(dir / "mpi_np2" / "log.jsonl");
    REQUIRE(a.size() == 4);
    REQUIRE(b.size() == 4);  // rank 0 alone writes the log
    for (std::size_t i = 0; i < a.size(); ++i)
        for (const char* key : {"loss", "loss_decode", "loss_aux"}) {
            INFO("iteration " << i + 1 << ", " << key);
            const double x = a[i][key], y = b[i][key];
            CHECK(std::abs(x - y) <= 1e-5 * std::abs(x));
        }
    // The evaluation after the last iteration is shared out over the ranks and summed.
    const auto ea = read_jsonl(dir / "mpi_np1" / "eval.jsonl"), eb = read_jsonl(dir / "mpi_np2" / "eval.jsonl");
    REQUIRE(ea.size() == 1);
    REQUIRE(eb.size() == 1);
    CHECK(std::abs(double(ea[0]["aAcc"]) - double(eb[0]["aAcc"])) < 1e-3);
    CHECK(fs::exists(dir / "mpi_np2" / "iter_4.safetensors"));
}
#endif

TEST_CASE("denseclip names the file or key of every bad input", "[denseclip][cli]") {
    const auto& ck = trained();
    const std::string eval_args = "eval --config " + q(config) + " --checkpoint " + q(ck) + " --data-root ";

    SECTION("a corrupt image") {
        const auto root = copy_of_synthetic("bad_image");
        const auto img = root / "images" / "validation" / "ADE_val_00000002.jpg";
        std::ofstream(img, std::ios::binary) << "this is not a JPEG";
        expect_failure(run(eval_args + q(root)), "ADE_val_00000002.jpg");
    }
    SECTION("a missing annotation") {
        const auto root = copy_of_synthetic("bad_missing");
        fs::remove(root / "annotations" / "training" / "ADE_train_00000004.png");
        expect_failure(run("train --config " + q(config) + " --data-root " + q(root) + " --work-dir " +
                           q(dir / "work_bad")),
                       "ADE_train_00000004");
    }
    SECTION("a label value above 150") {
        const auto root = copy_of_synthetic("bad_label");
        auto label = Tensor<std::uint8_t, 2>::full({64, 64}, std::uint8_t(3));
        label(10, 20) = 151;
        data::write_png(root / "annotations" / "validation" / "ADE_val_00000001.png", label);
        expect_failure(run(eval_args + q(root)), "ADE_val_00000001.png");
    }
    SECTION("an annotation whose size differs from its image") {
        const auto root = copy_of_synthetic("bad_size");
        data::write_png(root / "annotations" / "validation" / "ADE_val_00000003.png",
                        Tensor<std::uint8_t, 2>::full({64, 63}, std::uint8_t(1)));
        expect_failure(run(eval_args + q(root)), "ADE_val_00000003.png");
    }
    SECTION("a checkpoint with a missing or mis-shaped key") {
        const auto f = SafetensorsFile::open(ck);
        // The model's tensors (all float) copied, but for "gamma", dropped or mis-shaped.
        const auto rewrite = [&](const fs::path& to, bool drop) {
            std::vector<SafetensorsEntry> entries;
            for (const auto& name : f.names()) {
                if (name.starts_with("optimizer.")) continue;
                if (name == "gamma") {
                    if (!drop) entries.emplace_back(name, Tensor<float, 1>::zeros({17}));
                    continue;
                }
                switch (f.info(name).rank()) {
                    case 0: entries.emplace_back(name, f.get<float, 0>(name)); break;
                    case 1: entries.emplace_back(name, f.get<float, 1>(name)); break;
                    case 2: entries.emplace_back(name, f.get<float, 2>(name)); break;
                    case 3: entries.emplace_back(name, f.get<float, 3>(name)); break;
                    default: entries.emplace_back(name, f.get<float, 4>(name)); break;
                }
            }
            save_safetensors(to, entries, f.metadata());
        };
        rewrite(dir / "missing_key.safetensors", true);
        auto r = run("eval --config " + q(config) + " --data-root " + q(synthetic()) + " --checkpoint " +
                     q(dir / "missing_key.safetensors"));
        expect_failure(r, "gamma");
        rewrite(dir / "bad_shape.safetensors", false);
        r = run("eval --config " + q(config) + " --data-root " + q(synthetic()) + " --checkpoint " +
                q(dir / "bad_shape.safetensors"));
        expect_failure(r, "gamma");
        CHECK(r.err.find("17") != std::string::npos);
    }
    SECTION("a config with an unknown or mistyped key") {
        auto j = nlohmann::json::parse(std::ifstream(config));
        j["train"]["learning_rate"] = 1;
        std::ofstream(dir / "unknown.json") << j.dump();
        expect_failure(run("eval --config " + q(dir / "unknown.json") + " --checkpoint " + q(ck) + " --data-root " +
                           q(synthetic())),
                       "train.learning_rate");
        j = nlohmann::json::parse(std::ifstream(config));
        j["backbone"]["width"] = "16";
        std::ofstream(dir / "mistyped.json") << j.dump();
        expect_failure(run("eval --config " + q(dir / "mistyped.json") + " --checkpoint " + q(ck) + " --data-root " +
                           q(synthetic())),
                       "backbone.width");
    }
}

#endif  // WEFT_DENSECLIP_EXE
