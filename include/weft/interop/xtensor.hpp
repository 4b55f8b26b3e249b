// weft/interop/xtensor.hpp: zero-copy views between weft tensors and xtensor.
//
//   Tensor<float, 3> x = Tensor<float, 3>::rand({2, 3, 4});
//   auto v = as_xtensor(x);                  // xt adaptor over x's elements, any strides
//   double s = xt::sum(v)();                 // xtensor algorithms on weft memory
//
//   xt::xtensor<double, 2> a = xt::ones<double>({3, 4});
//   auto t = from_xtensor(a);                // Tensor<double, 2> view of a's buffer
//
// Neither side copies. from_xtensor borrows: keep the container alive and unresized while the
// tensor is used. Note that xtensor gives size-1 axes a stride of 0; weft accepts that.
#pragma once

#include <array>
#include <cstddef>
#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>

#include "../core/tensor.hpp"

namespace weft {

template <Element T, int R>
auto as_xtensor(const Tensor<T, R, Cpu>& t) {
    std::array<std::size_t, R> shape;
    std::array<std::ptrdiff_t, R> strides;
    std::size_t span = t.numel() > 0 ? 1 : 0;  // elements from the first to one past the last
    for (int d = 0; d < R; ++d) {
        shape[d] = std::size_t(t.shape()[d]);
        strides[d] = std::ptrdiff_t(t.strides()[d]);
        if (t.numel() > 0) span += std::size_t((t.shape()[d] - 1) * t.strides()[d]);
    }
    return xt::adapt(t.data(), span, xt::no_ownership(), shape, strides);
}

// Any xtensor container or adaptor with contiguous, writable storage and static or dynamic rank.
template <class X>
    requires requires(X& x) {
        x.data();
        x.strides();
        x.shape();
    }
auto from_xtensor(X& x) {
    using T = std::remove_cvref_t<decltype(*x.data())>;
    static_assert(Element<T>, "weft: from_xtensor needs an element type weft supports");
    constexpr std::size_t N = std::tuple_size_v<std::remove_cvref_t<decltype(x.shape())>>;
    Shape<int(N)> shape, strides;
    for (std::size_t d = 0; d < N; ++d) {
        shape[int(d)] = index_t(x.shape()[d]);
        strides[int(d)] = index_t(x.strides()[d]);
    }
    return Tensor<T, int(N), Cpu>::wrap(x.data() + x.data_offset(), shape, strides);
}

}  // namespace weft
