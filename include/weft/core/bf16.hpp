// weft/core/bf16.hpp: bfloat16, the top half of an IEEE float.
//
// Conversions from float round to nearest, ties to even, and keep NaN a (quiet) NaN, exactly as
// `__float2bfloat16_rn` and PyTorch do. Arithmetic happens in float; weft's expressions never
// round between fused steps, only when a result is stored.
#pragma once

#include <cstdint>
#include <type_traits>

#include "bits.hpp"
#include "config.hpp"

namespace weft {

struct bf16 {
    std::uint16_t bits = 0;

    constexpr bf16() = default;
    WEFT_HD explicit bf16(float f) : bits(from_float(f)) {}
    WEFT_HD explicit bf16(double d) : bf16(static_cast<float>(d)) {}
    template <class I>
        requires std::is_integral_v<I>
    WEFT_HD explicit bf16(I i) : bf16(static_cast<float>(i)) {}

    WEFT_HD operator float() const { return detail::bits_float(std::uint32_t(bits) << 16); }

    WEFT_HD static constexpr bf16 from_bits(std::uint16_t b) {
        bf16 r;
        r.bits = b;
        return r;
    }

    WEFT_HD static std::uint16_t from_float(float f) {
        std::uint32_t x = detail::float_bits(f);
        if ((x & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((x >> 16) | 0x0040u);  // NaN stays NaN
        x += 0x7fffu + ((x >> 16) & 1u);                                                 // ties to even
        return std::uint16_t(x >> 16);
    }
};

WEFT_HD inline bf16 operator+(bf16 a, bf16 b) { return bf16(float(a) + float(b)); }
WEFT_HD inline bf16 operator-(bf16 a, bf16 b) { return bf16(float(a) - float(b)); }
WEFT_HD inline bf16 operator*(bf16 a, bf16 b) { return bf16(float(a) * float(b)); }
WEFT_HD inline bf16 operator/(bf16 a, bf16 b) { return bf16(float(a) / float(b)); }
WEFT_HD inline bf16 operator-(bf16 a) { return bf16::from_bits(std::uint16_t(a.bits ^ 0x8000u)); }

}  // namespace weft
