// weft/core/error.hpp: the one exception type and the check macro.
//
//   WEFT_CHECK(a.shape() == b.shape(), "add: shapes ", a.shape(), " and ", b.shape(), " differ");
//
// The message parts are streamed only when the check fails, so a check costs one branch.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace weft {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Parts>
[[noreturn]] void fail(const char* file, int line, const Parts&... parts) {
    std::ostringstream os;
    os << "weft: ";
    (os << ... << parts);
    os << " [" << file << ":" << line << "]";
    throw Error(os.str());
}

}  // namespace detail
}  // namespace weft

#define WEFT_CHECK(cond, ...)                                          \
    do {                                                               \
        if (!(cond)) [[unlikely]]                                      \
            ::weft::detail::fail(__FILE__, __LINE__, __VA_ARGS__);     \
    } while (0)

#define WEFT_FAIL(...) ::weft::detail::fail(__FILE__, __LINE__, __VA_ARGS__)
