// Test helpers shared by the CPU suites: reading a tensor back independently of the executor,
// and building predictable inputs.
#pragma once

#include <vector>
#include <weft/core/tensor.hpp>

namespace weft::test {

// Every element of `t` in row-major logical order, read through shape, strides and data().
template <class T, int R>
std::vector<T> logical_values(const Tensor<T, R>& t) {
    std::vector<T> out;
    for (index_t i = 0, n = t.numel(); i < n; ++i) {
        index_t rem = i, off = 0;
        for (int d = R - 1; d >= 0; --d) {
            off += (rem % t.shape()[d]) * t.strides()[d];
            rem /= t.shape()[d];
        }
        out.push_back(t.data()[off]);
    }
    return out;
}

// 0, 1, 2, ... as a dense tensor of the given shape.
template <class T = float, int R>
Tensor<T, R> iota(const Shape<R>& shape) {
    std::vector<T> v(std::size_t(shape.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = T(i);
    return Tensor<T, R>::from_vector(v, shape);
}

}  // namespace weft::test
