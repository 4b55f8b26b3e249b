// weft/ops/detail/spatial.hpp: what the [N, C, H, W] ops (conv2d, conv_transpose2d, pooling,
// interpolate) share: printing their (h, w) options, spreading work over image planes, and the
// geometry of a convolution and of a pooling (here, not in the ops' headers, because their CUDA
// halves in ops/cuda/, included at the top of those headers, pass them to kernels too).
#pragma once

#include <algorithm>
#include <array>

#include "../../core/shape.hpp"
#include "../../exec/cpu/thread_pool.hpp"

namespace weft::detail {

// The extents of one convolution, in the conv2d sense: input [N, C, H, W], weight
// [O, C / groups, kh, kw], output [N, O, OH, OW]. conv_transpose2d fills it with its output as
// the "input" and its input as the "output".
struct ConvGeometry {
    index_t batch = 0, channels = 0, height = 0, width = 0;
    index_t out_channels = 0, out_height = 0, out_width = 0;
    index_t kernel_h = 1, kernel_w = 1;
    index_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
    index_t groups = 1;

    index_t taps() const { return kernel_h * kernel_w; }
    index_t group_channels() const { return channels / groups; }   // C / G
    index_t group_out() const { return out_channels / groups; }    // O / G
    index_t patch() const { return group_channels() * taps(); }    // one group's rows of col
    index_t pixels() const { return out_height * out_width; }      // columns of col
    index_t in_pixels() const { return height * width; }
    // 1x1, stride 1, no padding: the input already is the unfolded matrix.
    bool pointwise() const {
        return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
    }
};

// The extents of one pooling: planes = N * C of them, each [H, W] -> [OH, OW].
struct PoolGeometry {
    index_t planes = 0, height = 0, width = 0, out_height = 0, out_width = 0;
    index_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
};

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
