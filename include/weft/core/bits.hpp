// weft/core/bits.hpp: reinterpreting a float's bits on host and device alike.
#pragma once

#include <bit>
#include <cstdint>

#include "config.hpp"

namespace weft::detail {

WEFT_HD WEFT_FORCE_INLINE std::uint32_t float_bits(float f) {
#if WEFT_ON_DEVICE
    return __float_as_uint(f);
#else
    return std::bit_cast<std::uint32_t>(f);
#endif
}

WEFT_HD WEFT_FORCE_INLINE float bits_float(std::uint32_t u) {
#if WEFT_ON_DEVICE
    return __uint_as_float(u);
#else
    return std::bit_cast<float>(u);
#endif
}

}  // namespace weft::detail
