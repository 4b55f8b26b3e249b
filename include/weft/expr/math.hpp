// weft/expr/math.hpp: scalar math that compiles for host and device.
//
// Host code calls <cmath>; device code calls CUDA's intrinsically fast float and double
// functions. Overloads are per type so float math stays float on both sides.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../core/config.hpp"

namespace weft::math {

#if WEFT_ON_DEVICE
#define WEFT_MATH_F(name, fname)                                     \
    WEFT_HD WEFT_FORCE_INLINE float name(float x) { return ::fname(x); } \
    WEFT_HD WEFT_FORCE_INLINE double name(double x) { return ::name(x); }
#else
#define WEFT_MATH_F(name, fname)                                          \
    WEFT_HD WEFT_FORCE_INLINE float name(float x) { return std::name(x); } \
    WEFT_HD WEFT_FORCE_INLINE double name(double x) { return std::name(x); }
#endif

WEFT_MATH_F(exp, expf)
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
