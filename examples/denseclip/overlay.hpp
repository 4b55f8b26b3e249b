// examples/denseclip/overlay.hpp: predictions as files: ADE's label encoding and colour overlays.
//
//   data::write_png("ADE_val_00000001.png", ade_encoded(pred));          // class k stored as k + 1
//   data::write_png("overlay/ADE_val_00000001.png", colour_overlay(rgb, pred));
#pragma once

#include <weft/core/tensor.hpp>
#include <weft/exec/cpu/thread_pool.hpp>

#include "palette.hpp"

namespace denseclip {

// [H, W] class indices 0..149 -> ADE's annotation encoding (k + 1; 0 would be "other").
inline weft::Tensor<std::uint8_t, 2> ade_encoded(const weft::Tensor<std::uint8_t, 2>& pred) {
    weft::Tensor<std::uint8_t, 2> out = pred + std::uint8_t(1);
    return out;
}

// Half image, half the class's palette colour: [H, W, 3] and [H, W] -> [H, W, 3].
inline weft::Tensor<std::uint8_t, 3> colour_overlay(const weft::Tensor<std::uint8_t, 3>& rgb,
                                                    const weft::Tensor<std::uint8_t, 2>& pred,
                                                    double alpha = 0.5) {
    const auto img = rgb.contiguous();
    const auto p = pred.contiguous();
    WEFT_CHECK(img.size(0) == p.size(0) && img.size(1) == p.size(1), "colour_overlay: image ", img.shape(),
               " and prediction ", p.shape(), " differ in size");
    auto out = weft::Tensor<std::uint8_t, 3>::empty(img.shape());
    const weft::index_t n = p.numel();
    const std::uint8_t* s = img.data();
    const std::uint8_t* c = p.data();
    std::uint8_t* d = out.data();
    weft::parallel_for(0, n, 4096, [&](weft::index_t b, weft::index_t e) {
        for (weft::index_t i = b; i < e; ++i) {
            const auto& colour = ade20k_palette[c[i] < ade20k_palette.size() ? c[i] : 0];
            for (int k = 0; k < 3; ++k)
                d[3 * i + k] = std::uint8_t((1 - alpha) * s[3 * i + k] + alpha * colour[std::size_t(k)] + 0.5);
        }
    });
    return out;
}

}  // namespace denseclip
