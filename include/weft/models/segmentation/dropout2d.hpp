// weft/models/segmentation/dropout2d.hpp: channel dropout (torch.nn.Dropout2d), used by
// mmseg's decode heads before the classifier.
//
//   auto y = seg::dropout2d(x, 0.1, training, gen);   // x [N, C, H, W]: drops whole channel maps
//
// One keep/drop decision per (sample, channel): a dropped map becomes zeros, a kept one is
// scaled by 1 / (1 - p). Evaluation (or p == 0) returns x itself. The decisions are the first
// N·C uniform floats of the generator's stream compared with 1 - p, drawn as ops/dropout.hpp
// draws its element masks, so a seed gives the same maps on any number of threads. The output
// is x times a constant [N, C, 1, 1] factor, an expression that differentiates itself. On CUDA
// the decisions are drawn on the device by the same Philox rule (ops/cuda/dropout.cuh).
//
// Under a replica slice of the generator (data parallel, see Generator::replica), x holds N of
// the global batch's N·replicas samples: its maps take the decisions the global [N·replicas, C]
// draw gives these samples, and the generator advances past the whole global draw.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <memory>

#include "../../core/tensor.hpp"
#include "../../expr.hpp"
#include "../../ops/dropout.hpp"

namespace weft::seg {

template <Element T, Device D>
Tensor<T, 4, D> dropout2d(const Tensor<T, 4, D>& x, double p, bool training, Generator& gen = default_generator()) {
    static_assert(FloatingElement<T>, "weft: dropout2d needs a floating-point tensor");
    weft::detail::check_drop_probability("dropout2d", p);
    if (!training || p == 0.0) return x;
    if constexpr (std::same_as<D, Cpu>) {
        const index_t n = x.size(0) * x.size(1);
        auto factor = Tensor<T, 4, D>::empty({x.size(0), x.size(1), 1, 1});  // [N, C, 1, 1]
        auto keep = std::make_unique<bool[]>(std::size_t(n));
        if (p >= 1.0) {
            std::fill(keep.get(), keep.get() + n, false);
        } else {
            weft::detail::draw_replica_keep_mask(keep.get(), weft::detail::AxisSplit{1, x.size(0), x.size(1)}, p,
                                                 gen);  // decisions [N, C]
        }
        const T scale = T(weft::detail::keep_scale(p));
        for (index_t i = 0; i < n; ++i) factor.data()[i] = keep[i] ? scale : T(0);
        return Tensor<T, 4, D>(x * factor);  // [N, C, H, W]
    } else {
#if WEFT_WITH_CUDA
        // The same decisions drawn on the device (ops/cuda/dropout.cuh), then one fused multiply.
        auto keep = Tensor<bool, 4, D>::zeros({x.size(0), x.size(1), 1, 1});  // [N, C, 1, 1]
        if (p < 1.0) weft::cuda::draw_replica_keep_mask(keep.data(), 1, x.size(0), x.size(1), p, gen);
        const T scale = T(weft::detail::keep_scale(p));
        return Tensor<T, 4, D>(x * (cast<T>(keep) * scale));  // [N, C, H, W]
#else
        return x;  // unreachable: a Cuda tensor exists only in translation units nvcc compiles
#endif
    }
}

}  // namespace weft::seg
