// The CPU thread pool and parallel_for (weft/exec/cpu/thread_pool.hpp).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include <weft/exec/cpu/thread_pool.hpp>

using namespace weft;
using Catch::Contains;

namespace {

// Restores the pool size a test changed, even when the test fails.
struct ThreadsGuard {
    int saved = num_threads();
    ~ThreadsGuard() { set_num_threads(saved); }
};

struct Chunk {
    index_t begin, end;
};

// Runs parallel_for over [begin, end) and returns the chunks it was cut into, checking that every
// index was visited exactly once.
std::vector<Chunk> cover(index_t begin, index_t end, index_t grain) {
    const index_t n = end > begin ? end - begin : 0;
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
    std::mutex m;
    std::vector<Chunk> chunks;
    parallel_for(begin, end, grain, [&](index_t b, index_t e) {
        for (index_t i = b; i < e; ++i) hits[std::size_t(i - begin)].fetch_add(1);
        std::lock_guard<std::mutex> lock(m);
        chunks.push_back({b, e});
    });
    for (index_t i = 0; i < n; ++i) {
        if (hits[std::size_t(i)].load() != 1) {
            INFO("begin " << begin << " end " << end << " grain " << grain << " index " << begin + i);
            REQUIRE(hits[std::size_t(i)].load() == 1);
        }
    }
    return chunks;
}

}  // namespace

TEST_CASE("parallel_for visits every index exactly once") {
    ThreadsGuard guard;
    for (int threads : {1, 2, 3, 4, 8}) {
        set_num_threads(threads);
        REQUIRE(num_threads() == threads);
        for (index_t n : {0, 1, 2, 3, 5, 7, 8, 63, 64, 65, 1000, 4099, 100003}) {
            for (index_t grain : {index_t(0), index_t(1), index_t(2), index_t(7), index_t(64), index_t(1000),
                                  index_t(1) << 20}) {
                for (index_t begin : {index_t(0), index_t(17)}) {
                    const auto chunks = cover(begin, begin + n, grain);
                    if (n == 0) {
                        REQUIRE(chunks.empty());
                        continue;
                    }
                    // At most one chunk per thread, each at least `grain` long (or the whole range).
                    REQUIRE(chunks.size() >= 1);
                    REQUIRE(int(chunks.size()) <= threads);
                    for (const auto& c : chunks) {
                        REQUIRE(c.begin >= begin);
                        REQUIRE(c.end <= begin + n);
                        REQUIRE(c.end - c.begin >= std::min(std::max<index_t>(grain, 1), n));
                    }
                    // Enough work is really split when there are threads for it.
                    if (threads > 1 && n >= 2 * std::max<index_t>(grain, 1)) REQUIRE(chunks.size() >= 2);
                }
            }
        }
    }
    // A reversed range is empty.
    REQUIRE(cover(10, 5, 1).empty());
}

TEST_CASE("parallel_for uses several threads when it can") {
    ThreadsGuard guard;
    set_num_threads(3);
    std::mutex m;
    std::set<std::thread::id> ids;
    // Each chunk waits until three different threads have checked in (or gives up after ~2 s),
    // so the test does not depend on the scheduler's timing to see the workers take part.
    std::atomic<int> arrived{0};
    parallel_for(0, 3, 1, [&](index_t, index_t) {
        {
            std::lock_guard<std::mutex> lock(m);
            ids.insert(std::this_thread::get_id());
        }
        arrived.fetch_add(1);
        for (int spin = 0; spin < 2000 && arrived.load() < 3; ++spin)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    REQUIRE(ids.size() == 3);
    REQUIRE(ids.count(std::this_thread::get_id()) == 1);  // the caller works too
}

TEST_CASE("nested parallel_for runs inline without deadlock") {
    ThreadsGuard guard;
    set_num_threads(4);
    const index_t outer = 8, inner = 5000;
    std::vector<std::atomic<int>> hits(std::size_t(outer * inner));
    std::atomic<int> inline_violations{0};
    parallel_for(0, outer, 1, [&](index_t ob, index_t oe) {
        const auto me = std::this_thread::get_id();
        for (index_t o = ob; o < oe; ++o) {
            parallel_for(0, inner, 1, [&](index_t ib, index_t ie) {
                if (std::this_thread::get_id() != me) inline_violations.fetch_add(1);
                for (index_t i = ib; i < ie; ++i) hits[std::size_t(o * inner + i)].fetch_add(1);
            });
        }
    });
    REQUIRE(inline_violations.load() == 0);
    for (auto& h : hits) REQUIRE(h.load() == 1);
}

TEST_CASE("parallel_for rethrows a task's exception on the caller") {
    ThreadsGuard guard;
    for (int threads : {1, 2, 4}) {
        set_num_threads(threads);
        std::atomic<int> done{0};
        REQUIRE_THROWS_WITH(parallel_for(0, 1000, 1,
                                         [&](index_t b, index_t e) {
                                             if (b <= 500 && 500 < e) throw std::runtime_error("chunk 500 failed");
                                             done.fetch_add(int(e - b));
                                         }),
                            Contains("chunk 500 failed"));
        // The other chunks still ran to completion before the rethrow (with one thread there is
        // one chunk, the failing one).
        REQUIRE(done.load() == (threads == 1 ? 0 : 1000 - 1000 / threads));
        // The pool is still usable afterwards.
        REQUIRE(cover(0, 777, 1).size() >= 1);
    }
    // Several throwing chunks: one exception arrives, not a crash.
    set_num_threads(4);
    REQUIRE_THROWS_AS(parallel_for(0, 4, 1, [](index_t, index_t) { throw std::logic_error("all fail"); }),
                      std::logic_error);
}

TEST_CASE("ThreadPool::run executes each task once") {
    ThreadPool pool(3);
    REQUIRE(pool.size() == 3);
    for (int tasks : {0, 1, 2, 3, 4, 17, 100}) {
        std::vector<std::atomic<int>> hits(std::size_t(std::max(tasks, 1)));
        pool.run(tasks, [&](int i) { hits[std::size_t(i)].fetch_add(1); });
        for (int i = 0; i < tasks; ++i) REQUIRE(hits[std::size_t(i)].load() == 1);
    }
    ThreadPool single(0);  // clamped to one thread: runs inline
    REQUIRE(single.size() == 1);
    int sum = 0;
    single.run(4, [&](int i) { sum += i; });
    REQUIRE(sum == 6);
}

TEST_CASE("back-to-back tiny parallel loops never run a chunk twice") {
    // Thousands of short runs in a row: a worker that is late to finish one run must not claim
    // work of the next (that would run a chunk twice, or call a task that no longer exists).
    ThreadsGuard guard;
    for (int threads : {2, 3, 5}) {
        set_num_threads(threads);
        int bad = 0;
        for (int it = 0; it < 20000; ++it) {
            const index_t n = 2 + it % (2 * threads);
            std::vector<int> hits(std::size_t(n), 0);
            parallel_for(0, n, 1, [&](index_t b, index_t e) {
                for (index_t i = b; i < e; ++i) ++hits[std::size_t(i)];
            });
            for (int h : hits) bad += h != 1;
        }
        REQUIRE(bad == 0);
    }
}

TEST_CASE("parallel_for from two user threads at once") {
    ThreadsGuard guard;
    set_num_threads(4);
    // One caller owns the pool; the other runs inline. Both finish with correct results.
    std::vector<long long> sums(2, 0);
    auto job = [&](int who) {
        for (int rep = 0; rep < 200; ++rep) {
            std::vector<std::atomic<long long>> part(1);
            parallel_for(0, 10000, 100, [&](index_t b, index_t e) {
                long long s = 0;
                for (index_t i = b; i < e; ++i) s += i;
                part[0].fetch_add(s);
            });
            sums[std::size_t(who)] += part[0].load();
        }
    };
    std::thread t1(job, 0), t2(job, 1);
    t1.join();
    t2.join();
    REQUIRE(sums[0] == 200LL * 49995000LL);
    REQUIRE(sums[1] == 200LL * 49995000LL);
}

TEST_CASE("WEFT_NUM_THREADS sets the default pool size") {
    const char* old = std::getenv("WEFT_NUM_THREADS");
    const std::string saved = old ? old : "";
    setenv("WEFT_NUM_THREADS", "3", 1);
    REQUIRE(ThreadPool::default_threads() == 3);
    setenv("WEFT_NUM_THREADS", "0", 1);  // not a positive count: ignored
    REQUIRE(ThreadPool::default_threads() == int(std::max(1u, std::thread::hardware_concurrency())));
    setenv("WEFT_NUM_THREADS", "junk", 1);
    REQUIRE(ThreadPool::default_threads() >= 1);
    if (old) setenv("WEFT_NUM_THREADS", saved.c_str(), 1);
    else unsetenv("WEFT_NUM_THREADS");
}
