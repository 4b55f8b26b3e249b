// bench/cuda/elementwise.cu: weft's CUDA kernels against cudaMemcpy on the same bytes.
//
// Every case works on 16M floats (2^24, 64 MiB per array: far beyond the 50-60 MiB L2 of an
// H100/H200 when three inputs stream through) and reports bytes_per_second for the bytes the
// operation must move, counted once per array and pass:
//   fused_axpb   y = a * b + c                     3 reads + 1 write = 16 B/element, one kernel
//   chain5       y = (a * b + c) * (a - c) / b     3 reads + 1 write = 16 B/element, 5 ops fused
//   memcpy       cudaMemcpyAsync device to device  1 read  + 1 write =  8 B/element
//   bias_add     y[i, j] = m[i, j] + bias[j]       [4096, 4096] + [4096]: the strided kernel, 8 B/element
//   transpose    m.t().contiguous()                copy_strided, 8 B/element
//   sum_rows     sum(m, 1), sum_cols sum(m, 0)     reductions, 4 B/element
// A kernel at memcpy speed moves its bytes as fast as the GPU can (ratio ~1); the device check's
// table (scripts/device-table.py, the MFU column, marked m) divides each case's bytes/s by memcpy's.
//
// Times come from CUDA events around the launches (manual time), on weft's current stream;
// inputs are allocated and written once, before any timing.
#include <benchmark/benchmark.h>

#include <cuda_runtime.h>

#include <cstdint>

#include <weft/weft.hpp>

namespace {

using weft::Cuda;
using weft::Tensor;

constexpr std::int64_t kN = std::int64_t(1) << 24;  // 16M elements
constexpr std::int64_t kSide = std::int64_t(1) << 12;  // 4096 x 4096 = 16M

struct Inputs {
    Tensor<float, 1, Cuda> a, b, c, y;
    Tensor<float, 2, Cuda> m, my;
    Tensor<float, 1, Cuda> bias;
};

bool have_gpu() { return weft::cuda::device_count() > 0; }

Inputs& inputs() {
    static Inputs in = [] {
        Inputs i;
        weft::Generator g(1);
        i.a = Tensor<float, 1, Cuda>::rand({kN}, g);
        i.b = Tensor<float, 1, Cuda>::rand({kN}, g);
        i.b = i.b + 1.0f;  // in [1, 2): the chain's division is well conditioned
        i.c = Tensor<float, 1, Cuda>::rand({kN}, g);
        i.y = Tensor<float, 1, Cuda>::zeros({kN});
        i.m = Tensor<float, 2, Cuda>::randn({kSide, kSide}, g);
        i.my = Tensor<float, 2, Cuda>::zeros({kSide, kSide});
        i.bias = Tensor<float, 1, Cuda>::randn({kSide}, g);
        weft::cuda::synchronize();
        return i;
    }();
    return in;
}

// Times `body` with CUDA events on the current stream, once per benchmark iteration.
template <class Body>
void timed(benchmark::State& state, std::int64_t bytes_per_iteration, Body body) {
    if (!have_gpu()) {
        state.SkipWithError("no CUDA device");
        return;
    }
    inputs();
    cudaEvent_t start = nullptr, stop = nullptr;
    WEFT_CUDA_CHECK(cudaEventCreate(&start));
    WEFT_CUDA_CHECK(cudaEventCreate(&stop));
    const cudaStream_t stream = weft::cuda::current_stream();
    body();  // warm-up: first launch of each kernel, allocator cache filled
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (auto _ : state) {
        WEFT_CUDA_CHECK(cudaEventRecord(start, stream));
        body();
        WEFT_CUDA_CHECK(cudaEventRecord(stop, stream));
        WEFT_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        WEFT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        state.SetIterationTime(double(ms) * 1e-3);
    }
    state.SetBytesProcessed(state.iterations() * bytes_per_iteration);
    WEFT_CUDA_CHECK(cudaEventDestroy(start));
    WEFT_CUDA_CHECK(cudaEventDestroy(stop));
}

void BM_fused_axpb(benchmark::State& state) {
    timed(state, kN * 16, [] {
        auto& in = inputs();
        in.y = in.a * in.b + in.c;
    });
}

void BM_chain5(benchmark::State& state) {
    timed(state, kN * 16, [] {
        auto& in = inputs();
        in.y = (in.a * in.b + in.c) * (in.a - in.c) / in.b;
    });
}

void BM_memcpy(benchmark::State& state) {
    timed(state, kN * 8, [] {
        auto& in = inputs();
        WEFT_CUDA_CHECK(cudaMemcpyAsync(in.y.data(), in.a.data(), std::size_t(kN) * sizeof(float),
                                        cudaMemcpyDeviceToDevice, weft::cuda::current_stream()));
    });
}

void BM_bias_add(benchmark::State& state) {
    timed(state, kN * 8, [] {
        auto& in = inputs();
        in.my = in.m + in.bias;
    });
}

void BM_transpose(benchmark::State& state) {
    timed(state, kN * 8, [] {
        auto& in = inputs();
        in.my.copy_from(in.m.t());
    });
}

void BM_sum_rows(benchmark::State& state) {
    timed(state, kN * 4, [] {
        auto& in = inputs();
        const auto s = weft::sum(in.m, 1);  // a kernel launch: never optimised away
        (void)s;
    });
}

void BM_sum_cols(benchmark::State& state) {
    timed(state, kN * 4, [] {
        auto& in = inputs();
        const auto s = weft::sum(in.m, 0);  // a kernel launch: never optimised away
        (void)s;
    });
}

}  // namespace

BENCHMARK(BM_fused_axpb)->Name("cuda/fused_axpb/16M")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_chain5)->Name("cuda/chain5/16M")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_memcpy)->Name("cuda/memcpy/16M")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_bias_add)->Name("cuda/bias_add/4096x4096")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_transpose)->Name("cuda/transpose/4096x4096")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_sum_rows)->Name("cuda/sum_rows/4096x4096")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_sum_cols)->Name("cuda/sum_cols/4096x4096")->UseManualTime()->Unit(benchmark::kMicrosecond);
