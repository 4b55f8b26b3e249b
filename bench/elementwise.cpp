// bench/elementwise.cpp: fused element-wise expressions against Eigen, xtensor and memcpy.
//
// Every case works on 16M floats (2^24, 64 MiB per array: well beyond the last-level cache, so
// each pass streams from DRAM) and reports bytes_per_second for the bytes the operation must
// move, counted once per array and pass:
//   fused_axpb   y = a * b + c                    3 reads + 1 write = 16 B/element
//   chain5       y = (a * b + c) * (a - c) / b    3 reads + 1 write = 16 B/element (5 ops, fused)
//   memcpy       std::memcpy                      1 read  + 1 write =  8 B/element
//   copy         weft copying one tensor into another, 1 read + 1 write = 8 B/element
// Write-allocate (the cache reading a destination line before it is overwritten) is not
// counted: it is traffic the hardware adds, not traffic the operation needs.
//
// Names form comparison groups: <case>/16M/{weft, eigen, xtensor, weft_1thread}. `weft` uses
// the pool as configured (all cores, or WEFT_NUM_THREADS); Eigen and xtensor run element-wise
// expressions on one thread (neither parallelises them without extra configuration), which is
// what `weft_1thread` compares with like for like. Outputs are allocated and touched before the
// timed loop, so no case pays for first-touch page faults.
//
// Medians need repetitions; run for example
//   weft-bench --benchmark_filter='fused_axpb|chain5|memcpy|copy'
//              --benchmark_repetitions=5 --benchmark_report_aggregates_only=true   (one line)
// (docs/performance.md has the numbers and how to read them).
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

namespace {

constexpr std::int64_t kN = std::int64_t(1) << 24;  // 16M elements
constexpr std::int64_t kFusedBytes = 16;            // per element: 3 reads + 1 write of a float
constexpr std::int64_t kCopyBytes = 8;              // per element: 1 read + 1 write of a float

// Deterministic inputs; b stays in [1, 2) so the chain's division is well conditioned.
float value_a(std::int64_t i) { return float(i % 1000) * 0.001f - 0.5f; }
float value_b(std::int64_t i) { return 1.0f + float(i % 997) * 0.001f; }
float value_c(std::int64_t i) { return float(i % 991) * 0.002f - 1.0f; }

template <class F>
void fill(float* p, F f) {
    for (std::int64_t i = 0; i < kN; ++i) p[i] = f(i);
}

void finish(benchmark::State& state, std::int64_t bytes_per_element) {
    state.SetBytesProcessed(std::int64_t(state.iterations()) * kN * bytes_per_element);
    state.SetItemsProcessed(std::int64_t(state.iterations()) * kN);
}

// Sets weft's pool to n threads for one benchmark and restores the previous size afterwards.
class PoolSize {
public:
    explicit PoolSize(int n) : previous_(weft::num_threads()) { weft::set_num_threads(n); }
    ~PoolSize() { weft::set_num_threads(previous_); }
    PoolSize(const PoolSize&) = delete;
    PoolSize& operator=(const PoolSize&) = delete;

private:
    int previous_;
};

// ---- weft ----------------------------------------------------------------------------------------

struct WeftData {
    using T1 = weft::Tensor<float, 1>;
    T1 a = T1::empty({kN}), b = T1::empty({kN}), c = T1::empty({kN}), y = T1::empty({kN});
    WeftData() {
        fill(a.data(), value_a);
        fill(b.data(), value_b);
        fill(c.data(), value_c);
        std::memset(y.data(), 0, std::size_t(kN) * sizeof(float));  // first touch outside the timing
    }
};

template <class Body>
void run_weft(benchmark::State& state, Body body) {
    WeftData d;
    for (auto _ : state) {
        body(d);  // assigns into the existing d.y: no allocation
        benchmark::DoNotOptimize(d.y.data());
        benchmark::ClobberMemory();
    }
}

void weft_axpb(WeftData& d) { d.y = d.a * d.b + d.c; }
void weft_chain5(WeftData& d) { d.y = (d.a * d.b + d.c) * (d.a - d.c) / d.b; }

void BM_weft_axpb(benchmark::State& state) {
    run_weft(state, weft_axpb);
    finish(state, kFusedBytes);
}
void BM_weft_axpb_1thread(benchmark::State& state) {
    PoolSize one(1);
    run_weft(state, weft_axpb);
    finish(state, kFusedBytes);
}
void BM_weft_chain5(benchmark::State& state) {
    run_weft(state, weft_chain5);
    finish(state, kFusedBytes);
}
void BM_weft_chain5_1thread(benchmark::State& state) {
    PoolSize one(1);
    run_weft(state, weft_chain5);
    finish(state, kFusedBytes);
}

// `y = x` between two tensors rebinds the handle (tensors copy like shared_ptr), so the element
// copy goes through the same path as `y = expression`: the executor's fused linear loop.
void BM_weft_copy(benchmark::State& state) {
    WeftData d;
    for (auto _ : state) {
        weft::assign_expression(d.y, d.a);
        benchmark::DoNotOptimize(d.y.data());
        benchmark::ClobberMemory();
    }
    finish(state, kCopyBytes);
}

// A fresh result tensor every iteration, as `Tensor z = a * b + c;` in a training step: measures
// what allocation adds (the host cache hands back the same block each time).
void BM_weft_axpb_new_tensor(benchmark::State& state) {
    WeftData d;
    for (auto _ : state) {
        weft::Tensor<float, 1> z = d.a * d.b + d.c;
        benchmark::DoNotOptimize(z.data());
        benchmark::ClobberMemory();
    }
    finish(state, kFusedBytes);
}

// ---- Eigen ---------------------------------------------------------------------------------------

struct EigenData {
    Eigen::ArrayXf a{kN}, b{kN}, c{kN}, y{kN};
    EigenData() {
        fill(a.data(), value_a);
        fill(b.data(), value_b);
        fill(c.data(), value_c);
        y.setZero();
    }
};

void BM_eigen_axpb(benchmark::State& state) {
    EigenData d;
    for (auto _ : state) {
        d.y = d.a * d.b + d.c;
        benchmark::DoNotOptimize(d.y.data());
        benchmark::ClobberMemory();
    }
    finish(state, kFusedBytes);
}
void BM_eigen_chain5(benchmark::State& state) {
    EigenData d;
    for (auto _ : state) {
        d.y = (d.a * d.b + d.c) * (d.a - d.c) / d.b;
        benchmark::DoNotOptimize(d.y.data());
        benchmark::ClobberMemory();
    }
    finish(state, kFusedBytes);
}

// ---- xtensor -------------------------------------------------------------------------------------

struct XtData {
    using X = xt::xtensor<float, 1>;
    X a = X::from_shape({std::size_t(kN)}), b = X::from_shape({std::size_t(kN)}),
      c = X::from_shape({std::size_t(kN)}), y = X::from_shape({std::size_t(kN)});
    XtData() {
        fill(a.data(), value_a);
        fill(b.data(), value_b);
        fill(c.data(), value_c);
        std::memset(y.data(), 0, std::size_t(kN) * sizeof(float));
    }
};

void BM_xtensor_axpb(benchmark::State& state) {
    XtData d;
    for (auto _ : state) {
        xt::noalias(d.y) = d.a * d.b + d.c;
        benchmark::DoNotOptimize(d.y.data());
        benchmark::ClobberMemory();
    }
    finish(state, kFusedBytes);
}
void BM_xtensor_chain5(benchmark::State& state) {
    XtData d;
    for (auto _ : state) {
        xt::noalias(d.y) = (d.a * d.b + d.c) * (d.a - d.c) / d.b;
        benchmark::DoNotOptimize(d.y.data());
        benchmark::ClobberMemory();
    }
    finish(state, kFusedBytes);
}

// ---- memcpy: the bandwidth reference -------------------------------------------------------------

struct CopyData {
    std::vector<float> src = std::vector<float>(std::size_t(kN)), dst = std::vector<float>(std::size_t(kN));
    CopyData() { fill(src.data(), value_a); }  // the vectors' zero-initialisation touched dst
};

void BM_memcpy(benchmark::State& state) {
    CopyData d;
    for (auto _ : state) {
        std::memcpy(d.dst.data(), d.src.data(), std::size_t(kN) * sizeof(float));
        benchmark::DoNotOptimize(d.dst.data());
        benchmark::ClobberMemory();
    }
    finish(state, kCopyBytes);
}

// Two halves on two threads: the calling thread and one std::thread, independent of weft's pool.
void BM_memcpy_2threads(benchmark::State& state) {
    CopyData d;
    const std::size_t half = std::size_t(kN / 2);
    for (auto _ : state) {
        std::thread other([&] { std::memcpy(d.dst.data() + half, d.src.data() + half, half * sizeof(float)); });
        std::memcpy(d.dst.data(), d.src.data(), half * sizeof(float));
        other.join();
        benchmark::DoNotOptimize(d.dst.data());
        benchmark::ClobberMemory();
    }
    finish(state, kCopyBytes);
}

}  // namespace

// Every case: milliseconds, wall-clock time (the threaded ones would otherwise report the
// calling thread's CPU time only).
#define WEFT_ELEMENTWISE_BENCH(fn, name) BENCHMARK(fn)->Name(name)->Unit(benchmark::kMillisecond)->UseRealTime()

WEFT_ELEMENTWISE_BENCH(BM_memcpy, "memcpy/16M");
WEFT_ELEMENTWISE_BENCH(BM_memcpy_2threads, "memcpy/16M/2threads");
WEFT_ELEMENTWISE_BENCH(BM_weft_copy, "copy/16M/weft");

WEFT_ELEMENTWISE_BENCH(BM_weft_axpb, "fused_axpb/16M/weft");
WEFT_ELEMENTWISE_BENCH(BM_eigen_axpb, "fused_axpb/16M/eigen");
WEFT_ELEMENTWISE_BENCH(BM_xtensor_axpb, "fused_axpb/16M/xtensor");
WEFT_ELEMENTWISE_BENCH(BM_weft_axpb_1thread, "fused_axpb/16M/weft_1thread");
WEFT_ELEMENTWISE_BENCH(BM_weft_axpb_new_tensor, "fused_axpb/16M/weft_new_tensor");

WEFT_ELEMENTWISE_BENCH(BM_weft_chain5, "chain5/16M/weft");
WEFT_ELEMENTWISE_BENCH(BM_eigen_chain5, "chain5/16M/eigen");
WEFT_ELEMENTWISE_BENCH(BM_xtensor_chain5, "chain5/16M/xtensor");
WEFT_ELEMENTWISE_BENCH(BM_weft_chain5_1thread, "chain5/16M/weft_1thread");

#undef WEFT_ELEMENTWISE_BENCH
