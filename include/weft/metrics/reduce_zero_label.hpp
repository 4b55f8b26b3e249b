// weft/metrics/reduce_zero_label.hpp: ADE20K's label encoding to class indices.
//
// ADE20K annotation PNGs (and the prediction PNGs weft writes in the same encoding) store class
// k as k + 1 and 0 for "other", which is not one of the 150 classes. mmseg reads them with
// reduce_zero_label: 0 -> 255 (ignored), v -> v - 1, and 255 stays 255 (mmseg's uint8 steps
// 0 -> 255 -> 254 -> 255 give exactly this).
//
//   auto label = reduce_zero_label(weft::data::read_label_png("ADE_val_00000001.png"));  // [H, W]
#pragma once

#include <cstdint>
#include <type_traits>

#include "../core/tensor.hpp"

namespace weft::metrics {

// [H, W] uint8: 0 and 255 -> 255, v -> v - 1 otherwise. A new tensor; the input is unchanged.
inline Tensor<std::uint8_t, 2> reduce_zero_label(const Tensor<std::uint8_t, 2>& encoded) {
    WEFT_CHECK(encoded.defined(), "reduce_zero_label: undefined label tensor");
    const auto src = encoded.contiguous();
    auto out = Tensor<std::uint8_t, 2>::empty(src.shape());
    const std::uint8_t* s = src.data();
    std::uint8_t* d = out.data();
    for (index_t i = 0; i < src.numel(); ++i) d[i] = (s[i] == 0 || s[i] == 255) ? 255 : std::uint8_t(s[i] - 1);
    return out;
}

// The inverse for writing predictions as ADE-style PNGs: class k -> k + 1 (classes 0..253).
// A value of 254 or more has no ADE encoding and is an error.
template <class T>
Tensor<std::uint8_t, 2> encode_zero_label(const Tensor<T, 2>& classes) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>,
                  "weft: encode_zero_label takes integer class indices (argmax of the logits)");
    WEFT_CHECK(classes.defined(), "encode_zero_label: undefined class tensor");
    const auto src = classes.contiguous();
    auto out = Tensor<std::uint8_t, 2>::empty(src.shape());
    const T* s = src.data();
    std::uint8_t* d = out.data();
    for (index_t i = 0; i < src.numel(); ++i) {
        const auto v = std::int64_t(s[i]);
        WEFT_CHECK(v >= 0 && v < 254, "encode_zero_label: class ", v, " at flat index ", i, " of a map of shape ",
                   src.shape(), " has no ADE encoding (classes 0..253 become 1..254)");
        d[i] = std::uint8_t(v + 1);
    }
    return out;
}

}  // namespace weft::metrics
