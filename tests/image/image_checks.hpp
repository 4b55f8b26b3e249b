// Helpers shared by the tests/image files: exact and bounded comparisons of uint8 images, and
// the fixture written by tests/reference/clip_preprocess.py.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <weft/data.hpp>

#include "support/fixture.hpp"

namespace weft::test {

inline const SafetensorsFile& image_fixture() {
    static const SafetensorsFile f = fixture("clip_preprocess");
    return f;
}

inline std::string ade_path(const std::string& relative) {
    return std::string(WEFT_SHARED_DIR) + "/data/ade20k/sample/" + relative;
}

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

inline std::vector<std::string> fixture_names(const std::string& prefix, const std::string& suffix = "") {
    std::vector<std::string> out;
    for (const auto& n : image_fixture().names())
        if (starts_with(n, prefix) && ends_with(n, suffix)) out.push_back(n);
    return out;
}

inline std::vector<unsigned char> fixture_bytes(const std::string& name) {
    const auto t = image_fixture().get<std::uint8_t, 1>(name);
    return std::vector<unsigned char>(t.data(), t.data() + t.numel());
}

// Differences between two uint8 images of one shape.
struct ByteDiff {
    index_t count = 0, differing = 0, max = 0;
    index_t first = -1;  // flat index of the first differing element
    double fraction() const { return count ? double(differing) / double(count) : 0.0; }
};

template <int R>
ByteDiff byte_diff(const Tensor<std::uint8_t, R>& a, const Tensor<std::uint8_t, R>& b) {
    REQUIRE(a.shape() == b.shape());
    const auto x = a.contiguous(), y = b.contiguous();
    ByteDiff d;
    d.count = x.numel();
    for (index_t i = 0; i < d.count; ++i) {
        const index_t e = std::abs(int(x.data()[i]) - int(y.data()[i]));
        if (e == 0) continue;
        if (d.first < 0) d.first = i;
        ++d.differing;
        d.max = std::max(d.max, e);
    }
    return d;
}

// Exact equality, reporting where the first difference is.
template <int R>
void check_bytes_equal(const Tensor<std::uint8_t, R>& actual, const Tensor<std::uint8_t, R>& expected,
                       const std::string& what) {
    INFO(what << ": shapes " << actual.shape() << " and " << expected.shape());
    REQUIRE(actual.shape() == expected.shape());
    const ByteDiff d = byte_diff(actual, expected);
    INFO(d.differing << " of " << d.count << " bytes differ, by up to " << d.max << "; first at flat index "
                     << d.first);
    CHECK(d.differing == 0);
}

// Runs f, which must throw weft::Error whose message contains every one of `parts`.
template <class F>
void check_error(F&& f, std::initializer_list<std::string> parts) {
    try {
        f();
        FAIL("no weft::Error was thrown");
    } catch (const Error& e) {
        const std::string msg = e.what();
        for (const auto& p : parts) {
            INFO("message: " << msg);
            INFO("expected to contain: " << p);
            CHECK(msg.find(p) != std::string::npos);
        }
    }
}

}  // namespace weft::test
