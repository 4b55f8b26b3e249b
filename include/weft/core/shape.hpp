// weft/core/shape.hpp: `Shape<Rank>`, a fixed-rank list of run-time extents.
//
//   Shape<3> s{2, 3, 4};     // s.numel() == 24, s[-1] == 4 via s.at(-1)
//
// The rank is a type parameter, so code that needs a matrix says `Shape<2>` and a rank-3 value
// does not convert. Shapes are plain structs usable inside CUDA kernels. Strides use the same type.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "config.hpp"
#include "error.hpp"

namespace weft {

template <int Rank>
struct Shape {
    static_assert(Rank >= 0, "weft: a Shape's rank cannot be negative");
    static constexpr int rank = Rank;

    index_t dims[Rank > 0 ? Rank : 1] = {};

    constexpr Shape() = default;

    // Shape<2>{3, 4}: exactly Rank extents.
    template <class... I>
        requires(sizeof...(I) == Rank && Rank > 0 && (std::is_integral_v<I> && ...))
    constexpr Shape(I... extents) : dims{static_cast<index_t>(extents)...} {}

    static Shape from(std::initializer_list<index_t> extents) {
        WEFT_CHECK(extents.size() == std::size_t(Rank), "a rank-", Rank, " shape needs ", Rank,
                   " extents, got ", extents.size());
        Shape s;
        int i = 0;
        for (index_t e : extents) s.dims[i++] = e;
        return s;
    }

    template <class A>
    static constexpr Shape from_array(const A& a) {
        Shape s;
        for (int i = 0; i < Rank; ++i) s.dims[i] = index_t(a[i]);
        return s;
    }

    WEFT_HD constexpr index_t& operator[](int i) { return dims[i]; }
    WEFT_HD constexpr const index_t& operator[](int i) const { return dims[i]; }

    // Python-style: at(-1) is the last extent. Checked.
    index_t at(int i) const { return dims[normalize_axis(i)]; }

    WEFT_HD constexpr index_t numel() const {
        index_t n = 1;
        for (int i = 0; i < Rank; ++i) n *= dims[i];
        return n;
    }

    static constexpr int size() { return Rank; }

    static int normalize_axis(int axis) {
        const int a = axis < 0 ? axis + Rank : axis;
        WEFT_CHECK(a >= 0 && a < Rank, "axis ", axis, " is out of range for rank ", Rank);
        return a;
    }

    friend constexpr bool operator==(const Shape& a, const Shape& b) {
        for (int i = 0; i < Rank; ++i)
            if (a.dims[i] != b.dims[i]) return false;
        return true;
    }

    std::string str() const {
        std::ostringstream os;
        os << *this;
        return os.str();
    }

    friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
        os << '[';
        for (int i = 0; i < Rank; ++i) os << (i ? ", " : "") << s.dims[i];
        return os << ']';
    }
};

template <class... I>
Shape(I...) -> Shape<int(sizeof...(I))>;

// Row-major (C-order) strides of a dense tensor of this shape, in elements.
template <int Rank>
constexpr Shape<Rank> contiguous_strides(const Shape<Rank>& shape) {
    Shape<Rank> s;
    index_t step = 1;
    for (int i = Rank - 1; i >= 0; --i) {
        s[i] = step;
        step *= shape[i] > 1 ? shape[i] : 1;
    }
    return s;
}

}  // namespace weft
