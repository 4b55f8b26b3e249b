// weft/dist/mpi_communicator.hpp: the communicator of CPU processes, over MPI (WEFT_MPI).
//
//   dist::MpiCommunicator comm;              // under mpirun -np 4: rank 0..3 of 4
//   comm.all_reduce(grad);
//   auto w = comm.all_reduce_async(bucket);  // runs on the communicator's thread meanwhile
//
// Every MPI call of the process, MPI_Init_thread and MPI_Finalize included, runs on one thread
// that the communicator owns: collectives queue there in the order they are issued and run one
// after another. That is what lets an all-reduce proceed while the backward pass computes on the
// other threads (plain MPI only progresses a nonblocking collective inside MPI calls), and it
// needs only MPI_THREAD_FUNNELED from the library. If the program initialised MPI itself, it
// must have asked for MPI_THREAD_SERIALIZED or more, and finalises it itself.
//
// MPI's default error handler aborts the job; here MPI errors return and become weft::Error
// naming the collective. A rank that fails while others wait in a collective would hang the
// job: abort() (MPI_Abort) ends all ranks, which is what `denseclip` does on an error.
// bf16 and half have no MPI reduction; gradients are reduced in float or double.
#pragma once

#if !defined(WEFT_MPI)
#error "weft/dist/mpi_communicator.hpp needs MPI: configure with -DWEFT_MPI=ON (Debian: libopenmpi-dev)"
#endif

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "communicator.hpp"

namespace weft::dist {

namespace detail {

inline void mpi_check(int code, const char* what) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    WEFT_FAIL("dist::MpiCommunicator: ", what, " failed: ", std::string(text, std::size_t(len)));
}

// The MPI type of a weft element type; reduce = true refuses types MPI cannot add.
inline MPI_Datatype mpi_type(DType t, bool reduce) {
    switch (t) {
        case DType::f32: return MPI_FLOAT;
        case DType::f64: return MPI_DOUBLE;
        case DType::i32: return MPI_INT32_T;
        case DType::i64: return MPI_INT64_T;
        case DType::u8: return MPI_UINT8_T;
        case DType::b8: return MPI_C_BOOL;
        case DType::bf16:
        case DType::f16:
            WEFT_CHECK(!reduce, "dist::MpiCommunicator: MPI cannot reduce ", dtype_name(t),
                       " values; reduce them in float (gradients of a bf16 model are reduced in fp32)");
            return MPI_UINT16_T;  // moved, not added: the bits travel as they are
    }
    WEFT_FAIL("dist::MpiCommunicator: unknown element type");
}

inline MPI_Op mpi_op(ReduceOp op) {
    switch (op) {
        case ReduceOp::sum: return MPI_SUM;
        case ReduceOp::max: return MPI_MAX;
        case ReduceOp::min: return MPI_MIN;
    }
    return MPI_SUM;
}

}  // namespace detail

class MpiCommunicator final : public Communicator {
public:
    MpiCommunicator() {
        static std::atomic<bool> exists{false};
        WEFT_CHECK(!exists.exchange(true), "dist::MpiCommunicator: one per process (it owns the process's MPI calls)");
        thread_ = std::thread([this] { run(); });
        submit([this] {
            int initialised = 0;
            MPI_Initialized(&initialised);
            if (!initialised) {
                int provided = 0;
                detail::mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
                owns_mpi_ = true;
            } else {
                int level = 0;
                MPI_Query_thread(&level);
                WEFT_CHECK(level >= MPI_THREAD_SERIALIZED, "dist::MpiCommunicator: MPI was initialised with a thread "
                           "level below MPI_THREAD_SERIALIZED; the communicator calls MPI from its own thread");
            }
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
            detail::mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
            detail::mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
        }).wait();
    }
    MpiCommunicator(const MpiCommunicator&) = delete;
    MpiCommunicator& operator=(const MpiCommunicator&) = delete;

    ~MpiCommunicator() override {
        try {
            if (owns_mpi_) submit([] { MPI_Finalize(); }).wait();
        } catch (...) {
        }
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string_view backend() const override { return "mpi"; }
    std::string_view device() const override { return Cpu::name; }

    // MPI_Abort ends every rank. It is called from the failing thread, not the MPI thread, which
    // may be blocked in the very collective the other ranks wait in.
    [[noreturn]] void abort(int code) override {
        std::fflush(nullptr);
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);
    }

protected:
    Work do_all_reduce(void* data, std::size_t count, DType type, ReduceOp op) override {
        const MPI_Datatype t = detail::mpi_type(type, true);
        return submit([=] {
            detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, data, checked(count), t, detail::mpi_op(op), MPI_COMM_WORLD),
                              "MPI_Allreduce");
        });
    }
    Work do_broadcast(void* data, std::size_t count, DType type, int root) override {
        const MPI_Datatype t = detail::mpi_type(type, false);
        return submit([=] {
            detail::mpi_check(MPI_Bcast(data, checked(count), t, root, MPI_COMM_WORLD), "MPI_Bcast");
        });
    }
    Work do_all_gather(const void* send, void* recv, std::size_t count, DType type) override {
        const MPI_Datatype t = detail::mpi_type(type, false);
        return submit([=] {
            const int n = checked(count);
            detail::mpi_check(MPI_Allgather(send, n, t, recv, n, t, MPI_COMM_WORLD),
                              "MPI_Allgather");
        });
    }
    void do_barrier() override {
        submit([] { detail::mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }).wait();
    }

private:
    static int checked(std::size_t count) {
        WEFT_CHECK(count < std::size_t(1) << 31, "dist::MpiCommunicator: ", count,
                   " elements in one collective exceed MPI's int count; split the buffer");
        return int(count);
    }

    template <class F>
    Work submit(F&& f) {
        std::packaged_task<void()> task(std::forward<F>(f));
        std::shared_future<void> done = task.get_future().share();
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(task));
        }
        cv_.notify_one();
        return Work(std::move(done));
    }

    void run() {
        for (;;) {
            std::packaged_task<void()> task;
            {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;
                task = std::move(queue_.front());
                queue_.pop_front();
            }
            task();
        }
    }

    int rank_ = 0, size_ = 1;
    bool owns_mpi_ = false;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::packaged_task<void()>> queue_;
    bool stopping_ = false;
};

}  // namespace weft::dist
