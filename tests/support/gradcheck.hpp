// Catch2 glue for weft::gradcheck: prints the mismatches when a check fails.
#pragma once

#include <catch2/catch.hpp>

#include <weft/autograd/gradcheck.hpp>

#define WEFT_CHECK_GRADIENT(...)                          \
    do {                                                  \
        const auto weft_report_ = ::weft::gradcheck(__VA_ARGS__); \
        INFO(weft_report_.message);                       \
        CHECK(weft_report_.ok);                           \
    } while (0)

#define WEFT_CHECK_GRADIENT_WITH(options, ...)                                \
    do {                                                                      \
        const auto weft_report_ = ::weft::gradcheck_with(options, __VA_ARGS__); \
        INFO(weft_report_.message);                                           \
        CHECK(weft_report_.ok);                                               \
    } while (0)
