// Catch2's test runner (main and the framework's non-inline parts), compiled
// once as an OBJECT library and linked into every test executable, so each
// test file only pays for the catch.hpp declarations.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
