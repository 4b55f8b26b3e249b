// weft/ops/detail/spatial.hpp: what the [N, C, H, W] ops (conv2d, conv_transpose2d, pooling,
// interpolate) share: printing their (h, w) options, and spreading work over image planes.
#pragma once

#include <algorithm>
#include <array>

#include "../../core/shape.hpp"
#include "../../exec/cpu/thread_pool.hpp"

namespace weft::detail {

// An (h, w) option printed as a shape, "[3, 3]", for error messages.
inline Shape<2> pair_shape(const std::array<index_t, 2>& a) { return Shape<2>{a[0], a[1]}; }

// f(plane) for every plane in [0, planes) (a plane is one (n, c) image channel), spread over the
// pool. plane_work (elements touched per plane) sets how many planes a task takes, so that small
// planes are not handed out one per wake-up.
template <class F>
void for_each_plane(index_t planes, index_t plane_work, F&& f) {
    const index_t grain = std::max<index_t>(1, (index_t(1) << 15) / std::max<index_t>(plane_work, 1));
    parallel_for(0, planes, grain, [&](index_t begin, index_t end) {
        for (index_t p = begin; p < end; ++p) f(p);
    });
}

}  // namespace weft::detail
