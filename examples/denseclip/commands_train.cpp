// examples/denseclip/commands_train.cpp: `train`, alone or as one rank of a data-parallel job.
#include <memory>

#include <weft/dist/launch_env.hpp>
#if WEFT_MPI
#include <weft/dist/mpi_communicator.hpp>
#endif

#include "commands.hpp"
#include "train.hpp"

namespace denseclip {

void train_command(const DenseClipConfig& cfg, const TrainOptions& options) {
    // Under an MPI launcher (mpirun, srun with PMI) every process is one rank; mpirun -np 1 is
    // a world of one and trains exactly as a plain run.
    const auto env = dist::launch_env();
    std::unique_ptr<dist::Communicator> comm;
#if WEFT_MPI
    if (env.launcher != "none") comm = std::make_unique<dist::MpiCommunicator>();
#else
    WEFT_CHECK(env.size == 1, "denseclip train: launched as rank ", env.rank, " of ", env.size, " (", env.launcher,
               ") but built without MPI; configure weft with -DWEFT_MPI=ON (Debian: libopenmpi-dev)");
#endif
    TrainOptions o = options;
    o.comm = comm.get();
    const bool lead = !comm || comm->rank() == 0;
    std::optional<EvalResult> r;
    try {
        r = train(cfg, o);
    } catch (const std::exception& e) {
        // The other ranks may wait in a collective this one will never join: end the whole job.
        if (comm && comm->size() > 1) {
            std::fprintf(stderr, "\ndenseclip train (rank %d of %d): %s\n", comm->rank(), comm->size(), e.what());
            comm->abort(1);
        }
        throw;
    }
    if (!lead) return;
    if (r) {
        std::printf("\nvalidation after %lld iterations (%lld images):\n", (long long)options.iters.value_or(cfg.train.iters),
                    (long long)r->images);
        print_metrics(r->metrics, false);
    }
    std::printf("work dir: %s (log.jsonl, eval.jsonl, loss.svg, miou.svg, checkpoints)\n",
                options.work_dir.c_str());
}

}  // namespace denseclip
