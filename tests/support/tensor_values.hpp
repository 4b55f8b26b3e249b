// Test helpers shared by the CPU suites: reading a tensor back independently of the executor,
// and building predictable inputs.
#pragma once

#include <algorithm>
#include <cmath>
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

// The largest |a_i - b_i| of two tensors with the same number of elements.
template <class T, int R>
double max_abs_diff(const Tensor<T, R>& a, const Tensor<T, R>& b) {
    const auto x = logical_values(a), y = logical_values(b);
    WEFT_CHECK(x.size() == y.size(), "max_abs_diff: ", a.shape(), " and ", b.shape(), " differ in size");
    double m = 0;
    for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(double(x[i]) - double(y[i])));
    return m;
}

}  // namespace weft::test
