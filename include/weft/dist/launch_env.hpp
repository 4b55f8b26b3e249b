// weft/dist/launch_env.hpp: this process's rank, world size and local rank, from its launcher.
//
//   const auto env = dist::launch_env();     // {rank 1, size 4, local_rank 1, launcher "openmpi"}
//   if (env.size > 1) ... start a communicator
//
// Launchers announce the process layout in environment variables; the first complete set wins:
//   WEFT_RANK, WEFT_WORLD_SIZE (WEFT_LOCAL_RANK)        any launcher, or by hand
//   OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK            Open MPI's mpirun
//   PMI_RANK, PMI_SIZE (MPI_LOCALRANKID)                MPICH / Intel MPI (Hydra)
//   SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID           srun
// None of them: a single process (rank 0 of 1). The local rank picks the GPU on a node.
#pragma once

#include <cstdlib>
#include <string>

#include "../core/error.hpp"

namespace weft::dist {

struct LaunchEnv {
    int rank = 0, size = 1, local_rank = 0;
    std::string launcher = "none";  // which variables were read
};

namespace detail {

inline bool env_int(const char* name, int& out) {
    const char* v = std::getenv(name);
    if (!v || !*v) return false;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    WEFT_CHECK(*end == '\0' && x >= 0 && x < (1L << 30), "dist: the environment variable ", name, "='", v,
               "' is not a non-negative integer");
    out = int(x);
    return true;
}

}  // namespace detail

inline LaunchEnv launch_env() {
    struct Source {
        const char *launcher, *rank, *size, *local_rank;
    };
    static constexpr Source sources[] = {
        {"weft", "WEFT_RANK", "WEFT_WORLD_SIZE", "WEFT_LOCAL_RANK"},
        {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
        {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
        {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    };
    for (const Source& s : sources) {
        LaunchEnv e;
        if (!detail::env_int(s.rank, e.rank) || !detail::env_int(s.size, e.size)) continue;
        WEFT_CHECK(e.size >= 1 && e.rank < e.size, "dist: ", s.rank, "=", e.rank, " is not a rank of ", s.size, "=",
                   e.size);
        if (!detail::env_int(s.local_rank, e.local_rank)) e.local_rank = e.rank;
        e.launcher = s.launcher;
        return e;
    }
    return {};
}

}  // namespace weft::dist
