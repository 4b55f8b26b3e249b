// weft/dist/communicator.hpp: what data-parallel training asks of the processes it runs in.
//
//   dist::Communicator& comm = ...;                 // MpiCommunicator, NcclCommunicator, LocalCommunicator
//   comm.all_reduce(grad);                          // sum over ranks, in place, blocking
//   auto w = comm.all_reduce_async(bucket);         // in flight while the backward goes on
//   w.wait();
//   comm.broadcast(weights, /*root=*/0);
//   comm.all_gather(local, global);                 // global = the ranks' local tensors, rank order
//
// One process per rank. Collectives are matched by order: every rank must issue the same
// collectives in the same order with the same sizes (what data-parallel training does by
// construction). An implementation states which memory it works on (`device()`): MPI and the
// local communicator take host tensors, NCCL takes CUDA tensors; a tensor on the wrong device is
// an error, never a silent copy. Asynchronous collectives complete in the order they were issued.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <string_view>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace weft::dist {

enum class ReduceOp { sum, max, min };

// A collective in flight. wait() blocks until it finished and rethrows its failure; a
// default-constructed Work is already finished.
class Work {
public:
    Work() = default;
    explicit Work(std::shared_future<void> done) : done_(std::move(done)) {}

    void wait() const {
        if (done_.valid()) done_.get();
    }
    bool ready() const {
        return !done_.valid() || done_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    }

private:
    std::shared_future<void> done_;
};

class Communicator {
public:
    virtual ~Communicator() = default;

    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual std::string_view backend() const = 0;  // "local", "mpi", "nccl"
    virtual std::string_view device() const = 0;   // Cpu::name or Cuda::name: where the buffers live

    // The raw collectives, on `count` elements of `type` at `data` (memory of device()).
    Work all_reduce_async(void* data, std::size_t count, DType type, ReduceOp op) {
        return do_all_reduce(data, count, type, op);
    }
    Work broadcast_async(void* data, std::size_t count, DType type, int root) {
        return do_broadcast(data, count, type, root);
    }
    // recv holds size() * count elements: rank r's `count` elements at offset r * count; send
    // and recv must not overlap.
    Work all_gather_async(const void* send, void* recv, std::size_t count, DType type) {
        return do_all_gather(send, recv, count, type);
    }
    void barrier() { do_barrier(); }

    // Ends this process and, where the backend can, every rank of the job, so that none waits
    // forever in a collective this rank will not join (a failing rank calls it).
    [[noreturn]] virtual void abort(int code) {
        std::fflush(nullptr);
        std::_Exit(code);
    }

    // ---- typed forms on dense tensors ----

    template <Element T, int R, Device D>
    Work all_reduce_async(Tensor<T, R, D>& t, ReduceOp op = ReduceOp::sum) {
        check(t, "all_reduce");
        return all_reduce_async(t.data(), std::size_t(t.numel()), dtype_of<T>, op);
    }
    template <Element T, int R, Device D>
    void all_reduce(Tensor<T, R, D>& t, ReduceOp op = ReduceOp::sum) {
        all_reduce_async(t, op).wait();
    }
    template <Element T, int R, Device D>
    void broadcast(Tensor<T, R, D>& t, int root = 0) {
        check(t, "broadcast");
        WEFT_CHECK(root >= 0 && root < size(), "dist::broadcast: root ", root, " is not a rank of a world of ", size());
        broadcast_async(t.data(), std::size_t(t.numel()), dtype_of<T>, root).wait();
    }
    // global: the ranks' `local` tensors one after the other along axis 0 (global.size(0) ==
    // size() * local.size(0), the other extents equal).
    template <Element T, int R, Device D>
    void all_gather(const Tensor<T, R, D>& local, Tensor<T, R, D>& global) {
        check(local, "all_gather");
        check(global, "all_gather");
        bool fits = global.size(0) == local.size(0) * size();
        for (int d = 1; d < R; ++d) fits = fits && global.size(d) == local.size(d);
        WEFT_CHECK(fits, "dist::all_gather: the gathered tensor's shape ", global.shape(), " must be the local shape ",
                   local.shape(), " with axis 0 times the world size ", size());
        all_gather_async(local.data(), global.data(), std::size_t(local.numel()), dtype_of<T>).wait();
    }

    // A plain value summed (or max/min) over the ranks: losses to log, counts.
    double all_reduce_value(double v, ReduceOp op = ReduceOp::sum) {
        WEFT_CHECK(device() == Cpu::name, "dist::all_reduce_value: the ", backend(),
                   " communicator works on device memory; reduce a one-element tensor on its device instead");
        all_reduce_async(&v, 1, DType::f64, op).wait();
        return v;
    }

protected:
    // What an implementation provides (the public functions above call them; typed forms wrap
    // them, which is why the names differ: an override would hide the typed overloads).
    virtual Work do_all_reduce(void* data, std::size_t count, DType type, ReduceOp op) = 0;
    virtual Work do_broadcast(void* data, std::size_t count, DType type, int root) = 0;
    virtual Work do_all_gather(const void* send, void* recv, std::size_t count, DType type) = 0;
    virtual void do_barrier() = 0;

private:
    template <Element T, int R, Device D>
    void check(const Tensor<T, R, D>& t, const char* op) const {
        WEFT_CHECK(D::name == device(), "dist::", op, ": the ", backend(), " communicator works on ", device(),
                   " tensors, not ", D::name, " ones");
        WEFT_CHECK(t.defined() && t.is_contiguous(), "dist::", op, ": needs a defined, contiguous tensor (shape ",
                   t.shape(), ")");
    }
};

}  // namespace weft::dist
