// weft/expr/broadcast.hpp: NumPy broadcasting of two shapes.
//
// Shapes are aligned at their last axis; each pair of extents must be equal or one of them 1,
// and the result takes the larger. A missing leading axis counts as 1. [8, 1, 6] with [7, 1]
// gives [8, 7, 6]; [3] with [4] throws, naming both shapes.
#pragma once

#include <algorithm>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace weft {

template <int A, int B>
Shape<(A > B ? A : B)> broadcast_shapes(const Shape<A>& a, const Shape<B>& b, const char* what = "operands") {
    constexpr int R = A > B ? A : B;
    Shape<R> out;
    for (int d = 0; d < R; ++d) {
        const int ia = d - (R - A), ib = d - (R - B);
        const index_t ea = ia < 0 ? 1 : a[ia], eb = ib < 0 ? 1 : b[ib];
        WEFT_CHECK(ea == eb || ea == 1 || eb == 1, "cannot broadcast ", what, " of shapes ", a, " and ", b,
                   ": extents ", ea, " and ", eb, " at axis ", d, " of the result");
        out[d] = ea == 1 ? eb : ea;
    }
    return out;
}

// True when `from` broadcasts to exactly `to` (assignment into an existing tensor).
template <int A, int R>
bool broadcasts_to(const Shape<A>& from, const Shape<R>& to) {
    if (A > R) return false;
    for (int d = 0; d < A; ++d) {
        const index_t e = from[d], t = to[d + (R - A)];
        if (e != t && e != 1) return false;
    }
    return true;
}

}  // namespace weft
