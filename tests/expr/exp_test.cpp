// weft's host float e^x (expr/math.hpp): a vectorisable polynomial in place of libm's expf. It
// must stay within 2 ulp of the exact value over the whole range where e^x is a normal float,
// overflow to +inf and keep NaN. (Its speed is measured in docs/performance.md.)
#include <catch2/catch.hpp>

#include <weft/expr/math.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace {

// Distance in units in the last place between a float and the exact value (double).
double ulp_error(float got, double exact) {
    const double ulp = std::nextafter(float(exact), std::numeric_limits<float>::infinity()) - float(exact);
    return std::abs(double(got) - exact) / ulp;
}

}  // namespace

TEST_CASE("the host float exp is within 2 ulp over the normal range") {
    double worst = 0, worst_x = 0;
    // Every 61st float from -86.64 up to ln(FLT_MAX): about 37 million arguments.
    const std::int32_t first = std::bit_cast<std::int32_t>(0.0f), step = 61;
    for (const float sign : {1.0f, -1.0f}) {
        const float end = sign > 0 ? 88.72283172f : 86.64f;
        for (std::int32_t b = first; std::bit_cast<float>(b) <= end; b += step) {
            const float x = sign * std::bit_cast<float>(b);
            const double e = ulp_error(weft::math::exp(x), std::exp(double(x)));
            if (e > worst) worst = e, worst_x = x;
        }
    }
    INFO("worst at x = " << worst_x);
    CHECK(worst <= 2.0);
}

TEST_CASE("the host float exp handles the ends of its range") {
    constexpr float inf = std::numeric_limits<float>::infinity();
    CHECK(weft::math::exp(0.0f) == 1.0f);
    CHECK(std::isfinite(weft::math::exp(88.72283172f)));
    CHECK(weft::math::exp(88.7229f) == inf);
    CHECK(weft::math::exp(1000.0f) == inf);
    CHECK(weft::math::exp(inf) == inf);
    CHECK(weft::math::exp(-inf) == 0.0f);
    CHECK(weft::math::exp(-87.0f) == 0.0f);  // below 2^-125: 0, documented
    CHECK(weft::math::exp(-86.6f) > 0.0f);
    CHECK(std::isnan(weft::math::exp(std::numeric_limits<float>::quiet_NaN())));
    // Double keeps libm.
    CHECK(weft::math::exp(-700.0) == std::exp(-700.0));
}
