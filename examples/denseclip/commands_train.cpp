// examples/denseclip/commands_train.cpp: `train` on the CPU, alone or as one rank of a
// data-parallel job over MPI (--device cuda goes to commands_cuda.cu).
#include <memory>

#include <weft/dist/launch_env.hpp>
#if WEFT_MPI
#include <weft/dist/mpi_communicator.hpp>
#endif

#include "commands.hpp"
#include "train.hpp"

namespace denseclip {

void train_command(const DenseClipConfig& cfg, const TrainOptions& options) {
    if (options.device == "cuda") return cuda_train_command(cfg, options);
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
    train_and_report<Cpu>(cfg, options, comm.get());
}

}  // namespace denseclip
