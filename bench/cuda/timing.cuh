// bench/cuda/timing.cuh: CUDA-event timing and the counters that scripts/device-table.py reads,
// shared by the GPU benchmarks (gemm.cu, attention.cu, vit.cu, denseclip.cu).
//
//   weft_bench::cuda_timed(state, {.flop = 2.0 * m * n * k, .inner = 1}, [&] { c = weft::matmul(a, b); });
//
// Each benchmark iteration records an event, runs the body `inner` times on weft's current
// stream, records a second event and waits for it: the iteration's (manual) time. `inner` > 1
// keeps launches of short kernels queued back to back, so that a 20 µs kernel is timed on the GPU
// rather than as the host's launch latency (PyTorch's side, bench/gpu/, times with the same rule).
// One untimed body runs first (first launches, cuBLAS heuristics, the caching allocator filled).
// Google Benchmark's own time is per iteration, `inner` bodies, so --benchmark_min_time counts
// GPU time; the counters below are per body.
//
// Counters, per body (the names bench/gpu/*.py write too):
//   median_ms  the median over this run's iterations of the iteration's time / inner
//   flop       the body's floating-point operations, when the case counts them
//   TFLOPs     flop as a rate (TFLOP/s), for the console
//   peak_mib   weft's caching-allocator peak (MemoryStats::peak_allocated_bytes, block sizes as
//              rounded by the allocator) since `PeakMemory` was made: made before a case builds
//              its inputs or model, it counts everything the case holds at once
#pragma once

#include <benchmark/benchmark.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include <weft/cuda.cuh>

namespace weft_bench {

inline bool have_gpu() { return weft::cuda::device_count() > 0; }

// The caching allocator's peak since construction, in MiB.
class PeakMemory {
public:
    PeakMemory() { weft::cuda::reset_peak_memory_stats(); }
    double mib() const { return double(weft::cuda::memory_stats().peak_allocated_bytes) / double(1 << 20); }
};

struct TimedOptions {
    double flop = 0;  // per body; 0: not counted
    int inner = 1;    // bodies per timed iteration
};

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Times `body` as described at the top; returns each iteration's time per body, in ms.
template <class Body>
std::vector<double> cuda_timed(benchmark::State& state, const TimedOptions& o, Body&& body) {
    std::vector<double> ms;
    if (!have_gpu()) {
        state.SkipWithError("no CUDA device");
        return ms;
    }
    cudaEvent_t start = nullptr, stop = nullptr;
    WEFT_CUDA_CHECK(cudaEventCreate(&start));
    WEFT_CUDA_CHECK(cudaEventCreate(&stop));
    const cudaStream_t stream = weft::cuda::current_stream();
    body();  // warm-up
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (auto _ : state) {
        WEFT_CUDA_CHECK(cudaEventRecord(start, stream));
        for (int i = 0; i < o.inner; ++i) body();
        WEFT_CUDA_CHECK(cudaEventRecord(stop, stream));
        WEFT_CUDA_CHECK(cudaEventSynchronize(stop));
        float elapsed = 0;
        WEFT_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
        ms.push_back(double(elapsed) / o.inner);
        state.SetIterationTime(double(elapsed) * 1e-3);
    }
    WEFT_CUDA_CHECK(cudaEventDestroy(start));
    WEFT_CUDA_CHECK(cudaEventDestroy(stop));
    state.counters["median_ms"] = median(ms);
    if (o.flop > 0) {
        state.counters["flop"] = o.flop;
        state.counters["TFLOPs"] =
            benchmark::Counter(o.flop * o.inner * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
    }
    return ms;
}

}  // namespace weft_bench
