// weft/dist/local_communicator.hpp: the world of one process.
//
//   dist::LocalCommunicator comm;            // rank 0 of 1: every collective leaves data as it is
//
// Lets single-process code run the data-parallel path unchanged (and tests compare it with the
// plain path). Host memory only.
#pragma once

#include <cstring>

#include "communicator.hpp"

namespace weft::dist {

class LocalCommunicator final : public Communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    std::string_view backend() const override { return "local"; }
    std::string_view device() const override { return Cpu::name; }

protected:
    Work do_all_reduce(void*, std::size_t, DType, ReduceOp) override { return {}; }
    Work do_broadcast(void*, std::size_t, DType, int) override { return {}; }
    Work do_all_gather(const void* send, void* recv, std::size_t count, DType type) override {
        if (send != recv) std::memmove(recv, send, count * dtype_size(type));
        return {};
    }
    void do_barrier() override {}
};

}  // namespace weft::dist
