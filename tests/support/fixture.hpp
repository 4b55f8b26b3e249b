// Reading PyTorch reference values written by tests/reference/*.py (see fixture.py there).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>

#include <weft/io/safetensors.hpp>
#include <weft/weft.hpp>

namespace weft::test {

// tests/reference/data/<name>.safetensors
inline SafetensorsFile fixture(const std::string& name) {
    return SafetensorsFile::open(std::string(WEFT_SOURCE_DIR) + "/tests/reference/data/" + name + ".safetensors");
}

// Checks |actual - expected| <= atol + rtol * |expected| everywhere; reports the worst element.
template <class T, int R, class U>
void check_close(const Tensor<T, R>& actual, const Tensor<U, R>& expected, double atol, double rtol,
                 const std::string& what) {
    INFO(what);
    REQUIRE(actual.shape() == expected.shape());
    const auto a = actual.detach().contiguous();
    const auto e = expected.detach().contiguous();
    double worst = 0;
    index_t worst_at = -1;
    index_t bad = 0;
    for (index_t i = 0; i < a.numel(); ++i) {
        const double x = double(a.data()[i]), y = double(e.data()[i]);
        const double err = std::abs(x - y);
        const double excess = err - (atol + rtol * std::abs(y));
        if (!(excess <= 0)) {
            ++bad;
            if (worst_at < 0 || excess > worst) {
                worst = excess;
                worst_at = i;
            }
        }
    }
    std::ostringstream msg;
    if (bad > 0)
        msg << bad << " of " << a.numel() << " elements differ; worst at flat index " << worst_at << ": "
            << double(a.data()[worst_at]) << " vs " << double(e.data()[worst_at]);
    INFO(msg.str());
    CHECK(bad == 0);
}

}  // namespace weft::test
