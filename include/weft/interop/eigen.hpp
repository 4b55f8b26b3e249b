// weft/interop/eigen.hpp: zero-copy views between weft tensors and Eigen.
//
//   Tensor<float, 2> w = Tensor<float, 2>::randn({3, 4});
//   auto m = as_eigen(w);                 // Eigen::Map over w's elements, [3, 4] row-major
//   Eigen::VectorXf v = m * x;            // Eigen reads weft memory directly
//
//   Eigen::MatrixXd a(5, 6);              // column-major
//   auto t = from_eigen(a);               // Tensor<double, 2> view, strides [1, 5]
//
// Neither side copies. A view made by from_eigen borrows the matrix's memory: keep the matrix
// alive (and unresized) while the tensor is used. as_eigen keeps nothing alive either: the
// Map is valid while the tensor's storage is. Arbitrary (non-negative) strides are allowed, so
// transposed and sliced tensors map without copying.
#pragma once

#include <Eigen/Core>
#include <type_traits>

#include "../core/tensor.hpp"

namespace weft {

template <class T>
using EigenMatrixMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
                                  Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
template <class T>
using EigenVectorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>, Eigen::Unaligned, Eigen::InnerStride<Eigen::Dynamic>>;

// [rows, cols] tensor -> Eigen matrix map (row stride = outer stride, column stride = inner).
template <Element T>
EigenMatrixMap<T> as_eigen(const Tensor<T, 2, Cpu>& t) {
    return EigenMatrixMap<T>(t.data(), t.shape()[0], t.shape()[1],
                             Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(t.strides()[0], t.strides()[1]));
}

// [n] tensor -> Eigen column-vector map.
template <Element T>
EigenVectorMap<T> as_eigen(const Tensor<T, 1, Cpu>& t) {
    return EigenVectorMap<T>(t.data(), t.shape()[0], Eigen::InnerStride<Eigen::Dynamic>(t.strides()[0]));
}

// Any Eigen object with direct, writable storage (Matrix, Array, Map, Block of those, Ref):
// a vector becomes Tensor<T, 1>, anything else Tensor<T, 2> with the matching strides.
template <class Derived>
    requires(bool(std::remove_cvref_t<Derived>::Flags & Eigen::DirectAccessBit) &&
             Element<typename std::remove_cvref_t<Derived>::Scalar>)
auto from_eigen(Derived& m) {
    using E = std::remove_cvref_t<Derived>;
    using T = typename E::Scalar;
    static_assert(!std::is_const_v<std::remove_reference_t<decltype(*m.data())>>,
                  "weft: from_eigen needs writable Eigen storage; weft tensors are mutable views");
    const index_t inner = m.innerStride(), outer = m.outerStride();
    if constexpr (E::IsVectorAtCompileTime) {
        return Tensor<T, 1, Cpu>::wrap(m.data(), Shape<1>{index_t(m.size())}, Shape<1>{inner});
    } else {
        const index_t row_stride = E::IsRowMajor ? outer : inner;
        const index_t col_stride = E::IsRowMajor ? inner : outer;
        return Tensor<T, 2, Cpu>::wrap(m.data(), Shape<2>{index_t(m.rows()), index_t(m.cols())},
                                       Shape<2>{row_stride, col_stride});
    }
}

}  // namespace weft
