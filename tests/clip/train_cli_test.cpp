// `clip make-synthetic-pairs` and `clip train` (examples/clip_pretrain) end to end on a small
// synthetic set: logs, zero-shot evaluation, checkpoints, a resumed run continuing exactly, the
// trained model read back by `clip zeroshot`, and (under mpirun) two ranks with half the batch
// each logging the losses of one process with the whole contrastive batch.
#include <catch2/catch.hpp>

#ifdef WEFT_CLIP_EXE

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

const fs::path dir = [] {
    const auto d = fs::temp_directory_path() / ("weft_clip_train_" + std::to_string(::getpid()));
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

struct Run {
    int status;
    std::string out, err;
};

// `launcher` clip `args` (launcher: empty, or mpirun with its options).
Run run(const std::string& args, const std::string& launcher = "", const std::string& input = "") {
    std::ofstream(dir / "stdin.txt") << input;
    const std::string cmd = std::string("WEFT_CLIP_VOCAB='") + vocab + "' " + launcher + " '" + WEFT_CLIP_EXE + "' " +
                            args + " < '" + (dir / "stdin.txt").string() + "' > '" + (dir / "stdout.txt").string() +
                            "' 2> '" + (dir / "stderr.txt").string() + "'";
    const int status = std::system(cmd.c_str());
    auto slurp = [](const fs::path& p) {
        std::ostringstream s;
        s << std::ifstream(p).rdbuf();
        return s.str();
    };
    return {status, slurp(dir / "stdout.txt"), slurp(dir / "stderr.txt")};
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

const fs::path& pairs() {
    static const fs::path root = [] {
        const auto r = run("make-synthetic-pairs --out " + q(dir / "pairs") + " --train 96 --heldout 16 --seed 2");
        INFO(r.err);
        REQUIRE(r.status == 0);
        return dir / "pairs";
    }();
    return root;
}

std::string train_args(const fs::path& work, int batch) {
    return "train --data " + q(pairs() / "train.tsv") + " --heldout " + q(pairs() / "heldout") + " --classes " +
           q(pairs() / "classes.txt") + " --work-dir " + q(work) + " --iters 6 --batch-size " + std::to_string(batch) +
           " --warmup 2 --log-interval 1 --eval-interval 3 --checkpoint-interval 3 --seed 4";
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
    std::vector<nlohmann::json> out;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
}

}  // namespace

TEST_CASE("clip train: logs, zero-shot evaluation, checkpoints, and an exact resume", "[clip][cli]") {
    const auto full = dir / "full";
    auto r = run(train_args(full, 16));
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("zero-shot accuracy"));
    const auto log = read_jsonl(full / "log.jsonl");
    REQUIRE(log.size() == 6);
    CHECK(double(log[0]["loss"]) > 1.0);  // near ln 16 at the start
    const auto ev = read_jsonl(full / "eval.jsonl");
    REQUIRE(ev.size() == 2);
    CHECK(ev[1]["images"] == 16);
    for (const char* f : {"iter_3.safetensors", "iter_6.safetensors", "latest", "model.safetensors"})
        CHECK(fs::exists(full / f));

    // Interrupted after 3 iterations, then resumed: the same losses as the uninterrupted run.
    const auto parts = dir / "parts";
    REQUIRE(run(train_args(parts, 16) + " --stop-at 3").status == 0);
    r = run(train_args(parts, 16) + " --resume");
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto resumed = read_jsonl(parts / "log.jsonl");
    REQUIRE(resumed.size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
        INFO("iteration " << i + 1);
        CHECK(double(resumed[i]["loss"]) == Approx(double(log[i]["loss"])).epsilon(1e-6));
    }

    // The trained model is a CLIP file like OpenAI's: `clip zeroshot` reads it.
    const auto some_image = fs::directory_iterator(fs::directory_iterator(pairs() / "heldout")->path())->path();
    r = run("zeroshot --model " + q(full / "model.safetensors") + " --image " + q(some_image), "", "red circle\nblue star\n");
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("blue star"));

    // Bad input names the file.
    r = run("train --data " + q(dir / "missing.tsv") + " --work-dir " + q(dir / "bad"));
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Catch::Contains("missing.tsv"));
}

#ifdef WEFT_MPIEXEC
TEST_CASE("clip train under mpirun -np 2 logs the losses of one process with the whole batch", "[clip][cli][mpi]") {
    const auto train = [&](int np, int batch, const fs::path& work) {
        const auto r = run(train_args(work, batch), std::string(WEFT_MPIEXEC) + " -np " + std::to_string(np) +
                                                         " -x WEFT_CLIP_VOCAB" + (np > 1 ? " -x WEFT_NUM_THREADS=1" : ""));
        INFO(r.err);
        REQUIRE(r.status == 0);
    };
    train(1, 16, dir / "np1");
    train(2, 8, dir / "np2");
    const auto a = read_jsonl(dir / "np1" / "log.jsonl"), b = read_jsonl(dir / "np2" / "log.jsonl");
    REQUIRE(a.size() == 6);
    REQUIRE(b.size() == 6);
    for (std::size_t i = 0; i < a.size(); ++i) {
        INFO("iteration " << i + 1);
        const double x = a[i]["loss"], y = b[i]["loss"];
        CHECK(std::abs(x - y) <= 1e-5 * std::abs(x));
    }
}
#endif

#endif  // WEFT_CLIP_EXE
