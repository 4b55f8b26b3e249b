// weft/dist/nccl_communicator.cuh: the Communicator of GPU training, one process per GPU, over NCCL.
//
//   // rank, size, local_rank from the launcher (dist::launch_env()), the id through WEFT_RENDEZVOUS
//   // (a file on a shared filesystem) or WEFT_MASTER_ADDR / WEFT_MASTER_PORT (TCP from rank 0):
//   auto comm = dist::NcclCommunicator::from_env();
//   // or, with an MPI (any CPU) communicator already up, the id broadcast through it:
//   auto comm = dist::NcclCommunicator::create(mpi, /*cuda_device=*/local_rank);
//   auto w = comm->all_reduce_async(grad_bucket);    // CUDA tensor; backward goes on meanwhile
//   w.wait();                                        // the sum is in grad_bucket
//
// Collectives run on the communicator's own stream, so they overlap with the kernels weft keeps
// issuing to the current (compute) stream. Each call first makes that stream wait for an event
// recorded on the current stream: the collective reads what the compute stream wrote before the
// call (the gradients of the bucket just finished), never half of it. The returned Work finishes
// when the collective has finished on the GPU; a completion thread per communicator watches the
// collectives in issue order (one stream runs them in that order) and also polls NCCL's
// asynchronous error, so a peer that died turns a wait() into an error, not a hang.
// After wait() the result is ready for any stream. Until then, the caller keeps the buffers alive
// and leaves them alone: the caching allocator does not know the communicator's stream uses them.
// One host thread issues the collectives (NCCL needs the same order on every rank anyway).
//
// Errors name the collective and carry NCCL's text (ncclGetErrorString and ncclGetLastError).
// After one, the communicator is failed: later calls throw, and the destructor aborts it
// (ncclCommAbort) rather than waiting for peers that may be gone.
//
// Needs NCCL (CMake: -DWEFT_NCCL=ON, which links NCCL::NCCL and defines WEFT_NCCL=1).
#pragma once

#if !defined(__CUDACC__)
#error "weft: weft/dist/nccl_communicator.cuh is CUDA code: compile this file with nvcc (a .cu file) and -DWEFT_CUDA"
#endif

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../core/cuda/check.cuh"
#include "../core/device.hpp"
#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../exec/cuda/stream.cuh"
#include "communicator.hpp"
#include "launch_env.hpp"
#include "rendezvous.hpp"

namespace weft::dist {

namespace detail {

inline ncclDataType_t nccl_type(DType t, ReduceOp op, bool reduces, const char* what) {
    switch (t) {
        case DType::f32: return ncclFloat32;
        case DType::f64: return ncclFloat64;
        case DType::bf16: return ncclBfloat16;
        case DType::f16: return ncclFloat16;
        case DType::i32: return ncclInt32;
        case DType::i64: return ncclInt64;
        case DType::u8: return ncclUint8;
        case DType::b8:
            // bool is one byte 0/1: moved as uint8, and max/min of 0/1 are "any"/"all". A sum would
            // leave 2, 3, ... in a bool, which is not a bool.
            WEFT_CHECK(!reduces || op != ReduceOp::sum, "dist::", what,
                       ": the nccl communicator cannot sum bool tensors (use max for 'any', min for 'all', or "
                       "sum an integer tensor)");
            return ncclUint8;
    }
    WEFT_FAIL("dist::", what, ": dtype ", int(t), " has no NCCL type");
}

inline ncclRedOp_t nccl_op(ReduceOp op) {
    switch (op) {
        case ReduceOp::sum: return ncclSum;
        case ReduceOp::max: return ncclMax;
        case ReduceOp::min: return ncclMin;
    }
    WEFT_FAIL("dist: unknown ReduceOp ", int(op));
}

// NCCL's own account of the last failure on `comm` (ncclGetLastError appeared in 2.13).
inline std::string nccl_last_error(ncclComm_t comm) {
#if NCCL_VERSION_CODE >= 21300
    const char* last = comm ? ncclGetLastError(comm) : nullptr;
    if (last && *last) return std::string(": ") + last;
#else
    (void)comm;
#endif
    return {};
}

inline std::string nccl_version_text() {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
    // Since 2.9 the code is major*10000 + minor*100 + patch.
    return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

}  // namespace detail

class NcclCommunicator final : public Communicator {
public:
    // Joins the world `id` names as `rank` of `size`, on CUDA device `cuda_device` (made this thread's
    // current device: one process drives one GPU). Blocks until all `size` ranks have joined.
    NcclCommunicator(int rank, int size, ncclUniqueId id, int cuda_device)
        : rank_(rank), size_(size), device_(cuda_device) {
        WEFT_CHECK(size >= 1 && rank >= 0 && rank < size, "dist::NcclCommunicator: rank ", rank,
                   " is not a rank of a world of ", size);
        const int devices = cuda::device_count();
        WEFT_CHECK(devices > 0, "dist::NcclCommunicator: no CUDA device is visible to this process (rank ", rank,
                   "); the nccl communicator needs one GPU per process");
        WEFT_CHECK(cuda_device >= 0 && cuda_device < devices, "dist::NcclCommunicator: rank ", rank, " asks for CUDA device ",
                   cuda_device, " but this process sees ", devices, " (CUDA_VISIBLE_DEVICES?)");
        cuda::set_device(cuda_device);
        // Non-blocking: the collectives must not serialize with the legacy default stream weft's
        // compute runs on by default; the events below order them exactly as needed instead.
        WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&inputs_ready_, cudaEventDisableTiming));
        WEFT_CUDA_CHECK(cudaMalloc(&scratch_, sizeof(float)));
        const ncclResult_t r = ncclCommInitRank(&comm_, size, id, rank);
        if (r != ncclSuccess) {
            release_cuda();
            WEFT_FAIL("dist::NcclCommunicator: ncclCommInitRank (rank ", rank, " of ", size, ", device ", cuda_device,
                      ", NCCL ", detail::nccl_version_text(), ") failed: ", ncclGetErrorString(r),
                      " (set NCCL_DEBUG=INFO for NCCL's own account)");
        }
        watcher_ = std::thread([this] { watch(); });
    }

    NcclCommunicator(const NcclCommunicator&) = delete;
    NcclCommunicator& operator=(const NcclCommunicator&) = delete;

    ~NcclCommunicator() override {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        if (watcher_.joinable()) watcher_.join();  // it finishes (or fails) what is still queued first
        (void)cudaSetDevice(device_);
        if (comm_) {
            // A failed world may have peers that will never answer: abort instead of a destroy that
            // could wait for them forever.
            if (failed_.load()) (void)ncclCommAbort(comm_);
            else if (ncclCommDestroy(comm_) != ncclSuccess) (void)ncclCommAbort(comm_);
        }
        release_cuda();
    }

    // Makes the id on rank 0 and broadcasts its 128 bytes through `bootstrap` (MPI, or any
    // communicator on host memory whose rank and size are those of the NCCL world to build).
    template <std::derived_from<Communicator> Bootstrap>
    static std::unique_ptr<NcclCommunicator> create(Bootstrap& bootstrap, int cuda_device) {
        WEFT_CHECK(bootstrap.device() == Cpu::name, "dist::NcclCommunicator::create: the bootstrap communicator (",
                   bootstrap.backend(), ") must work on host memory to broadcast the NCCL id");
        ncclUniqueId id{};
        if (bootstrap.rank() == 0) check_id(ncclGetUniqueId(&id), "ncclGetUniqueId");
        bootstrap.broadcast_async(id.internal, sizeof id.internal, DType::u8, 0).wait();
        return std::make_unique<NcclCommunicator>(bootstrap.rank(), bootstrap.size(), id, cuda_device);
    }

    // The id through a file (WEFT_RENDEZVOUS, preferred when set) or TCP from rank 0 (WEFT_MASTER_ADDR
    // and WEFT_MASTER_PORT), waiting WEFT_RENDEZVOUS_TIMEOUT seconds (300) at most. The device is
    // `local_rank`, or 0 when the process sees a single GPU (srun --gpus-per-task=1 and similar
    // launchers hand each process its own, renumbered 0).
    static std::unique_ptr<NcclCommunicator> from_env(int rank, int size, int local_rank) {
        WEFT_CHECK(size >= 1 && rank >= 0 && rank < size, "dist::NcclCommunicator::from_env: rank ", rank,
                   " is not a rank of a world of ", size);
        const int devices = cuda::device_count();
        WEFT_CHECK(devices > 0, "dist::NcclCommunicator::from_env: rank ", rank, " sees no CUDA device");
        WEFT_CHECK(devices == 1 || (local_rank >= 0 && local_rank < devices), "dist::NcclCommunicator::from_env: rank ",
                   rank, " has local rank ", local_rank, " but its node shows it ", devices,
                   " GPUs: more processes than GPUs on the node?");
        const int cuda_device = devices == 1 ? 0 : local_rank;

        const auto env = [](const char* name) -> std::string {
            const char* v = std::getenv(name);
            return v ? std::string(v) : std::string();
        };
        const std::string file = env("WEFT_RENDEZVOUS"), addr = env("WEFT_MASTER_ADDR"), port = env("WEFT_MASTER_PORT");
        WEFT_CHECK(size == 1 || !file.empty() || (!addr.empty() && !port.empty()),
                   "dist::NcclCommunicator::from_env: rank ", rank, " of ", size,
                   " cannot get the NCCL id: set WEFT_RENDEZVOUS=<file on a shared filesystem>, or WEFT_MASTER_ADDR "
                   "and WEFT_MASTER_PORT (rank 0's node and a free port), or build the communicator from an MPI one "
                   "(NcclCommunicator::create)");
        ncclUniqueId id{};
        if (rank == 0) check_id(ncclGetUniqueId(&id), "ncclGetUniqueId");
        const std::string_view mine(id.internal, sizeof id.internal);
        std::string shared;
        if (size == 1) {
            shared = std::string(mine);
        } else if (!file.empty()) {
            shared = rendezvous_file(file, rank, mine, sizeof id.internal, rendezvous_timeout());
        } else {
            char* end = nullptr;
            const long p = std::strtol(port.c_str(), &end, 10);
            WEFT_CHECK(end && *end == '\0', "dist::NcclCommunicator::from_env: WEFT_MASTER_PORT='", port,
                       "' is not a port number");
            shared = rendezvous_tcp(addr, int(p), rank, size, mine, sizeof id.internal, rendezvous_timeout());
        }
        std::memcpy(id.internal, shared.data(), sizeof id.internal);
        auto comm = std::make_unique<NcclCommunicator>(rank, size, id, cuda_device);
        // Every rank has joined once the constructor returns: the file has served its purpose, and
        // removing it keeps the next run from reading this run's id.
        if (rank == 0 && !file.empty()) (void)::unlink(file.c_str());
        return comm;
    }

    // The same, with rank, size and local rank from the launcher's variables (dist::launch_env()).
    static std::unique_ptr<NcclCommunicator> from_env(const LaunchEnv& env) {
        return from_env(env.rank, env.size, env.local_rank);
    }
    static std::unique_ptr<NcclCommunicator> from_env() { return from_env(launch_env()); }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string_view backend() const override { return "nccl"; }
    std::string_view device() const override { return Cuda::name; }

    int cuda_device() const { return device_; }
    // The stream the collectives run on (to order other work after one without a host wait).
    cudaStream_t stream() const { return stream_; }
    ncclComm_t nccl_comm() const { return comm_; }

protected:
    Work do_all_reduce(void* data, std::size_t count, DType type, ReduceOp op) override {
        const ncclDataType_t t = detail::nccl_type(type, op, true, "all_reduce");
        return launch("all_reduce", [&] { return ncclAllReduce(data, data, count, t, detail::nccl_op(op), comm_, stream_); });
    }

    Work do_broadcast(void* data, std::size_t count, DType type, int root) override {
        WEFT_CHECK(root >= 0 && root < size_, "dist::broadcast: root ", root, " is not a rank of a world of ", size_);
        const ncclDataType_t t = detail::nccl_type(type, ReduceOp::sum, false, "broadcast");
        return launch("broadcast", [&] { return ncclBroadcast(data, data, count, t, root, comm_, stream_); });
    }

    Work do_all_gather(const void* send, void* recv, std::size_t count, DType type) override {
        const ncclDataType_t t = detail::nccl_type(type, ReduceOp::sum, false, "all_gather");
        return launch("all_gather", [&] { return ncclAllGather(send, recv, count, t, comm_, stream_); });
    }

    // NCCL has no barrier: a one-element all-reduce that every rank must reach, waited for on the host.
    void do_barrier() override { do_all_reduce(scratch_, 1, DType::f32, ReduceOp::sum).wait(); }

private:
    struct Pending {
        cudaEvent_t done = nullptr;
        std::promise<void> promise;
        const char* op = "";
    };

    static void check_id(ncclResult_t r, const char* call) {
        WEFT_CHECK(r == ncclSuccess, "dist::NcclCommunicator: ", call, " failed: ", ncclGetErrorString(r),
                   " (set NCCL_DEBUG=INFO for NCCL's own account)");
    }

    // Everything a collective call shares: refuse once failed, order after the compute stream,
    // enqueue, record the completion event and hand it to the watcher.
    template <class Issue>
    Work launch(const char* op, Issue&& issue) {
        throw_if_failed(op);
        WEFT_CHECK(cuda::current_device() == device_, "dist::", op, ": the nccl communicator of rank ", rank_,
                   " drives CUDA device ", device_, " but this thread's current device is ", cuda::current_device());
        WEFT_CUDA_CHECK(cudaEventRecord(inputs_ready_, cuda::current_stream()));
        WEFT_CUDA_CHECK(cudaStreamWaitEvent(stream_, inputs_ready_, 0));
        const ncclResult_t r = issue();
        if (r != ncclSuccess) fail(op, r);
        Pending p{nullptr, {}, op};
        WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&p.done, cudaEventDisableTiming));
        if (const cudaError_t e = cudaEventRecord(p.done, stream_); e != cudaSuccess) {
            (void)cudaEventDestroy(p.done);
            WEFT_CUDA_CHECK(e);
        }
        Work w(p.promise.get_future().share());
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(p));
        }
        wake_.notify_one();
        return w;
    }

    [[noreturn]] void fail(const char* op, ncclResult_t r) {
        failed_.store(true);
        const std::string msg = std::string("dist::") + op + " (nccl, rank " + std::to_string(rank_) + " of " +
                                std::to_string(size_) + "): " + ncclGetErrorString(r) + detail::nccl_last_error(comm_);
        {
            std::lock_guard lock(mutex_);
            if (error_.empty()) error_ = msg;
        }
        WEFT_FAIL(msg, " (set NCCL_DEBUG=WARN or INFO for NCCL's own account)");
    }

    void throw_if_failed(const char* op) {
        if (!failed_.load()) return;
        std::lock_guard lock(mutex_);
        WEFT_FAIL("dist::", op, ": the nccl communicator of rank ", rank_, " failed earlier and cannot be used: ", error_);
    }

    // The completion thread. Collectives on one stream finish in issue order, so only the oldest
    // pending one needs watching. Polling (not cudaEventSynchronize) leaves room to read NCCL's
    // asynchronous error: a collective whose peer is gone never finishes, and only that error says so.
    void watch() {
        (void)cudaSetDevice(device_);
        for (;;) {
            Pending p;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;  // stopping, nothing left
                p = std::move(queue_.front());
                queue_.pop_front();
            }
            std::string error;
            auto pause = std::chrono::microseconds(2);
            for (;;) {
                const cudaError_t e = cudaEventQuery(p.done);
                if (e == cudaSuccess) break;
                if (e != cudaErrorNotReady) {
                    (void)cudaGetLastError();
                    error = std::string("CUDA error while running the collective: ") + cudaGetErrorName(e) + " (" +
                            cudaGetErrorString(e) + ")";
                    break;
                }
                ncclResult_t async = ncclSuccess;
                const ncclResult_t q = ncclCommGetAsyncError(comm_, &async);
                if (q != ncclSuccess || async != ncclSuccess) {
                    const ncclResult_t bad = q != ncclSuccess ? q : async;
                    error = std::string("NCCL reported an asynchronous error: ") + ncclGetErrorString(bad) +
                            detail::nccl_last_error(comm_);
                    break;
                }
                // Short waits first (a small bucket finishes in microseconds), then at most 1 ms: the
                // thread must not spin a core the data loader needs.
                std::this_thread::sleep_for(pause);
                pause = std::min(pause * 2, std::chrono::microseconds(1000));
            }
            (void)cudaEventDestroy(p.done);
            if (error.empty()) {
                p.promise.set_value();
                continue;
            }
            std::string msg = std::string("weft: dist::") + p.op + " (nccl, rank " + std::to_string(rank_) + " of " +
                              std::to_string(size_) + "): " + error;
            failed_.store(true);
            std::deque<Pending> rest;
            {
                std::lock_guard lock(mutex_);
                if (error_.empty()) error_ = msg;
                rest.swap(queue_);
            }
            // The stream is broken: everything queued behind this collective fails with the same cause.
            p.promise.set_exception(std::make_exception_ptr(Error(msg)));
            for (Pending& q : rest) {
                (void)cudaEventDestroy(q.done);
                q.promise.set_exception(std::make_exception_ptr(Error(msg + " (an earlier collective failed)")));
            }
        }
    }

    void release_cuda() {
        if (stream_) {
            (void)cudaStreamSynchronize(stream_);
            (void)cudaStreamDestroy(stream_);
            stream_ = nullptr;
        }
        if (inputs_ready_) (void)cudaEventDestroy(inputs_ready_);
        inputs_ready_ = nullptr;
        if (scratch_) (void)cudaFree(scratch_);
        scratch_ = nullptr;
    }

    int rank_, size_, device_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    cudaEvent_t inputs_ready_ = nullptr;
    float* scratch_ = nullptr;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Pending> queue_;
    bool stopping_ = false;
    std::atomic<bool> failed_{false};
    std::string error_;
    std::thread watcher_;
};

}  // namespace weft::dist
