// weft/ops/cpu/moments.hpp: mean and variance of a row in one pass, without the cancellation of
// E[x²] - E[x]².
//
//   Acc s1 = 0, s2 = 0;
//   const Acc shift = Acc(x[0]);
//   add_shifted_sums(x, n, shift, s1, s2);                // more segments may add to s1, s2
//   auto [mean, var] = moments_from_sums(shift, s1, s2, n);
//
// The sums are of d = x - shift and d², with the shift a value of the data (its first
// element). E[d²] - E[d]² then cancels only as much as the shift is off the mean, which for a
// sample of the data is about one standard deviation: the variance keeps almost all of Acc's
// digits even for rows like 1000 + noise, where the unshifted formula in float loses all of
// them. Unlike Welford's update it needs no division per element, so it vectorises, and
// segments that share the shift simply add their sums (the batch norm chunks do).
#pragma once

#include <algorithm>

#include "../../core/dtype.hpp"
#include "lanes.hpp"

namespace weft::detail {

template <class Acc>
struct Moments {
    Acc mean;
    Acc var;  // biased (divided by the count)
};

// s1 += sum(x[i] - shift), s2 += sum((x[i] - shift)²) over the n elements of x.
template <class Acc, class T>
WEFT_FORCE_INLINE void add_shifted_sums(const T* x, index_t n, Acc shift, Acc& s1, Acc& s2) {
    Acc a, b;
    simd_sum2<Acc>(
        n, [&](auto v) { return v - shift; },
        [&](auto v) {
            const auto d = v - shift;
            return d * d;
        },
        a, b, x);
    s1 += a;
    s2 += b;
}

template <class Acc>
Moments<Acc> moments_from_sums(Acc shift, Acc s1, Acc s2, index_t count) {
    if (count <= 0) return {Acc(0), Acc(0)};
    const Acc m = s1 / Acc(count);
    return {shift + m, std::max(Acc(0), s2 / Acc(count) - m * m)};
}

}  // namespace weft::detail
