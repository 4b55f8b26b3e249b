// weft/expr/math.hpp: scalar math that compiles for host and device.
//
// Host code calls <cmath>; device code calls CUDA's intrinsically fast float and double
// functions. Overloads are per type so float math stays float on both sides.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../core/config.hpp"

namespace weft::math {

namespace detail {

// Cephes' expf core, shared by weft's vectorisable float exps (math::exp below, softmax's and
// attention's): e^(x - n ln 2) for n = round(x / ln 2), so |x - n ln 2| <= ln 2 / 2, by a
// degree-7 polynomial. F is float or a GCC vector of floats; the caller clamps x, computes n
// and scales the result by 2^n. Host only (not WEFT_HD): attention instantiates it with GCC
// vectors, which nvcc's device code refuses.
template <class F>
WEFT_FORCE_INLINE F exp_remainder(F x, F n) {
    F r = x - n * 0.693359375f;  // x - n ln 2, ln 2 in two parts
    r = r - n * -2.12194440e-4f;
    F p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
}

}  // namespace detail

#if !WEFT_ON_DEVICE
namespace detail {

// e^x for float on the host, written so that a loop calling it vectorises (libm's expf is an
// opaque call per element: QuickGELU's loops over the MLP activations were 2.4x libtorch's, whose
// sigmoid is vectorised; docs/performance.md). Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2,
// e^r by a degree-7 polynomial, 2^n put in the exponent bits. At most 2 ulp from the exact value
// (tests/expr/exp_test.cpp sweeps the float range); e^x above FLT_MAX is +inf, NaN stays NaN, and
// results below 2^-125 (x < -86.64) are 0 where libm would give a tiny or subnormal number.
// Out-of-range inputs are handled by masking bits, not by branches: GCC does not turn a branch
// around floating-point arithmetic into a vector select.
WEFT_HD WEFT_FORCE_INLINE float exp_f32(float x) {
    constexpr float hi = 88.72283172f;  // the largest float whose e^x is finite
    constexpr float lo = -86.64f;       // the smallest for which 2^n stays a normal float
    constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const std::int32_t over = -std::int32_t(x > hi), under = -std::int32_t(x < lo);  // all ones, or 0
    const std::int32_t inside = ~(over | under);
    const float xc = std::bit_cast<float>((std::bit_cast<std::int32_t>(x) & inside) |
                                          (std::bit_cast<std::int32_t>(hi) & over) |
                                          (std::bit_cast<std::int32_t>(lo) & under));
    const float t = xc * 1.44269504088896341f + round_magic;
    const float p = exp_remainder(xc, t - round_magic);  // t - round_magic = round(x / ln 2)
    // 2^n as 2^(n-1) * 2, so that n = 128 (x near ln FLT_MAX) does not overflow the exponent.
    const std::int32_t e = std::bit_cast<std::int32_t>(t) - std::bit_cast<std::int32_t>(round_magic);
    const float y = p * std::bit_cast<float>((e + 126) << 23) * 2.0f;
    constexpr std::int32_t inf_bits = 0x7f800000;
    return std::bit_cast<float>((std::bit_cast<std::int32_t>(y) & inside) | (inf_bits & over));
}

}  // namespace detail
#endif

#if WEFT_ON_DEVICE
#define WEFT_MATH_F(name, fname)                                     \
    WEFT_HD WEFT_FORCE_INLINE float name(float x) { return ::fname(x); } \
    WEFT_HD WEFT_FORCE_INLINE double name(double x) { return ::name(x); }
#else
#define WEFT_MATH_F(name, fname)                                          \
    WEFT_HD WEFT_FORCE_INLINE float name(float x) { return std::name(x); } \
    WEFT_HD WEFT_FORCE_INLINE double name(double x) { return std::name(x); }
#endif

#if WEFT_ON_DEVICE
WEFT_MATH_F(exp, expf)
#else
WEFT_HD WEFT_FORCE_INLINE float exp(float x) { return detail::exp_f32(x); }
WEFT_HD WEFT_FORCE_INLINE double exp(double x) { return std::exp(x); }
#endif
WEFT_MATH_F(log, logf)
WEFT_MATH_F(sqrt, sqrtf)
WEFT_MATH_F(tanh, tanhf)
WEFT_MATH_F(erf, erff)
WEFT_MATH_F(sin, sinf)
WEFT_MATH_F(cos, cosf)
#undef WEFT_MATH_F

WEFT_HD WEFT_FORCE_INLINE float pow(float a, float b) {
#if WEFT_ON_DEVICE
    return ::powf(a, b);
#else
    return std::pow(a, b);
#endif
}
WEFT_HD WEFT_FORCE_INLINE double pow(double a, double b) {
#if WEFT_ON_DEVICE
    return ::pow(a, b);
#else
    return std::pow(a, b);
#endif
}

template <class T>
WEFT_HD WEFT_FORCE_INLINE T abs(T x) {
    if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>) return x;
    else return x < T(0) ? -x : x;
}

template <class T>
WEFT_HD WEFT_FORCE_INLINE bool isnan(T x) {
    if constexpr (std::is_floating_point_v<T>) return x != x;
    else return false;
}

}  // namespace weft::math
