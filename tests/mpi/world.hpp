// The one MpiCommunicator of a tests/mpi process (MPI is initialised once per process).
#pragma once

#include <weft/dist/launch_env.hpp>
#include <weft/dist/mpi_communicator.hpp>

namespace weft::test {

inline dist::MpiCommunicator& world() {
    static dist::MpiCommunicator comm;
    return comm;
}

}  // namespace weft::test
