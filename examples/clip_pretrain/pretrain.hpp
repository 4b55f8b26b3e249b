// examples/clip_pretrain/pretrain.hpp: contrastive (pre-)training of CLIP on image-text pairs,
// the loop behind `clip train`.
//
//   clip_pretrain::pretrain({.data = "pairs/train.tsv", .work_dir = "work/clip",
//                            .vocab = "bpe_simple_vocab_16e6.txt.gz", .heldout = "pairs/heldout"});
//
// Each iteration: a batch of pairs (random resized crop, tokenised captions), both encoders,
// the symmetric InfoNCE loss over exp(logit_scale)·cos similarities (loss/clip_contrastive.hpp),
// backward, AdamW with decoupled decay on the matrices only (OpenCLIP's rule: no decay for
// gains, biases and logit_scale), a cosine schedule after a linear warmup, and the scale clamped
// to ln 100 as CLIP does. Data-parallel ranks gather every rank's embeddings (dist::all_gather,
// whose backward hands each rank its own rows), so the loss is that of the global batch, and
// gradients are averaged: N ranks with batch b train as one process with batch N·b.
//
// The work dir gets log.jsonl (iter, loss, lr, scale, time per iteration), eval.jsonl (iter,
// zero-shot accuracy on the held-out folder), iter_N.safetensors checkpoints (the model under
// OpenAI's names, so `clip zeroshot --model` reads them, plus the optimizer under "optimizer.")
// and "latest", and model.safetensors (the newest model alone, which `clip zeroshot --model` and
// clip::load read); --resume continues from "latest" with the same data order.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <weft/dist/all_gather.hpp>
#include <weft/dist/data_parallel.hpp>
#include <weft/dist/local_communicator.hpp>
#include <weft/dist/sync_batch_norm.hpp>
#include <weft/io/safetensors.hpp>
#include <weft/loss/clip_contrastive.hpp>
#include <weft/models/clip/load.hpp>
#include <weft/optim/adamw.hpp>
#include <weft/optim/schedule.hpp>

#include "pair_loader.hpp"
#include "pretrain_options.hpp"
#include "zero_shot.hpp"

namespace clip_pretrain {

// OpenCLIP's rule: weight decay for matrices, none for gains, biases and the logit scale.
inline bool decays(const std::string& name, int rank) {
    const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
    return rank >= 2 && !has("bn") && !has("ln") && !has("bias") && !has("logit_scale");
}

struct PretrainResult {
    std::optional<ZeroShotResult> last_eval;
    double seconds = 0;
};

inline PretrainResult pretrain(PretrainOptions o) {
    namespace fs = std::filesystem;
    const auto t_start = std::chrono::steady_clock::now();
    dist::LocalCommunicator alone;
    dist::Communicator& comm = o.comm ? *o.comm : alone;
    const int rank = comm.rank(), world = comm.size();
    const bool lead = rank == 0;
    WEFT_CHECK(o.iters > 0 && o.batch_size > 0 && o.log_interval > 0, "clip train: iters, batch size and log "
               "interval must be positive");
    if (lead) fs::create_directories(o.work_dir);

    const clip::Tokenizer tokenizer(o.vocab.string());
    manual_seed(o.seed);
    std::unique_ptr<clip::Clip<float>> model =
        o.init ? clip::load<float>(*o.init) : std::make_unique<clip::Clip<float>>(o.model);
    const index_t resolution = model->config().image_resolution();
    const index_t context = model->config().text.context_length;

    std::vector<NamedTensor<float>> decay, no_decay;
    for (auto& p : model->named_parameters()) (decays(p.name, p.tensor.rank()) ? decay : no_decay).push_back(p);
    optim::AdamW<float> opt({{decay, 1.0, 1.0}, {no_decay, 1.0, 0.0}},
                            {.lr = o.lr, .betas = {o.beta1, o.beta2}, .eps = o.eps, .weight_decay = o.weight_decay});
    const optim::CosineSchedule sched{.base_lr = o.lr, .max_iters = o.iters, .min_lr = o.min_lr,
                                      .warmup = {o.warmup > 0 ? optim::Warmup::linear : optim::Warmup::none,
                                                 std::max<std::int64_t>(o.warmup, 1), 1e-3}};

    std::int64_t start = 0;
    if (o.resume) {
        std::ifstream in(o.work_dir / "latest");
        std::string name;
        WEFT_CHECK(in >> name, "clip train --resume: no checkpoint in '", o.work_dir.string(), "' (no 'latest')");
        const auto path = o.work_dir / name;
        const auto ck = Checkpoint::open(path);
        nn::load_state(*model, ck, {.ignore = [](std::string_view k) { return k.starts_with("optimizer."); }});
        const SafetensorsFile f = SafetensorsFile::open(path);
        const auto it = f.metadata().find("weft.clip_train.iter");
        WEFT_CHECK(it != f.metadata().end(), "clip train --resume: '", path.string(),
                   "' has no 'weft.clip_train.iter' metadata; not a clip train checkpoint");
        start = std::stoll(it->second);
        opt.load_state(f, "checkpoint '" + path.string() + "'", "optimizer.");
        if (lead) std::fprintf(stderr, "resuming from %s at iteration %lld\n", path.c_str(), (long long)start);
    }
    std::optional<dist::DataParallel<float>> dp;
    if (world > 1) {
        dist::synchronize_batch_norm(*model, comm);  // the ResNets' batch norms
        dp.emplace(comm, *model);
    }

    const auto pairs = read_pairs(o.data);
    PairLoader loader(pairs, tokenizer, {.batch_size = o.batch_size, .resolution = resolution,
                                         .context_length = context, .seed = o.seed,
                                         .replica = rank, .replicas = world});
    const index_t per_epoch = loader.batches_per_epoch();
    WEFT_CHECK(per_epoch > 0, "clip train: ", pairs.size(), " pairs make no batch of ", o.batch_size * world);
    std::optional<LabelledFolder> heldout;
    if (o.heldout && lead)
        heldout = read_labelled_folder(*o.heldout, o.classes ? read_class_list(*o.classes) : std::vector<std::string>{});

    std::ofstream log, eval_log;
    if (lead) {
        log.open(o.work_dir / "log.jsonl", o.resume ? std::ios::app : std::ios::trunc);
        eval_log.open(o.work_dir / "eval.jsonl", o.resume ? std::ios::app : std::ios::trunc);
    }
    PretrainResult result;
    const auto evaluate = [&](std::int64_t iter) {
        if (!heldout) return;
        model->eval();
        const auto r = zero_shot_accuracy(*model, tokenizer, *heldout, {.prompt = o.prompt, .context_length = context});
        model->train();
        eval_log << nlohmann::json{{"iter", iter}, {"zero_shot_accuracy", r.accuracy}, {"images", r.images}}.dump()
                 << std::endl;
        std::fprintf(stderr, "%siter %lld: zero-shot accuracy %.2f%% on %lld held-out images (%zu candidates)\n",
                     isatty(fileno(stderr)) ? "\n" : "", (long long)iter, 100 * r.accuracy, (long long)r.images,
                     heldout->class_names.size());
        result.last_eval = r;
    };
    const auto checkpoint = [&](std::int64_t iter) {
        if (!lead) return;
        std::vector<SafetensorsEntry> entries;
        for (const auto& e : model->named_state())
            e.tensor.visit([&](const auto& t) { entries.emplace_back(e.name, t.detach()); });
        const std::string name = "iter_" + std::to_string(iter) + ".safetensors";
        const std::size_t model_entries = entries.size();
        for (auto& e : opt.state_entries("optimizer.")) entries.push_back(std::move(e));
        save_safetensors(o.work_dir / name, entries,
                         {{"weft.clip_train.iter", std::to_string(iter)}, {"weft.optimizer", opt.name()}});
        // The model alone, for `clip zeroshot --model` and clip::load (which are strict about keys).
        entries.erase(entries.begin() + std::ptrdiff_t(model_entries), entries.end());
        save_safetensors(o.work_dir / "model.safetensors", entries, {{"weft.clip_train.iter", std::to_string(iter)}});
        std::ofstream(o.work_dir / "latest.tmp") << name << "\n";
        fs::rename(o.work_dir / "latest.tmp", o.work_dir / "latest");
    };

    std::uint64_t epoch = std::uint64_t(start / per_epoch);
    loader.start_epoch(epoch);
    if (start % per_epoch) loader.skip(start % per_epoch);
    model->train();
    double loss_sum = 0, data_time = 0;
    int n = 0;
    auto window = std::chrono::steady_clock::now();
    const bool tty = isatty(fileno(stderr));
    for (std::int64_t iter = start; iter < o.iters; ++iter) {
        const auto t0 = std::chrono::steady_clock::now();
        auto batch = loader.next();
        if (!batch) {
            loader.start_epoch(++epoch);
            batch = loader.next();
        }
        data_time += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        optim::apply_schedule(opt, sched, iter);
        opt.zero_grad();
        Tensor<float, 2> img = model->encode_image(batch->images);  // [b, E]
        Tensor<float, 2> txt = model->encode_text(batch->tokens);   // [b, E]
        if (world > 1) {
            img = dist::all_gather(img, comm);  // [b·world, E]: the global batch, rank order
            txt = dist::all_gather(txt, comm);
        }
        auto loss = loss::clip_contrastive(img, txt, model->logit_scale);
        loss.backward();
        if (dp) dp->synchronize();
        opt.step();
        loss::clamp_logit_scale_(model->logit_scale);
        const double l = loss.item();
        WEFT_CHECK(std::isfinite(l), "clip train: the loss became ", l, " at iteration ", iter + 1);
        loss_sum += l;
        ++n;
        const std::int64_t done = iter + 1;
        const bool log_now = done % o.log_interval == 0 || done == o.iters;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - window).count();
        if (lead && (tty || log_now)) {
            std::fprintf(stderr, "%s[%lld/%lld] loss %.4f | lr %.2e | scale %.1f | %.2f it/s%s", tty ? "\r" : "",
                         (long long)done, (long long)o.iters, loss_sum / n, sched.lr_at(iter),
                         std::exp(double(model->logit_scale.item())), n / secs, tty ? "\033[K" : "\n");
            std::fflush(stderr);
        }
        if (log_now) {
            log << nlohmann::json{{"iter", done},
                                  {"loss", loss_sum / n},
                                  {"lr", sched.lr_at(iter)},
                                  {"logit_scale", std::exp(double(model->logit_scale.item()))},
                                  {"time", secs / n},
                                  {"data_time", data_time / n}}
                       .dump()
                << std::endl;
            loss_sum = data_time = 0;
            n = 0;
            window = std::chrono::steady_clock::now();
        }
        const bool last = done == o.iters;
        if ((o.checkpoint_interval > 0 && done % o.checkpoint_interval == 0) || last) checkpoint(done);
        if (lead && ((o.eval_interval > 0 && done % o.eval_interval == 0) || last)) evaluate(done);
        if (o.stop_at && done == *o.stop_at && !last) {
            if (!(o.checkpoint_interval > 0 && done % o.checkpoint_interval == 0)) checkpoint(done);
            if (lead) std::fprintf(stderr, "stopped after iteration %lld; continue with --resume\n", (long long)done);
            break;
        }
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    return result;
}

}  // namespace clip_pretrain
