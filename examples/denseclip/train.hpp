// examples/denseclip/train.hpp: the iteration-based training run of `denseclip train`.
//
//   denseclip::train<Cpu>(cfg, {.data_root = "data/synthetic", .work_dir = "work/tiny"});
//   denseclip::train<Cuda>(cfg, options);   // in a translation unit nvcc compiles (commands_cuda.cu)
//
// What a run leaves in the work dir:
//   log.jsonl            one JSON object per logged iteration: iter, loss, loss_decode, loss_aux
//                        (means over the log interval, as mmcv logs them), lr (the base group's),
//                        time (seconds per iteration), data_time
//   eval.jsonl           one object per evaluation: iter, mIoU, mAcc, aAcc (fractions)
//   loss.svg, miou.svg   the curves so far, rewritten at every log and evaluation
//   iter_<N>.safetensors training checkpoints (checkpoint.hpp) every checkpoint_interval and at the
//                        end; "latest" names the newest (written after it, atomically)
//   config.json          the config the run used
// --resume continues from "latest": model, optimizer moments, iteration, the dropout generator,
// and the data order (the loader's epoch and position are derived from the iteration), so a
// resumed run computes what the uninterrupted one would have.
//
// Data-parallel (TrainOptions::comm, e.g. under mpirun): every rank trains the same model on its
// slice of each global batch (batch_size per rank, cut in rank order from the order one process
// would use), batch norms are synchronized, dropout masks are drawn from the global batch's
// stream, and gradients are averaged over the ranks before each step; so N ranks with batch b
// log what one process with batch N·b logs. Rank 0 alone writes the work dir; the evaluation
// is shared out over the ranks.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <weft/data/ade20k.hpp>
#include <weft/data/loader.hpp>
#include <weft/data/seg_transforms.hpp>
#include <weft/dist/data_parallel.hpp>
#include <weft/dist/local_communicator.hpp>
#include <weft/dist/sync_batch_norm.hpp>
#include <weft/metrics/table.hpp>

#include "checkpoint.hpp"
#include "classes.hpp"
#include "commands.hpp"
#include "evaluate.hpp"
#include "svg_plot.hpp"
#include "train_options.hpp"

namespace denseclip {

inline data::SegTrainPipeline train_pipeline(const DenseClipConfig& c) {
    data::SegTrainPipeline p;
    p.resize.scale_long = std::max(c.data.img_scale[0], c.data.img_scale[1]);
    p.resize.scale_short = std::min(c.data.img_scale[0], c.data.img_scale[1]);
    p.resize.ratio_min = c.data.ratio_range[0];
    p.resize.ratio_max = c.data.ratio_range[1];
    p.crop.crop_h = c.data.crop_size[0];
    p.crop.crop_w = c.data.crop_size[1];
    p.crop.cat_max_ratio = c.data.cat_max_ratio;
    p.crop.ignore_index = int(c.ignore_index);
    p.flip.prob = c.data.flip_prob;
    p.normalize = {c.data.mean, c.data.std};
    return p;
}

namespace detail {

inline std::string clock(double seconds) {
    const long s = long(std::max(0.0, seconds) + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

// A one-line progress bar on a terminal (redrawn in place); on a pipe or file, a line per log.
class Progress {
public:
    explicit Progress(std::int64_t total) : total_(total), tty_(isatty(fileno(stderr))) {}

    void update(std::int64_t done, const LossTerms& l, double lr, double it_per_s, bool log_line) {
        if (!tty_ && !log_line) return;
        constexpr int width = 24;
        const int filled = int(double(width) * double(done) / double(total_));
        std::string bar(std::size_t(filled), '=');
        if (filled < width) bar += '>' + std::string(std::size_t(width - filled - 1), ' ');
        const double eta = it_per_s > 0 ? double(total_ - done) / it_per_s : 0;
        std::fprintf(stderr, "%s[%s] %lld/%lld | loss %.4f (decode %.4f, aux %.4f) | lr %.2e | %.2f it/s | ETA %s%s",
                     tty_ ? "\r" : "", bar.c_str(), (long long)done, (long long)total_, l.total, l.decode, l.aux, lr,
                     it_per_s, clock(eta).c_str(), tty_ ? "\033[K" : "\n");
        std::fflush(stderr);
        open_ = tty_;
    }
    // Ends a redrawn line before other output.
    void end_line() {
        if (open_) std::fputc('\n', stderr);
        open_ = false;
    }

private:
    std::int64_t total_;
    bool tty_, open_ = false;
};

inline void write_text_atomically(const std::filesystem::path& path, const std::string& text) {
    const auto tmp = std::filesystem::path(path.string() + ".tmp");
    {
        std::ofstream out(tmp, std::ios::binary);
        WEFT_CHECK(out.good(), "denseclip train: cannot write '", tmp.string(), "'");
        out << text;
    }
    std::filesystem::rename(tmp, path);
}

struct Curves {
    std::vector<double> iter, loss, decode, aux, eval_iter, miou;

    void write(const std::filesystem::path& dir) const {
        SvgPlot l("training loss", "iteration", "loss");
        l.add("loss", iter, loss);
        l.add("loss_decode", iter, decode);
        l.add("loss_aux", iter, aux);
        l.write(dir / "loss.svg");
        SvgPlot m("validation mIoU", "iteration", "mIoU (%)");
        std::vector<double> pct;
        for (double v : miou) pct.push_back(100 * v);
        m.add("mIoU", eval_iter, pct);
        m.write(dir / "miou.svg");
    }
};

}  // namespace detail

// Runs (or resumes) training on device D; returns the final validation metrics when a validation
// split exists. On Cuda the batches are loaded and augmented on the host (the loader's worker
// threads) and copied to the GPU once each; checkpoints hold host copies, so a run may resume on
// the other device.
template <Device D>
std::optional<EvalResult> train(DenseClipConfig cfg, const TrainOptions& o) {
    namespace fs = std::filesystem;
    if (o.iters) cfg.train.iters = *o.iters;
    if (o.batch_size) cfg.train.batch_size = *o.batch_size;
    if (o.log_interval) cfg.train.log_interval = *o.log_interval;
    if (o.eval_interval) cfg.train.eval_interval = *o.eval_interval;
    if (o.workers >= 0) cfg.train.workers = o.workers;
    WEFT_CHECK(cfg.train.iters > 0 && cfg.train.batch_size > 0 && cfg.train.log_interval > 0,
               "denseclip train: iters, batch size and log interval must be positive");
    dist::LocalCommunicator alone;
    dist::Communicator& comm = o.comm ? *o.comm : alone;
    const int rank = comm.rank(), world = comm.size();
    const bool lead = rank == 0;  // writes logs, curves and checkpoints, and talks
    if (lead) fs::create_directories(o.work_dir);

    // The model, initialised from the seed (dropout then draws from the same generator).
    manual_seed(o.seed);
    DenseClip<float, D> model(cfg, class_tokens(o.vocab, cfg));
    const auto weights = o.clip_weights ? std::optional<fs::path>(*o.clip_weights)
                                        : (cfg.clip_weights ? std::optional<fs::path>(*cfg.clip_weights) : std::nullopt);
    if (weights && !o.resume) {
        WEFT_CHECK(fs::exists(*weights), "denseclip train: the config '", cfg.name, "' starts from CLIP's '",
                   weights->string(), "', which does not exist; download OpenAI's file (README, \"CLIP weights\") ",
                   "and pass it with --clip-weights FILE");
        load_clip_weights(model, Checkpoint::open(*weights));
    }
    if (o.freeze_text) freeze_text_encoder(model);
    auto opt = make_optimizer(model, cfg.train);
    const auto sched = make_schedule(cfg.train);

    std::int64_t start = 0;
    std::uint64_t data_seed = o.seed;
    if (o.resume) {
        std::ifstream in(o.work_dir / "latest");
        std::string name;
        WEFT_CHECK(in >> name, "denseclip train --resume: no checkpoint in '", o.work_dir.string(),
                   "' (its file 'latest' is missing)");
        const auto s = load_training_checkpoint(o.work_dir / name, model, &opt);
        WEFT_CHECK(s.config == cfg.name, "denseclip train --resume: '", (o.work_dir / name).string(),
                   "' was trained with config '", s.config, "', not '", cfg.name, "'");
        start = s.iter;
        default_generator() = s.rng;
        data_seed = s.data_seed;
        if (lead)
            std::fprintf(stderr, "resuming from %s at iteration %lld\n", (o.work_dir / name).c_str(), (long long)start);
    }
    std::optional<dist::DataParallel<float, D>> dp;
    if (world > 1) {
        dist::synchronize_batch_norm(model, comm);
        dp.emplace(comm, model);
        if (lead)
            std::fprintf(stderr, "data-parallel over %d ranks (%s): %lld images per rank, %lld per iteration\n", world,
                         std::string(comm.backend()).c_str(), (long long)cfg.train.batch_size,
                         (long long)(cfg.train.batch_size * world));
    }
    if (lead) {
        std::ofstream out(o.work_dir / "config.json");
        out << "{\"name\": \"" << cfg.name << "\", \"iters\": " << cfg.train.iters
            << ", \"batch_size\": " << cfg.train.batch_size << ", \"world_size\": " << world
            << ", \"seed\": " << data_seed << "}\n";
    }

    const data::Ade20k train_set(o.data_root, "training", cfg.data.reduce_zero_label);
    std::optional<data::Ade20k> val_set;
    if (fs::is_directory(o.data_root / "images" / "validation"))
        val_set.emplace(o.data_root, "validation", cfg.data.reduce_zero_label);
    data::SegLoader loader(train_set, train_pipeline(cfg),
                           {.batch_size = cfg.train.batch_size,
                            .workers = cfg.train.workers,
                            .prefetch = 2,
                            .shuffle = true,
                            .drop_last = true,
                            .seed = data_seed,
                            .replica = rank,
                            .replicas = world});
    const std::int64_t per_epoch = loader.batches_per_epoch();
    WEFT_CHECK(per_epoch > 0, "denseclip train: ", train_set.size(), " training images make no batch of ",
               cfg.train.batch_size * world);
    // The data order continues where the interrupted run was: epoch and position from the iteration.
    std::uint64_t epoch = std::uint64_t(start / per_epoch);
    loader.start_epoch(epoch);
    for (std::int64_t skip = start % per_epoch; skip > 0; --skip) loader.next();

    // On resume the logs keep what the interrupted run wrote up to its checkpoint (lines past it
    // would be repeated), and the curves start from those points.
    detail::Curves curves;
    // The lines of `file` up to iteration `start`, each also handed to `use`.
    const auto kept_lines = [&](const char* file, const auto& use) {
        std::string kept;
        if (!o.resume || !lead) return kept;
        std::ifstream old(o.work_dir / file);
        for (std::string line; std::getline(old, line);) {
            const auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.contains("iter") || j["iter"].get<std::int64_t>() > start) continue;
            kept += line + "\n";
            use(j);
        }
        return kept;
    };
    const std::string kept_log = kept_lines("log.jsonl", [&](const nlohmann::json& j) {
        curves.iter.push_back(j["iter"]), curves.loss.push_back(j["loss"]);
        curves.decode.push_back(j["loss_decode"]), curves.aux.push_back(j["loss_aux"]);
    });
    const std::string kept_eval = kept_lines("eval.jsonl", [&](const nlohmann::json& j) {
        curves.eval_iter.push_back(j["iter"]), curves.miou.push_back(j["mIoU"]);
    });
    std::ofstream log, eval_log;  // rank 0's; left closed (writes go nowhere) on the others
    if (lead) {
        log.open(o.work_dir / "log.jsonl", std::ios::trunc);
        eval_log.open(o.work_dir / "eval.jsonl", std::ios::trunc);
        log << kept_log << std::flush;
        eval_log << kept_eval << std::flush;
    }

    const auto run_eval = [&](std::int64_t iter) -> std::optional<EvalResult> {
        if (!val_set) return std::nullopt;
        if (lead) std::fprintf(stderr, "evaluating on %lld validation images...\n", (long long)val_set->size());
        auto r = evaluate(model, *val_set, InferenceOptions::from(cfg), nullptr, &comm);
        model.train();
        if (!lead) return r;
        eval_log << nlohmann::json{{"iter", iter}, {"mIoU", r.metrics.miou}, {"mAcc", r.metrics.macc},
                                   {"aAcc", r.metrics.aacc}}.dump()
                 << std::endl;
        curves.eval_iter.push_back(double(iter));
        curves.miou.push_back(r.metrics.miou);
        curves.write(o.work_dir);
        std::fprintf(stderr, "iter %lld: mIoU %.2f  mAcc %.2f  aAcc %.2f  (%.1f s)\n", (long long)iter,
                     100 * r.metrics.miou, 100 * r.metrics.macc, 100 * r.metrics.aacc, r.seconds);
        return r;
    };
    const auto checkpoint = [&](std::int64_t iter) {
        if (!lead) return;
        const std::string name = "iter_" + std::to_string(iter) + ".safetensors";
        save_training_checkpoint(o.work_dir / name, model, opt,
                                 {.iter = iter, .rng = default_generator(), .data_seed = data_seed, .config = cfg.name});
        detail::write_text_atomically(o.work_dir / "latest", name + "\n");
    };

    model.train();
    detail::Progress progress(cfg.train.iters);
    LossTerms sum;
    double data_time = 0;
    int n = 0;
    auto window_start = std::chrono::steady_clock::now();
    std::optional<EvalResult> last_eval;
    for (std::int64_t iter = start; iter < cfg.train.iters; ++iter) {
        const auto t0 = std::chrono::steady_clock::now();
        auto batch = loader.next();
        if (!batch) {
            loader.start_epoch(++epoch);
            batch = loader.next();
        }
        data_time += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto l = train_step(model, opt, sched, iter, batch->images.template to<D>(),
                                  batch->labels.template to<D>(), dp ? &*dp : nullptr);
        WEFT_CHECK(std::isfinite(l.total), "denseclip train: the loss became ", l.total, " at iteration ", iter + 1,
                   " (batch of ", batch->names.front(), ", ...)");
        sum.total += l.total, sum.decode += l.decode, sum.aux += l.aux;
        ++n;
        const std::int64_t done = iter + 1;
        const double lr = opt.groups().empty() ? 0 : sched.lr_at(iter);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
        const bool log_now = done % cfg.train.log_interval == 0 || done == cfg.train.iters;
        const LossTerms mean{sum.total / n, sum.decode / n, sum.aux / n};
        if (lead) progress.update(done, mean, lr, double(n) / secs, log_now);
        if (log_now) {
            log << nlohmann::json{{"iter", done},        {"loss", mean.total}, {"loss_decode", mean.decode},
                                  {"loss_aux", mean.aux}, {"lr", lr},           {"time", secs / n},
                                  {"data_time", data_time / n}}.dump()
                << std::endl;
            curves.iter.push_back(double(done));
            curves.loss.push_back(mean.total);
            curves.decode.push_back(mean.decode);
            curves.aux.push_back(mean.aux);
            if (lead) curves.write(o.work_dir);
            sum = {};
            n = 0;
            data_time = 0;
            window_start = std::chrono::steady_clock::now();
        }
        const bool last = done == cfg.train.iters;
        if ((cfg.train.checkpoint_interval > 0 && done % cfg.train.checkpoint_interval == 0) || last) {
            progress.end_line();
            checkpoint(done);
        }
        if ((cfg.train.eval_interval > 0 && done % cfg.train.eval_interval == 0) || last) {
            progress.end_line();
            last_eval = run_eval(done);
            window_start = std::chrono::steady_clock::now();
        }
        if (o.stop_at && done == *o.stop_at && !last) {  // a session of a longer run
            progress.end_line();
            if (!(cfg.train.checkpoint_interval > 0 && done % cfg.train.checkpoint_interval == 0)) checkpoint(done);
            if (lead) std::fprintf(stderr, "stopped after iteration %lld of %lld; continue with --resume\n", (long long)done,
                         (long long)cfg.train.iters);
            break;
        }
    }
    return last_eval;
}

// `denseclip train` on device D once the communicator is up (null: one process): trains, and
// rank 0 prints the final evaluation. A rank that fails ends the whole job, since the others
// may be waiting in a collective it will never join.
template <Device D>
void train_and_report(const DenseClipConfig& cfg, TrainOptions o, dist::Communicator* comm) {
    o.comm = comm;
    const bool lead = !comm || comm->rank() == 0;
    std::optional<EvalResult> r;
    try {
        r = train<D>(cfg, o);
    } catch (const std::exception& e) {
        if (comm && comm->size() > 1) {
            std::fprintf(stderr, "\ndenseclip train (rank %d of %d): %s\n", comm->rank(), comm->size(), e.what());
            comm->abort(1);
        }
        throw;
    }
    if (!lead) return;
    if (r) {
        std::printf("\nvalidation after %lld iterations (%lld images):\n", (long long)o.iters.value_or(cfg.train.iters),
                    (long long)r->images);
        print_metrics(r->metrics, false);
    }
    std::printf("work dir: %s (log.jsonl, eval.jsonl, loss.svg, miou.svg, checkpoints)\n", o.work_dir.c_str());
}

}  // namespace denseclip
