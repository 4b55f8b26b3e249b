// AdamW's float step runs eight lanes at a time (optim/adamw.hpp): it must give the bits of the
// update written one element at a time, in torch's order of operations, for every length (the
// lanes and the tail) and every step (the bias corrections change).
#include <weft/optim.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "support/fixture.hpp"

using namespace weft;

TEST_CASE("AdamW's float step matches the element-wise update bit for bit") {
    const double lr = 3e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
    for (const index_t n : {1, 7, 8, 9, 4099}) {
        auto w = Tensor<float, 1>::randn({n});
        Tensor<float, 1> ref = w.clone();
        std::vector<float> m(std::size_t(n), 0.f), v(std::size_t(n), 0.f);
        w.requires_grad_();
        optim::AdamW<float> opt({{"w", w}}, {.lr = lr, .betas = {b1, b2}, .eps = eps, .weight_decay = wd});
        for (int t = 1; t <= 3; ++t) {
            const auto g = Tensor<float, 1>::randn({n});
            opt.zero_grad();
            sum(w * g).backward();
            opt.step();
            const float decay = float(1 - lr * wd), neg_step = float(-(lr / (1 - std::pow(b1, t))));
            const float bc2_sqrt = float(std::sqrt(1 - std::pow(b2, t)));
            for (index_t i = 0; i < n; ++i) {
                const float gi = g(i), pi = ref(i) * decay;
                const std::size_t j = std::size_t(i);
                m[j] = m[j] * float(b1) + float(1 - b1) * gi;
                v[j] = v[j] * float(b2) + float(1 - b2) * gi * gi;
                ref(i) = pi + neg_step * m[j] / (std::sqrt(v[j]) / bc2_sqrt + float(eps));
            }
            index_t differing = 0;
            for (index_t i = 0; i < n; ++i) {
                const float a = w.detach()(i), b = ref(i);
                differing += std::memcmp(&a, &b, sizeof a) != 0;
            }
            INFO("length " << n << ", step " << t);
            CHECK(differing == 0);
        }
    }
}
