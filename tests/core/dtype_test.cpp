// bf16 and half conversions against independent implementations (GCC's _Float16 and Eigen's
// half and bfloat16), and the dtype tables (weft/core/dtype.hpp, bf16.hpp, half.hpp).
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string_view>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include <weft/core.hpp>

using namespace weft;

namespace {

std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }
float float_of(std::uint32_t u) { return std::bit_cast<float>(u); }

std::uint16_t eigen_half_bits(float f) { return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(f)); }

// The compiler's own binary16 (GCC 12 on x86 has _Float16; compilers without it, e.g. Clang 14
// on x86, fall back to Eigen alone).
#if defined(__FLT16_MAX__)
std::uint16_t gcc_half_bits(float f) {
    const _Float16 h = static_cast<_Float16>(f);
    std::uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
}
float gcc_half_to_float(std::uint16_t b) {
    _Float16 h;
    std::memcpy(&h, &b, 2);
    return static_cast<float>(h);
}
#else
std::uint16_t gcc_half_bits(float f) { return eigen_half_bits(f); }
float gcc_half_to_float(std::uint16_t b) { return float(Eigen::numext::bit_cast<Eigen::half>(b)); }
#endif
std::uint16_t eigen_bf16_bits(float f) { return Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(f)); }

bool half_is_nan(std::uint16_t b) { return (b & 0x7c00u) == 0x7c00u && (b & 0x3ffu) != 0; }
bool bf16_is_nan(std::uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

// A mix of float bit patterns that exercises every rounding path: fully random patterns, patterns
// with exponents near the 16-bit ranges, exact ties and near-ties of both formats, and subnormals.
std::vector<float> test_floats(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t u = rng();
        switch (i % 6) {
            case 0: break;  // anything: huge, tiny, NaN, inf
            case 1: {       // exponent in [2^-27, 2^17): half subnormals, normals and overflow
                const std::uint32_t e = 100 + rng() % 44;
                u = (u & 0x807fffffu) | (e << 23);
                break;
            }
            case 2: {  // half ties: the 13 dropped mantissa bits are exactly 0x1000
                const std::uint32_t e = 113 + rng() % 30;
                u = (u & 0x807fe000u) | (e << 23) | 0x1000u;
                break;
            }
            case 3: {  // half subnormal ties: the dropped bits are exactly one half
                const std::uint32_t e = 103 + rng() % 10;  // 2^-24 .. 2^-15
                const int shift = 126 - int(e);            // bits dropped below 2^-24
                u = (u & 0x807fffffu) | (e << 23);
                const std::uint32_t mask = (1u << shift) - 1u;
                u = (u & ~mask) | (1u << (shift - 1));
                break;
            }
            case 4: u = (u & 0xffff0000u) | 0x8000u; break;                    // bf16 ties
            case 5: u = (u & 0xffff0000u) | (0x8000u + (rng() % 3) - 1u); break;  // bf16 near-ties
        }
        out.push_back(float_of(u));
    }
    return out;
}

}  // namespace

// ---- half --------------------------------------------------------------------------------------

TEST_CASE("half: every bit pattern decodes like _Float16 and Eigen and round-trips") {
    for (std::uint32_t b = 0; b < 65536; ++b) {
        const auto h = half::from_bits(std::uint16_t(b));
        const float f = float(h);
        const float ref = gcc_half_to_float(std::uint16_t(b));
        const float eig = float(Eigen::numext::bit_cast<Eigen::half>(std::uint16_t(b)));
        if (half_is_nan(std::uint16_t(b))) {
            INFO("bits 0x" << std::hex << b);
            REQUIRE(std::isnan(f));
            REQUIRE(std::signbit(f) == bool(b & 0x8000u));
            const std::uint16_t back = half(f).bits;
            REQUIRE(half_is_nan(back));          // NaN stays NaN (payload may be quieted)
            REQUIRE((back & 0x8000u) == (b & 0x8000u));
            continue;
        }
        if (bits_of(f) != bits_of(ref) || bits_of(f) != bits_of(eig) || half(f).bits != b) {
            INFO("bits 0x" << std::hex << b << " weft " << f << " gcc " << ref << " eigen " << eig);
            REQUIRE(bits_of(f) == bits_of(ref));
            REQUIRE(bits_of(f) == bits_of(eig));
            REQUIRE(half(f).bits == b);
        }
    }
}

TEST_CASE("half: float to half rounds like _Float16 and Eigen on millions of patterns") {
    const auto floats = test_floats(3'000'000, 12345);
    std::size_t nans = 0, infs = 0, subnormals = 0, mismatches = 0;
    for (float f : floats) {
        const std::uint16_t w = half(f).bits;
        const std::uint16_t g = gcc_half_bits(f);
        const std::uint16_t e = eigen_half_bits(f);
        if (std::isnan(f)) {
            ++nans;
            if (!half_is_nan(w) || (w & 0x8000u) != (g & 0x8000u)) ++mismatches;
            continue;
        }
        if ((w & 0x7fffu) == 0x7c00u) ++infs;
        if ((w & 0x7c00u) == 0 && (w & 0x3ffu) != 0) ++subnormals;
        if (w != g || w != e) {
            if (++mismatches <= 10) {
                UNSCOPED_INFO("float bits 0x" << std::hex << bits_of(f) << ": weft 0x" << w << " gcc 0x" << g
                                              << " eigen 0x" << e);
            }
        }
    }
    REQUIRE(mismatches == 0);
    // The generator really reached the interesting regions.
    REQUIRE(nans > 100);
    REQUIRE(infs > 10000);
    REQUIRE(subnormals > 10000);
}

TEST_CASE("half: rounding edge cases") {
    auto h = [](float f) { return half(f).bits; };
    REQUIRE(h(65504.0f) == 0x7bff);  // the largest half
    REQUIRE(h(65519.0f) == 0x7bff);  // just below the midpoint to 65536: rounds down
    REQUIRE(h(65520.0f) == 0x7c00);  // the midpoint: ties to even (up) = infinity
    REQUIRE(h(-65520.0f) == 0xfc00);
    REQUIRE(h(1e10f) == 0x7c00);
    REQUIRE(h(std::numeric_limits<float>::infinity()) == 0x7c00);
    REQUIRE(h(-std::numeric_limits<float>::infinity()) == 0xfc00);
    REQUIRE(h(0.0f) == 0x0000);
    REQUIRE(h(-0.0f) == 0x8000);
    REQUIRE(h(1.0f) == 0x3c00);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even gives 1.
    REQUIRE(h(1.0f + 0x1.0p-11f) == 0x3c00);
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): up.
    REQUIRE(h(1.0f + 3 * 0x1.0p-11f) == 0x3c02);
    REQUIRE(h(0x1.0p-14f) == 0x0400);   // the smallest normal
    REQUIRE(h(0x1.0p-24f) == 0x0001);   // the smallest subnormal
    REQUIRE(h(0x1.0p-25f) == 0x0000);   // halfway to the smallest subnormal: ties to even, 0
    REQUIRE(h(0x1.8p-25f) == 0x0001);   // above halfway
    REQUIRE(h(0x1.8p-24f) == 0x0002);   // 1.5 subnormal units: tie, to even (2)
    REQUIRE(h(0x1.4p-24f) == 0x0001);   // 1.25 units: down
    REQUIRE(h(0x1.ff8p-15f) == 0x03ff); // the largest subnormal, 1023 units
    REQUIRE(h(0x1.ffcp-15f) == 0x0400); // 1023.5 units: a tie, to even, carries into the normals
    REQUIRE(h(0x1.ffap-15f) == 0x03ff); // 1023.25 units: down
    REQUIRE(h(1e-10f) == 0x0000);
    REQUIRE(h(-1e-10f) == 0x8000);
    REQUIRE(half_is_nan(h(std::numeric_limits<float>::quiet_NaN())));
    REQUIRE(half_is_nan(h(-std::numeric_limits<float>::quiet_NaN())));
    REQUIRE((h(-std::numeric_limits<float>::quiet_NaN()) & 0x8000) == 0x8000);
    // A NaN whose payload sits only in the low float bits must not become infinity.
    REQUIRE(half_is_nan(h(float_of(0x7f800001u))));
    REQUIRE(half_is_nan(h(float_of(0xff800001u))));
}

// ---- bf16 --------------------------------------------------------------------------------------

TEST_CASE("bf16: every bit pattern decodes like Eigen and round-trips") {
    for (std::uint32_t b = 0; b < 65536; ++b) {
        const float f = float(bf16::from_bits(std::uint16_t(b)));
        const float eig = float(Eigen::numext::bit_cast<Eigen::bfloat16>(std::uint16_t(b)));
        REQUIRE(bits_of(f) == (b << 16));  // bf16 is the top half of a float
        const std::uint16_t back = bf16(f).bits;
        if (bf16_is_nan(std::uint16_t(b))) {
            INFO("bits 0x" << std::hex << b);
            REQUIRE(std::isnan(eig));
            REQUIRE(bf16_is_nan(back));
            REQUIRE((back & 0x8000u) == (b & 0x8000u));
            continue;
        }
        if (bits_of(eig) != bits_of(f) || back != b) {
            INFO("bits 0x" << std::hex << b);
            REQUIRE(bits_of(eig) == bits_of(f));
            REQUIRE(back == b);
        }
    }
}

TEST_CASE("bf16: float to bf16 rounds like Eigen on millions of patterns") {
    const auto floats = test_floats(3'000'000, 777);
    std::size_t mismatches = 0, ties = 0;
    for (float f : floats) {
        const std::uint16_t w = bf16(f).bits;
        const std::uint16_t e = eigen_bf16_bits(f);
        if (std::isnan(f)) {
            if (!bf16_is_nan(w) || (w & 0x8000u) != (bits_of(f) >> 16 & 0x8000u)) ++mismatches;
            continue;
        }
        if ((bits_of(f) & 0xffffu) == 0x8000u) ++ties;
        if (w != e && ++mismatches <= 10)
            UNSCOPED_INFO("float bits 0x" << std::hex << bits_of(f) << ": weft 0x" << w << " eigen 0x" << e);
    }
    REQUIRE(mismatches == 0);
    REQUIRE(ties > 100000);
}

TEST_CASE("bf16: rounding edge cases") {
    auto b = [](float f) { return bf16(f).bits; };
    REQUIRE(b(1.0f) == 0x3f80);
    REQUIRE(b(-2.0f) == 0xc000);
    REQUIRE(b(float_of(0x3f808000u)) == 0x3f80);  // tie, even below: down
    REQUIRE(b(float_of(0x3f818000u)) == 0x3f82);  // tie, odd below: up
    REQUIRE(b(float_of(0x3f808001u)) == 0x3f81);  // just above the tie: up
    REQUIRE(b(float_of(0x3f807fffu)) == 0x3f80);  // just below: down
    REQUIRE(b(std::numeric_limits<float>::max()) == 0x7f80);  // rounds up into infinity
    REQUIRE(b(float_of(0x7f7f7fffu)) == 0x7f7f);              // the largest finite bf16 stays
    REQUIRE(b(std::numeric_limits<float>::infinity()) == 0x7f80);
    REQUIRE(b(-std::numeric_limits<float>::infinity()) == 0xff80);
    REQUIRE(b(-0.0f) == 0x8000);
    REQUIRE(b(std::numeric_limits<float>::denorm_min()) == 0x0000);
    REQUIRE(b(float_of(0x00018000u)) == 0x0002);  // subnormal tie, odd below: up
    REQUIRE(bf16_is_nan(b(std::numeric_limits<float>::quiet_NaN())));
    // NaNs with payload only in the dropped bits stay NaN (a plain round would make them inf).
    REQUIRE(bf16_is_nan(b(float_of(0x7f800001u))));
    REQUIRE(bf16_is_nan(b(float_of(0xff80ffffu))));
    REQUIRE((b(float_of(0xff800001u)) & 0x8000) == 0x8000);
}

// ---- arithmetic and conversions ------------------------------------------------------------------

TEST_CASE("bf16 and half: constructors and arithmetic round once") {
    REQUIRE(float(half(2.5)) == 2.5f);       // from double
    REQUIRE(float(half(7)) == 7.0f);         // from int
    REQUIRE(float(bf16(-3)) == -3.0f);
    REQUIRE(float(bf16(0.1)) == float(bf16(0.1f)));
    REQUIRE(float(half(2049)) == 2048.0f);   // 2049 is a tie between 2048 and 2050: even
    REQUIRE(float(half(2051)) == 2052.0f);
    REQUIRE(float(bf16(257)) == 256.0f);     // 8 significant bits

    REQUIRE(float(half(1.5f) + half(2.25f)) == 3.75f);
    REQUIRE(float(half(1.5f) * half(-2.0f)) == -3.0f);
    REQUIRE(float(half(1.0f) / half(3.0f)) == float(half(1.0f / 3.0f)));
    REQUIRE(float(bf16(1.0f) - bf16(0.25f)) == 0.75f);
    REQUIRE(float(bf16(3.0f) / bf16(2.0f)) == 1.5f);
    // 1 + 2^-9 is not a bf16: adding rounds back to 1 (ties to even).
    REQUIRE(float(bf16(1.0f) + bf16(0x1.0p-9f)) == 1.0f);
    REQUIRE((-half(0.0f)).bits == 0x8000);
    REQUIRE((-bf16(1.0f)).bits == 0xbf80);
    REQUIRE(std::isnan(float(-half::from_bits(0x7e00))));
}

TEST_CASE("convert between element types") {
    REQUIRE(convert<std::int32_t>(2.7f) == 2);  // C++ truncation
    REQUIRE(convert<std::int32_t>(-2.7f) == -2);
    REQUIRE(convert<std::int64_t>(3.0e10) == 30000000000LL);
    REQUIRE(convert<double>(0.1f) == double(0.1f));
    REQUIRE(convert<float>(1) == 1.0f);
    REQUIRE(convert<bool>(0.5f) == true);
    REQUIRE(convert<bool>(0) == false);
    REQUIRE(convert<std::uint8_t>(200) == 200);

    REQUIRE(convert<bf16>(1.0f).bits == 0x3f80);
    REQUIRE(convert<bf16>(3.0).bits == bf16(3.0f).bits);
    REQUIRE(convert<half>(std::int32_t(-2)).bits == 0xc000);
    REQUIRE(convert<float>(half::from_bits(0x3555)) == gcc_half_to_float(0x3555));
    REQUIRE(convert<double>(bf16::from_bits(0x4049)) == 3.140625);
    REQUIRE(convert<std::int32_t>(bf16(-7.5f)) == -7);
    // Between the two 16-bit floats: through float, so each step is a correct rounding.
    REQUIRE(convert<half>(bf16(1.0f / 3.0f)).bits == half(float(bf16(1.0f / 3.0f))).bits);
    REQUIRE(convert<bf16>(half(65504.0f)).bits == bf16(65504.0f).bits);
    REQUIRE(convert<half>(bf16(1e30f)).bits == 0x7c00);  // beyond half's range: inf
    REQUIRE(convert<half>(half(1.5f)).bits == half(1.5f).bits);
}

TEST_CASE("dtype_of dtype_name dtype_size and compute_t") {
    STATIC_REQUIRE(dtype_of<float> == DType::f32);
    STATIC_REQUIRE(dtype_of<double> == DType::f64);
    STATIC_REQUIRE(dtype_of<bf16> == DType::bf16);
    STATIC_REQUIRE(dtype_of<half> == DType::f16);
    STATIC_REQUIRE(dtype_of<std::int32_t> == DType::i32);
    STATIC_REQUIRE(dtype_of<std::int64_t> == DType::i64);
    STATIC_REQUIRE(dtype_of<std::uint8_t> == DType::u8);
    STATIC_REQUIRE(dtype_of<bool> == DType::b8);

    REQUIRE(dtype_name(DType::f32) == std::string_view("float32"));
    REQUIRE(dtype_name(DType::f64) == std::string_view("float64"));
    REQUIRE(dtype_name(DType::bf16) == std::string_view("bfloat16"));
    REQUIRE(dtype_name(DType::f16) == std::string_view("float16"));
    REQUIRE(dtype_name(DType::i32) == std::string_view("int32"));
    REQUIRE(dtype_name(DType::i64) == std::string_view("int64"));
    REQUIRE(dtype_name(DType::u8) == std::string_view("uint8"));
    REQUIRE(dtype_name(DType::b8) == std::string_view("bool"));

    // The size table agrees with the C++ types.
    REQUIRE(dtype_size(dtype_of<float>) == sizeof(float));
    REQUIRE(dtype_size(dtype_of<double>) == sizeof(double));
    REQUIRE(dtype_size(dtype_of<bf16>) == sizeof(bf16));
    REQUIRE(dtype_size(dtype_of<half>) == sizeof(half));
    REQUIRE(dtype_size(dtype_of<std::int32_t>) == 4);
    REQUIRE(dtype_size(dtype_of<std::int64_t>) == 8);
    REQUIRE(dtype_size(dtype_of<std::uint8_t>) == 1);
    REQUIRE(dtype_size(dtype_of<bool>) == sizeof(bool));
    STATIC_REQUIRE(sizeof(bf16) == 2);
    STATIC_REQUIRE(sizeof(half) == 2);

    STATIC_REQUIRE(std::is_same_v<compute_t<bf16>, float>);
    STATIC_REQUIRE(std::is_same_v<compute_t<half>, float>);
    STATIC_REQUIRE(std::is_same_v<compute_t<double>, double>);
    STATIC_REQUIRE(std::is_same_v<compute_t<std::int32_t>, std::int32_t>);
    STATIC_REQUIRE(Element<bf16>);
    STATIC_REQUIRE_FALSE(Element<long double>);
    STATIC_REQUIRE_FALSE(Element<char>);
    STATIC_REQUIRE(FloatingElement<half>);
    STATIC_REQUIRE_FALSE(FloatingElement<std::int32_t>);
    STATIC_REQUIRE(IntegralElement<std::uint8_t>);
    STATIC_REQUIRE_FALSE(IntegralElement<bool>);
}
