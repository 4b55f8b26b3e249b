// bench/matmul.cpp: weft's CPU GEMM against libtorch's, on the transformer shapes of issue 3.
//
// M x K x N in {197x768x2304 (ViT-B/16 qkv projection, one image), 1024x768x3072 and
// 4096x768x3072 (MLP up-projection), 4096x3072x768 (MLP down-projection)}, float:
//   matmul/<M>x<K>x<N>/weft          weft::matmul_out(c, a, b) into a preallocated c
//   matmul/<M>x<K>x<N>/libtorch      at::mm_out(c, a, b) into a preallocated c
//   matmul/<M>x<K>x<N>/weft_eigen    weft's Eigen engine, called directly (the engine choice)
//   matmul_new/<M>x<K>x<N>/weft      c = weft::matmul(a, b): a new result every time
//   matmul_new/<M>x<K>x<N>/libtorch  c = at::matmul(a, b)
// Each reports its wall time (threads run inside) and GFLOP (2*M*K*N per product) as a rate.
// The libtorch cases exist when CMake found libtorch (WEFT_BENCH_LIBTORCH); their code is in
// bench/libtorch/matmul.cpp, the only file that includes libtorch's headers. Pairs are
// registered next to each other so that a run compares them under the same machine load.
//
// libtorch at its best: at::set_num_threads(<cores>) and the OpenMP build of OpenBLAS selected
// with update-alternatives (docs/performance.md, "GEMM versus libtorch", says how). Each case
// runs five repetitions and reports their mean, median, stddev and cv; compare the medians:
//   weft-bench --benchmark_filter=matmul
#include <benchmark/benchmark.h>

#include <array>
#include <string>

#include <weft/ops/cpu/gemm_eigen.hpp>
#include <weft/ops/matmul.hpp>

#if defined(WEFT_BENCH_LIBTORCH)
namespace weft_bench {
// Defined in bench/libtorch/matmul.cpp.
void libtorch_matmul(benchmark::State& state, std::int64_t m, std::int64_t k, std::int64_t n,
                     bool new_result);
}  // namespace weft_bench
#endif

namespace {

using weft::index_t;
using Matrix = weft::Tensor<float, 2>;

struct Dims {
    index_t m, k, n;
    std::string name() const { return std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n); }
};

constexpr std::array<Dims, 4> kShapes = {
    {{197, 768, 2304}, {1024, 768, 3072}, {4096, 768, 3072}, {4096, 3072, 768}}};

void report(benchmark::State& state, const Dims& d) {
    state.counters["GFLOP"] = benchmark::Counter(2.0 * double(d.m) * double(d.k) * double(d.n) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void weft_matmul(benchmark::State& state, Dims d) {
    const Matrix a = Matrix::randn({d.m, d.k}), b = Matrix::randn({d.k, d.n});
    Matrix c = Matrix::empty({d.m, d.n});
    weft::matmul_out(c, a, b);  // first touch of c, and the engine's threads started
    for (auto _ : state) {
        weft::matmul_out(c, a, b);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    report(state, d);
}

void weft_matmul_new(benchmark::State& state, Dims d) {
    const Matrix a = Matrix::randn({d.m, d.k}), b = Matrix::randn({d.k, d.n});
    benchmark::DoNotOptimize(weft::matmul(a, b).data());
    for (auto _ : state) {
        Matrix c = weft::matmul(a, b);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    report(state, d);
}

// The Eigen engine on the same problem, whatever engine Gemm<Cpu> uses.
void weft_eigen_matmul(benchmark::State& state, Dims d) {
    const Matrix a = Matrix::randn({d.m, d.k}), b = Matrix::randn({d.k, d.n});
    Matrix c = Matrix::empty({d.m, d.n});
    weft::GemmProblem<float> p;
    p.m = d.m, p.n = d.n, p.k = d.k;
    p.a = a.data(), p.lda = d.k;
    p.b = b.data(), p.ldb = d.n;
    p.c = c.data(), p.ldc = d.n;
    weft::cpu::EigenGemm::run(p);
    for (auto _ : state) {
        weft::cpu::EigenGemm::run(p);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    report(state, d);
}

#if defined(WEFT_BENCH_LIBTORCH)
void libtorch_matmul(benchmark::State& state, Dims d) {
    weft_bench::libtorch_matmul(state, d.m, d.k, d.n, false);
    report(state, d);
}
void libtorch_matmul_new(benchmark::State& state, Dims d) {
    weft_bench::libtorch_matmul(state, d.m, d.k, d.n, true);
    report(state, d);
}
#endif

// Five repetitions per case, reported as aggregates: on a shared machine one measurement is
// the noise of the neighbours (±15% here), the median of five is the code's cost.
template <class F>
void add(const std::string& name, F f, const Dims& d) {
    benchmark::RegisterBenchmark(name.c_str(), f, d)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Repetitions(5)
        ->ReportAggregatesOnly(true);
}

const bool registered = [] {
    benchmark::AddCustomContext("weft_gemm_engine", std::string(weft::Gemm<weft::Cpu>::engine_name));
    benchmark::AddCustomContext("weft_threads", std::to_string(weft::num_threads()));
#if defined(WEFT_USE_OPENBLAS) && WEFT_USE_OPENBLAS
    // Which OpenBLAS build the process loaded (update-alternatives decides; libtorch, when
    // linked, calls the same one).
    const int parallel = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
    const char* threads = parallel == 2 ? ", OpenMP threads" : parallel == 1 ? ", pthreads" : ", sequential";
    benchmark::AddCustomContext("openblas", openblas_get_config() + std::string(threads));
#endif
    for (const Dims& d : kShapes) {
        add("matmul/" + d.name() + "/weft", weft_matmul, d);
#if defined(WEFT_BENCH_LIBTORCH)
        add("matmul/" + d.name() + "/libtorch", libtorch_matmul, d);
#endif
        add("matmul/" + d.name() + "/weft_eigen", weft_eigen_matmul, d);
    }
    for (const Dims& d : kShapes) {
        add("matmul_new/" + d.name() + "/weft", weft_matmul_new, d);
#if defined(WEFT_BENCH_LIBTORCH)
        add("matmul_new/" + d.name() + "/libtorch", libtorch_matmul_new, d);
#endif
    }
    return true;
}();

}  // namespace
