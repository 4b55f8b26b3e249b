// weft/dist.hpp: data-parallel training across processes: communicators (local, MPI with
// WEFT_MPI; NCCL in weft/dist/nccl_communicator.cuh with WEFT_NCCL), the launcher's rank and
// world size, bucketed gradient all-reduce overlapped with backward, synchronized batch norm.
#pragma once

#include "dist/all_gather.hpp"
#include "dist/communicator.hpp"
#include "dist/data_parallel.hpp"
#include "dist/launch_env.hpp"
#include "dist/local_communicator.hpp"
#include "dist/sync_batch_norm.hpp"
#if WEFT_MPI
#include "dist/mpi_communicator.hpp"
#endif
