// weft/core/half.hpp: IEEE binary16 ("half", fp16).
//
// float -> half rounds to nearest, ties to even, with gradual underflow into subnormals and
// overflow to infinity at 65520, as `__float2half_rn` does; half -> float is exact.
#pragma once

#include <cstdint>
#include <type_traits>

#include "bits.hpp"
#include "config.hpp"

namespace weft {

struct half {
    std::uint16_t bits = 0;

    constexpr half() = default;
    WEFT_HD explicit half(float f) : bits(from_float(f)) {}
    WEFT_HD explicit half(double d) : half(static_cast<float>(d)) {}
    template <class I>
        requires std::is_integral_v<I>
    WEFT_HD explicit half(I i) : half(static_cast<float>(i)) {}

    WEFT_HD operator float() const { return to_float(bits); }

    WEFT_HD static constexpr half from_bits(std::uint16_t b) {
        half r;
        r.bits = b;
        return r;
    }

    WEFT_HD static std::uint16_t from_float(float f) {
        const std::uint32_t x = detail::float_bits(f);
        const std::uint32_t sign = (x >> 16) & 0x8000u;
        const std::uint32_t mag = x & 0x7fffffffu;
        if (mag > 0x7f800000u) return std::uint16_t(sign | 0x7e00u | ((mag >> 13) & 0x3ffu));  // NaN
        if (mag >= 0x47800000u) return std::uint16_t(sign | 0x7c00u);  // >= 2^16: infinity
        if (mag < 0x38800000u) {                                          // below 2^-14: subnormal
            if (mag < 0x33000000u) return std::uint16_t(sign);            // below 2^-25: zero
            const std::uint32_t mant = (mag & 0x7fffffu) | 0x800000u;
            const int shift = 126 - int(mag >> 23);  // value / 2^-24 = mant >> shift
            std::uint32_t r = mant >> shift;
            const std::uint32_t rem = mant & ((1u << shift) - 1u);
            const std::uint32_t halfway = 1u << (shift - 1);
            if (rem > halfway || (rem == halfway && (r & 1u))) ++r;  // may carry into the min normal
            return std::uint16_t(sign | r);
        }
        const std::uint32_t rebased = mag - 0x38000000u;  // exponent bias 127 -> 15
        std::uint32_t h = rebased >> 13;
        const std::uint32_t rem = rebased & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry may round up to infinity
        return std::uint16_t(sign | h);
    }

    WEFT_HD static float to_float(std::uint16_t h) {
        const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
        const std::uint32_t exp = (h >> 10) & 0x1fu;
        const std::uint32_t mant = h & 0x3ffu;
        if (exp == 0x1fu) return detail::bits_float(sign | 0x7f800000u | (mant << 13));
        if (exp == 0) {
            const float v = float(mant) * 5.9604644775390625e-8f;  // mant * 2^-24, exact
            return sign ? -v : v;
        }
        return detail::bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
    }
};

WEFT_HD inline half operator+(half a, half b) { return half(float(a) + float(b)); }
WEFT_HD inline half operator-(half a, half b) { return half(float(a) - float(b)); }
WEFT_HD inline half operator*(half a, half b) { return half(float(a) * float(b)); }
WEFT_HD inline half operator/(half a, half b) { return half(float(a) / float(b)); }
WEFT_HD inline half operator-(half a) { return half::from_bits(std::uint16_t(a.bits ^ 0x8000u)); }

}  // namespace weft
