// bench/libtorch/matmul.cpp: libtorch's side of bench/matmul.cpp (compiled only when CMake finds
// libtorch; the one file of weft-bench that includes libtorch's headers, kept to the few
// per-operator headers it needs because they are slow to compile).
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/randn.h>
#include <torch/version.h>

#include <cstdint>
#include <string>
#include <thread>

namespace weft_bench {

// libtorch at its best on this machine: one intra-op thread per core (its GEMM is OpenBLAS's,
// which threads through OpenMP when the OpenMP build of libopenblas is installed).
void libtorch_matmul(benchmark::State& state, std::int64_t m, std::int64_t k, std::int64_t n,
                     bool new_result) {
    at::set_num_threads(int(std::thread::hardware_concurrency()));
    const at::Tensor a = at::randn({m, k}), b = at::randn({k, n});
    at::Tensor c = at::empty({m, n});
    at::mm_out(c, a, b);  // first touch of c, and the BLAS threads started
    for (auto _ : state) {
        if (new_result) {
            at::Tensor r = at::matmul(a, b);
            benchmark::DoNotOptimize(r.data_ptr());
        } else {
            at::mm_out(c, a, b);
            benchmark::DoNotOptimize(c.data_ptr());
        }
        benchmark::ClobberMemory();
    }
    state.counters["threads"] = at::get_num_threads();
}

namespace {
const bool context = [] {
    benchmark::AddCustomContext("libtorch", TORCH_VERSION);
    return true;
}();
}  // namespace

}  // namespace weft_bench
