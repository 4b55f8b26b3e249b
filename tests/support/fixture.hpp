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

// Loads the tensors "<name>.state.*" of fixture `file` into `m` strictly, and checks that the
// module's state names, in order, are the ones PyTorch listed (metadata "<name>.keys").
inline void load_fixture_state(nn::Module<double>& m, const std::string& file, const std::string& name) {
    const auto report = nn::load_state(m, std::string(WEFT_SOURCE_DIR) + "/tests/reference/data/" + file +
                                              ".safetensors", true, name + ".state.");
    CHECK(report.ok());
    std::string names;
    for (const auto& n : m.state_dict().names()) names += (names.empty() ? "" : ",") + n;
    CHECK(names == fixture(file).metadata().at(name + ".keys"));
}

// Every parameter's gradient against "<name>.grad.<parameter name>" of fixture `file`.
inline void check_param_grads(const nn::Module<double>& m, const std::string& file, const std::string& name,
                              double tol) {
    const auto f = fixture(file);
    for (const auto& p : m.named_parameters())
        p.tensor.visit([&](const auto& t) {
            constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
            REQUIRE(t.grad().defined());
            check_close(t.grad(), f.get<double, R>(name + ".grad." + p.name), tol, tol, name + " grad " + p.name);
        });
}

}  // namespace weft::test
