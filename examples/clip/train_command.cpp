// examples/clip/train_command.cpp: `clip train` (see train_command.hpp).
#include "train_command.hpp"

#include <memory>

#include <weft/dist/launch_env.hpp>
#if WEFT_MPI
#include <weft/dist/mpi_communicator.hpp>
#endif

#include "../clip_pretrain/pretrain.hpp"

namespace clip_cli {

namespace {

struct Args {
    clip_pretrain::PretrainOptions o;
    std::string data, work_dir, heldout, classes, init;
    std::int64_t stop_at = 0;
    std::string arch = "tiny-rn";
    const std::string* vocab = nullptr;
};

Args& args() {
    static Args a;
    return a;
}

}  // namespace

CLI::App* add_train_command(CLI::App& app, const std::string& vocab) {
    Args& a = args();
    a.vocab = &vocab;
    auto& o = a.o;
    auto* t = app.add_subcommand("train", "contrastive training on image-text pairs (from scratch or --init)");
    t->add_option("--data", a.data, "pairs: TSV (image<TAB>caption), JSONL, or a folder of images with .txt captions")
        ->required();
    t->add_option("--work-dir", a.work_dir, "where log.jsonl, eval.jsonl and checkpoints go")->required();
    t->add_option("--heldout", a.heldout, "labelled folder (a subfolder per class) for zero-shot accuracy");
    t->add_option("--classes", a.classes, "the zero-shot candidates, one per line (default: the folder's classes)");
    t->add_option("--init", a.init, "CLIP file to fine-tune (OpenAI .pt or a weft checkpoint); default: the tiny "
                                    "model from scratch")
        ->check(CLI::ExistingFile);
    t->add_option("--arch", a.arch, "architecture from scratch: tiny-rn (CLIP's ResNet) or tiny-vit")
        ->check(CLI::IsMember({"tiny-rn", "tiny-vit"}))
        ->capture_default_str();
    t->add_option("--prompt", o.prompt, "zero-shot prompt, {} = the class name")->capture_default_str();
    t->add_option("--iters", o.iters, "iterations")->capture_default_str();
    t->add_option("--batch-size", o.batch_size, "pairs per iteration and rank")->capture_default_str();
    t->add_option("--lr", o.lr, "peak learning rate (cosine decay after a linear warmup)")->capture_default_str();
    t->add_option("--warmup", o.warmup, "warmup iterations")->capture_default_str();
    t->add_option("--weight-decay", o.weight_decay, "AdamW's decoupled weight decay")->capture_default_str();
    t->add_option("--log-interval", o.log_interval)->capture_default_str();
    t->add_option("--eval-interval", o.eval_interval, "iterations between zero-shot evaluations (0: at the end)")
        ->capture_default_str();
    t->add_option("--checkpoint-interval", o.checkpoint_interval)->capture_default_str();
    t->add_option("--seed", o.seed, "seed of the initialisation and the data order")->capture_default_str();
    t->add_flag("--resume", o.resume, "continue from the work dir's latest checkpoint");
    t->add_option("--stop-at", a.stop_at, "end this session after that iteration (checkpointed)");
    return t;
}

void run_train_command() {
    Args& a = args();
    auto o = a.o;
    o.data = a.data;
    o.work_dir = a.work_dir;
    o.vocab = *a.vocab;
    if (!a.heldout.empty()) o.heldout = a.heldout;
    if (!a.classes.empty()) o.classes = a.classes;
    if (!a.init.empty()) o.init = a.init;
    if (a.stop_at > 0) o.stop_at = a.stop_at;
    o.model = a.arch == "tiny-vit" ? clip_pretrain::tiny_clip_config() : clip_pretrain::tiny_resnet_clip_config();

    const auto env = weft::dist::launch_env();
    std::unique_ptr<weft::dist::Communicator> comm;
#if WEFT_MPI
    if (env.launcher != "none") comm = std::make_unique<weft::dist::MpiCommunicator>();
#else
    WEFT_CHECK(env.size == 1, "clip train: launched as rank ", env.rank, " of ", env.size,
               " but built without MPI; configure weft with -DWEFT_MPI=ON");
#endif
    o.comm = comm.get();
    try {
        const auto r = clip_pretrain::pretrain(o);
        if ((!comm || comm->rank() == 0) && r.last_eval)
            std::printf("zero-shot accuracy %.2f%% on %lld held-out images after %lld iterations (%.0f s)\n",
                        100 * r.last_eval->accuracy, (long long)r.last_eval->images, (long long)o.iters, r.seconds);
    } catch (const std::exception& e) {
        if (comm && comm->size() > 1) {
            std::fprintf(stderr, "\nclip train (rank %d of %d): %s\n", comm->rank(), comm->size(), e.what());
            comm->abort(1);
        }
        throw;
    }
}

}  // namespace clip_cli
