// weft/core/format.hpp: printing tensors.
//
//   std::cout << x;
//   tensor([[0.1000, 2.0000],
//           [3.0000, 4.5000]], dtype=float32, shape=[2, 2])
//
// Layout follows PyTorch: nested brackets, one row per line, one width for every entry, and
// axes longer than six summarised as "first three, ..., last three" once the tensor has more
// than 1000 elements. A CUDA tensor is copied to the host to print.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>

#include "tensor.hpp"

namespace weft {

namespace detail {

template <class T>
std::string format_element(T v) {
    if constexpr (std::same_as<T, bool>) {
        return v ? "True" : "False";
    } else if constexpr (std::is_integral_v<T>) {
        return std::to_string(static_cast<long long>(v));
    } else {
        const double d = std::same_as<T, double> ? double(v) : double(float(v));
        if (std::isnan(d)) return "nan";
        if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
        char buf[64];
        const double a = std::fabs(d);
        std::snprintf(buf, sizeof buf, (a != 0 && (a >= 1e8 || a < 1e-4)) ? "%.4e" : "%.4f", d);
        return buf;
    }
}

template <class T, int R>
struct TensorPrinter {
    const Shape<R>& shape;
    const Shape<R>& strides;
    bool summarize;
    std::size_t width = 0;

    bool skip(index_t i, index_t n) const { return summarize && n > 6 && i >= 3 && i < n - 3; }

    void measure(const T* p, int level) {
        if constexpr (R == 0) {
            width = format_element(*p).size();
        } else {
            for (index_t i = 0, n = shape[level]; i < n; ++i) {
                if (skip(i, n)) i = n - 3;
                const T* q = p + i * strides[level];
                if (level == R - 1) width = std::max(width, format_element(*q).size());
                else measure(q, level + 1);
            }
        }
    }

    void print(std::ostream& os, const T* p, int level, int indent) const {
        if constexpr (R == 0) {
            os << format_element(*p);
        } else {
            const index_t n = shape[level];
            const bool last = level == R - 1;
            // Between sub-blocks: a newline per remaining level, then indentation under the '['.
            const std::string gap = last ? " " : std::string(std::size_t(R - 1 - level), '\n') +
                                                       std::string(std::size_t(indent + level + 1), ' ');
            os << '[';
            for (index_t i = 0; i < n; ++i) {
                if (skip(i, n)) {
                    os << "...," << gap;
                    i = n - 3;
                }
                const T* q = p + i * strides[level];
                if (last) {
                    const std::string e = format_element(*q);
                    os << std::string(width - e.size(), ' ') << e;
                } else {
                    print(os, q, level + 1, indent);
                }
                if (i + 1 < n) os << ',' << gap;
            }
            os << ']';
        }
    }
};

}  // namespace detail

template <Element T, int R, Device D>
std::ostream& operator<<(std::ostream& os, const Tensor<T, R, D>& t) {
    if (!t.defined()) return os << "tensor(undefined, dtype=" << dtype_name(dtype_of<T>) << ")";
    const Tensor<T, R, Cpu> host = t.template to<Cpu>();
    detail::TensorPrinter<T, R> printer{host.shape(), host.strides(), host.numel() > 1000};
    os << "tensor(";
    if (host.numel() == 0) {
        os << "[]";
    } else {
        printer.measure(host.data(), 0);
        printer.print(os, host.data(), 0, 7);
    }
    os << ", dtype=" << dtype_name(dtype_of<T>);
    if constexpr (std::same_as<D, Cuda>) os << ", device=cuda";
    return os << ", shape=" << t.shape() << ')';
}

}  // namespace weft
