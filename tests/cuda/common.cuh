// tests/cuda/common.cuh: helpers shared by the CUDA tests (not a test file itself: the build only
// compiles tests/cuda/*.cu).
//
// Every CUDA test computes the same thing on the CPU (the reference backend) and on the GPU from
// the same inputs, then compares: bitwise where both sides run the same exact arithmetic
// (copies, casts, integer math, Philox uniforms), within a tolerance where the device's math
// library or fused multiply-add may round differently from the host's.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>

#include <weft/weft.hpp>

namespace weft_test {

using namespace weft;

inline double as_double(float v) { return v; }
inline double as_double(double v) { return v; }
inline double as_double(bf16 v) { return double(float(v)); }
inline double as_double(half v) { return double(float(v)); }
template <class T>
    requires std::is_integral_v<T>
double as_double(T v) {
    return double(v);
}

// A dense host copy of any tensor.
template <class T, int R, class D>
Tensor<T, R, Cpu> host_dense(const Tensor<T, R, D>& t) {
    if constexpr (std::same_as<D, Cpu>) return t.contiguous();
    else return t.template to<Cpu>();
}

// Compares a GPU result with the CPU reference: |gpu - cpu| <= atol + rtol * |cpu| for every
// element (NaN matches NaN, infinities must match exactly). Reports the first few mismatches.
template <class T, int R, class D1, class D2>
void require_close(const Tensor<T, R, D1>& got_in, const Tensor<T, R, D2>& want_in, double rtol, double atol) {
    REQUIRE(got_in.shape() == want_in.shape());
    const auto got = host_dense(got_in);
    const auto want = host_dense(want_in);
    index_t bad = 0;
    std::ostringstream first;
    for (index_t i = 0; i < got.numel(); ++i) {
        const double g = as_double(got.data()[i]), w = as_double(want.data()[i]);
        bool ok;
        if (std::isnan(w) || std::isnan(g)) ok = std::isnan(w) && std::isnan(g);
        else if (std::isinf(w) || std::isinf(g)) ok = g == w;
        else ok = std::fabs(g - w) <= atol + rtol * std::fabs(w);
        if (!ok && bad++ < 5) first << "  [" << i << "] gpu " << g << " cpu " << w << " (diff " << (g - w) << ")\n";
    }
    INFO("shape " << got.shape() << ", " << bad << " of " << got.numel() << " elements differ (rtol " << rtol
                  << ", atol " << atol << "):\n"
                  << first.str());
    REQUIRE(bad == 0);
}

// Bit-for-bit equality of every element.
template <class T, int R, class D1, class D2>
void require_identical(const Tensor<T, R, D1>& got_in, const Tensor<T, R, D2>& want_in) {
    REQUIRE(got_in.shape() == want_in.shape());
    const auto got = host_dense(got_in);
    const auto want = host_dense(want_in);
    index_t bad = 0;
    std::ostringstream first;
    for (index_t i = 0; i < got.numel(); ++i) {
        if (std::memcmp(&got.data()[i], &want.data()[i], sizeof(T)) != 0 && bad++ < 5)
            first << "  [" << i << "] gpu " << as_double(got.data()[i]) << " cpu " << as_double(want.data()[i]) << "\n";
    }
    INFO("shape " << got.shape() << ", " << bad << " of " << got.numel() << " elements differ bitwise:\n"
                  << first.str());
    REQUIRE(bad == 0);
}

// Random host inputs from a fixed seed, and their device copies.
template <int R>
Tensor<float, R, Cpu> randn_host(const Shape<R>& s, std::uint64_t seed) {
    Generator g(seed);
    return Tensor<float, R, Cpu>::randn(s, g);
}
template <int R>
Tensor<float, R, Cpu> rand_host(const Shape<R>& s, std::uint64_t seed, float low = 0.0f, float high = 1.0f) {
    Generator g(seed);
    Tensor<float, R, Cpu> u = Tensor<float, R, Cpu>::rand(s, g);
    Tensor<float, R, Cpu> out = u * (high - low) + low;
    return out;
}

template <class T, int R>
Tensor<T, R, Cuda> to_gpu(const Tensor<T, R, Cpu>& t) {
    return t.template to<Cuda>();
}

}  // namespace weft_test
