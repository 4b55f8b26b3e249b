// weft/exec/cpu/thread_pool.hpp: the CPU threads every weft loop shares.
//
//   parallel_for(0, n, 4096, [&](index_t begin, index_t end) { ... });
//
// One pool per process, sized to the cores (`WEFT_NUM_THREADS` overrides, `set_num_threads`
// changes it). The calling thread works too. A parallel_for issued from inside another one, or
// while another thread owns the pool, runs inline on the caller: nesting never oversubscribes.
// The range is cut into at most one chunk per thread, so small loops stay on one core.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../../core/config.hpp"

#if defined(WEFT_OPENMP) && !defined(_OPENMP) && !defined(__CUDA_ARCH__)
#error "weft: WEFT_OPENMP runs weft's loops on OpenMP's threads and needs OpenMP: compile with -fopenmp (CMake: link OpenMP::OpenMP_CXX), or leave WEFT_OPENMP undefined"
#endif

namespace weft {

class ThreadPool {
public:
    explicit ThreadPool(int threads) : threads_(std::max(1, threads)) {
#if !defined(WEFT_OPENMP)
        for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { work(); });
#endif
    }

    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
    }

    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return threads_; }

    // Calls task(i) for i in [0, tasks), spread over the pool; returns when all are done.
    // The first exception thrown by a task is rethrown here.
    void run(int tasks, const std::function<void(int)>& task) {
        if (tasks <= 0) return;
        std::unique_lock<std::mutex> owner(run_mutex_, std::try_to_lock);
        if (tasks == 1 || threads_ == 1 || inside_ || !owner.owns_lock()) {
            for (int i = 0; i < tasks; ++i) task(i);
            return;
        }
#if defined(WEFT_OPENMP)
        run_openmp(tasks, task);
#else
        run_workers(tasks, task);
#endif
    }

    static int default_threads() {
        if (const char* env = std::getenv("WEFT_NUM_THREADS")) {
            const int n = std::atoi(env);
            if (n > 0) return n;
        }
        return int(std::max(1u, std::thread::hardware_concurrency()));
    }

private:
#if defined(WEFT_OPENMP)
    // The threads are OpenMP's: the same team the OpenMP build of OpenBLAS runs its products on.
    // Its threads spin for a while after a product, so an element-wise loop that follows starts
    // on them at once, where a pool of its own would wake its workers and share the cores with
    // OpenBLAS's spinning ones (docs/design-notes.md, "Threads").
    void run_openmp(int tasks, const std::function<void(int)>& task) {
        std::atomic<int> next{0};
        std::exception_ptr error;
        std::mutex error_mutex;
#pragma omp parallel num_threads(std::min(tasks, threads_))
        {
            inside_ = true;
            for (int i = next.fetch_add(1); i < tasks; i = next.fetch_add(1)) {
                try {
                    task(i);
                } catch (...) {
                    std::lock_guard<std::mutex> lock(error_mutex);
                    if (!error) error = std::current_exception();
                }
            }
            inside_ = false;
        }
        if (error) std::rethrow_exception(error);
    }
#endif

    void run_workers(int tasks, const std::function<void(int)>& task) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // A worker still inside drain() from an earlier run may be between claiming an index
            // and checking it against tasks_; resetting the counters under it would let it run a
            // task of this run twice (or a null one). Wait until every worker is out.
            done_.wait(lock, [this] { return active_ == 0; });
            task_.store(&task);
            tasks_.store(tasks);
            next_.store(0);
            pending_ = tasks;
            error_ = nullptr;
            ++generation_;
        }
        wake_.notify_all();
        drain();
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [this] { return pending_ == 0; });
        task_.store(nullptr);
        if (error_) std::rethrow_exception(error_);
    }

    void work() {
        std::uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
                if (stopping_) return;
                seen = generation_;
                ++active_;
            }
            drain();
            std::lock_guard<std::mutex> lock(mutex_);
            if (--active_ == 0) done_.notify_all();
        }
    }

    // Claims tasks until none are left.
    void drain() {
        inside_ = true;
        for (;;) {
            const int i = next_.fetch_add(1);
            if (i >= tasks_.load()) break;
            try {
                (*task_.load())(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
            std::lock_guard<std::mutex> lock(mutex_);
            if (--pending_ == 0) done_.notify_all();
        }
        inside_ = false;
    }

    int threads_;
    std::vector<std::thread> workers_;
    std::mutex mutex_, run_mutex_;
    std::condition_variable wake_, done_;
    // Atomic because a worker that wakes late may read them while the next run is being set up.
    std::atomic<const std::function<void(int)>*> task_{nullptr};
    std::atomic<int> tasks_{0};
    std::atomic<int> next_{0};
    int pending_ = 0;
    int active_ = 0;  // workers inside drain()
    std::uint64_t generation_ = 0;
    bool stopping_ = false;
    std::exception_ptr error_;
    static inline thread_local bool inside_ = false;
};

namespace detail {
inline std::unique_ptr<ThreadPool>& pool_slot() {
    static std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>(ThreadPool::default_threads());
    return pool;
}
}  // namespace detail

inline ThreadPool& thread_pool() { return *detail::pool_slot(); }

inline int num_threads() { return thread_pool().size(); }

// Resizes the pool. Not to be called while a parallel loop runs.
inline void set_num_threads(int n) { detail::pool_slot() = std::make_unique<ThreadPool>(n); }

// f(begin, end) over [begin, end) cut into chunks of at least `grain` elements.
template <class F>
void parallel_for(index_t begin, index_t end, index_t grain, F&& f) {
    const index_t n = end - begin;
    if (n <= 0) return;
    ThreadPool& pool = thread_pool();
    const index_t max_chunks = std::max<index_t>(1, n / std::max<index_t>(grain, 1));
    const int chunks = int(std::min<index_t>(pool.size(), max_chunks));
    if (chunks <= 1) {
        f(begin, end);
        return;
    }
    pool.run(chunks, [&](int c) {
        const index_t b = begin + n * c / chunks, e = begin + n * (c + 1) / chunks;
        f(b, e);
    });
}

}  // namespace weft
