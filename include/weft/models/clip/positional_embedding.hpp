// weft/models/clip/positional_embedding.hpp: resizing a positional embedding's spatial grid.
//
//   auto p = resize_positional_embedding(pos, {40, 40});   // [1 + 14·14, C] -> [1 + 40·40, C]
//
// CLIP's image encoders keep one row for the class (or mean) token followed by a square grid of
// g×g rows in row-major order. Dense use at another input size (DenseCLIP) reshapes the grid to
// [1, C, g, g], resizes it bilinearly with align_corners = false (F.interpolate's default) and
// flattens it back, keeping the first row as is. Same-size resizing is the identity and is
// skipped. The operation records its gradient: DenseCLIP trains the embedding it resizes.
#pragma once

#include <array>
#include <cmath>

#include "../../expr.hpp"
#include "../../ops/interpolate.hpp"
#include "../../ops/join.hpp"

namespace weft::clip {

// The side g of the square grid of a [1 + g·g, C] positional embedding.
template <Element T, Device D>
index_t positional_grid_side(const Tensor<T, 2, D>& pos, std::string_view what = "positional embedding") {
    const index_t cells = pos.size(0) - 1;
    const auto g = index_t(std::llround(std::sqrt(double(std::max<index_t>(cells, 0)))));
    WEFT_CHECK(cells >= 1 && g * g == cells, what, " of shape ", pos.shape(),
               " is not one token row followed by a square grid (1 + g·g rows)");
    return g;
}

// [1 + g·g, C] -> [1 + size[0]·size[1], C]
template <Element T, Device D>
Tensor<T, 2, D> resize_positional_embedding(const Tensor<T, 2, D>& pos, std::array<index_t, 2> size) {
    const index_t g = positional_grid_side(pos), C = pos.size(1);
    if (size[0] == g && size[1] == g) return pos;
    const auto grid = pos.narrow(0, 1, g * g).reshape(1, g, g, C).permute(0, 3, 1, 2);  // [1, C, g, g]
    const auto resized = interpolate(Tensor<T, 4, D>(grid.contiguous()), size, Interpolation::bilinear, false);
    const auto rows = resized.permute(0, 2, 3, 1).reshape(size[0] * size[1], C);  // [h·w, C]
    return cat({pos.narrow(0, 0, 1), rows}, 0);
}

}  // namespace weft::clip
