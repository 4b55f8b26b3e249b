// examples/mlp_spiral's data set and training loop: optimizer, schedule, Module, Linear and
// cross_entropy working together end to end.
#include "../../examples/mlp_spiral/spiral.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

using namespace weft;

TEST_CASE("spiral data set: seeded, balanced, inside the unit disc") {
    const auto a = spiral::make_spiral(50, 3, 7);
    const auto b = spiral::make_spiral(50, 3, 7);
    const auto c = spiral::make_spiral(50, 3, 8);
    REQUIRE(a.x.shape() == Shape<2>{150, 2});
    REQUIRE(a.y.shape() == Shape<1>{150});
    CHECK(std::memcmp(a.x.data(), b.x.data(), 300 * sizeof(float)) == 0);
    CHECK(std::memcmp(a.x.data(), c.x.data(), 300 * sizeof(float)) != 0);
    index_t count[3] = {};
    for (index_t i = 0; i < 150; ++i) {
        REQUIRE((a.y(i) >= 0 && a.y(i) < 3));
        ++count[a.y(i)];
        CHECK(std::hypot(a.x(i, 0), a.x(i, 1)) <= 1.0f + 1e-6f);
    }
    CHECK((count[0] == 50 && count[1] == 50 && count[2] == 50));
}

TEST_CASE("mlp_spiral trains to at least 95 percent accuracy") {
    const spiral::Config cfg;  // what `mlp_spiral` runs
    double first_loss = 0;
    int reports = 0;
    const auto r = spiral::train(cfg, [&](int step, double loss, double) {
        if (step == 0) first_loss = loss;
        ++reports;
    });
    CHECK(first_loss == Approx(std::log(3.0)).margin(0.2));  // a fresh net is near chance
    CHECK(reports == 5);                                      // steps 0, 50, 100, 150 and the last
    CHECK(r.loss < 0.2);
    CHECK(r.accuracy >= 0.95);
}
