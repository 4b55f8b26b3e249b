// weft/core/dtype.hpp: the element types a tensor may hold, and what arithmetic runs in.
//
//   float, double, bf16, half, int32_t, int64_t, uint8_t, bool
//
// `compute_t<T>` is the type expressions compute in: float for the 16-bit floats (rounded once,
// when stored), T itself otherwise.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "bf16.hpp"
#include "half.hpp"

namespace weft {

enum class DType : std::uint8_t { f32, f64, bf16, f16, i32, i64, u8, b8 };

template <class T>
concept Element = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, bf16> ||
                  std::same_as<T, half> || std::same_as<T, std::int32_t> ||
                  std::same_as<T, std::int64_t> || std::same_as<T, std::uint8_t> ||
                  std::same_as<T, bool>;

template <class T>
concept FloatingElement =
    std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, bf16> || std::same_as<T, half>;

template <class T>
concept IntegralElement =
    std::same_as<T, std::int32_t> || std::same_as<T, std::int64_t> || std::same_as<T, std::uint8_t>;

template <Element T>
inline constexpr DType dtype_of = [] {
    if constexpr (std::same_as<T, float>) return DType::f32;
    else if constexpr (std::same_as<T, double>) return DType::f64;
    else if constexpr (std::same_as<T, bf16>) return DType::bf16;
    else if constexpr (std::same_as<T, half>) return DType::f16;
    else if constexpr (std::same_as<T, std::int32_t>) return DType::i32;
    else if constexpr (std::same_as<T, std::int64_t>) return DType::i64;
    else if constexpr (std::same_as<T, std::uint8_t>) return DType::u8;
    else return DType::b8;
}();

constexpr std::string_view dtype_name(DType d) {
    switch (d) {
        case DType::f32: return "float32";
        case DType::f64: return "float64";
        case DType::bf16: return "bfloat16";
        case DType::f16: return "float16";
        case DType::i32: return "int32";
        case DType::i64: return "int64";
        case DType::u8: return "uint8";
        case DType::b8: return "bool";
    }
    return "?";
}

constexpr std::size_t dtype_size(DType d) {
    switch (d) {
        case DType::f64:
        case DType::i64: return 8;
        case DType::f32:
        case DType::i32: return 4;
        case DType::bf16:
        case DType::f16: return 2;
        case DType::u8:
        case DType::b8: return 1;
    }
    return 0;
}

template <class T>
struct compute_type {
    using type = T;
};
template <>
struct compute_type<bf16> {
    using type = float;
};
template <>
struct compute_type<half> {
    using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

// Converts between element types, going through float for the 16-bit floats.
template <class To, class From>
WEFT_HD WEFT_FORCE_INLINE To convert(From x) {
    if constexpr (std::same_as<To, From>) {
        return x;
    } else if constexpr (std::same_as<To, bf16> || std::same_as<To, half>) {
        if constexpr (std::same_as<From, bf16> || std::same_as<From, half>) return To(float(x));
        else return To(static_cast<float>(x));
    } else if constexpr (std::same_as<From, bf16> || std::same_as<From, half>) {
        return static_cast<To>(float(x));
    } else {
        return static_cast<To>(x);
    }
}

}  // namespace weft
