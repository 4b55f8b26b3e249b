// weft/ops/gather.hpp: reading and adding elements at integer positions along one axis.
//
//   auto y = gather(x, 1, idx);             // y[i][j] = x[i][idx[i][j]]           (torch.gather)
//   auto r = index_select(x, 0, rows);      // x's slices at rows along axis 0     (torch.index_select)
//   auto s = scatter_add(x, 1, idx, src);   // x, plus src[i][j] added at x[i][idx[i][j]]
//                                           // (torch.scatter_add, out of place)
//
// Indices are int64 tensors. Shapes follow PyTorch: gather's index has x's rank and no larger
// extent than x outside `axis`, and the result has index's shape; scatter_add's index is no
// larger than src anywhere, nor than x outside `axis`, and only src's elements that index
// covers are added. An index outside [0, size along axis) is an error naming it (PyTorch
// refuses negative ones here too).
//
// Gradients: gather sends each output gradient back to the element it read (a scatter-add);
// index_select adds back whole slices; scatter_add passes its gradient through to x and
// gathers it for src (zero where src was not used). None of them differentiates the index.
//
// Parallel loops run over lines along `axis`: every line of the index writes a different line
// of the output, so repeated indices add up in one thread, in order (deterministic). The CUDA
// kernels (ops/cuda/gather.cuh) keep that plan: one GPU thread per line, the same bits.
#pragma once

#include <utility>
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/thread_pool.hpp"
#include "../expr.hpp"
#include "cpu/index_rows.hpp"
#if WEFT_WITH_CUDA
#include "cuda/gather.cuh"
#include "cuda/index_check.cuh"
#include "cuda/index_rows.cuh"
#endif

namespace weft {

template <Element T, int R, Device D = Cpu>
struct ScatterAddGrads {
    Tensor<T, R, D> grad_x;
    Tensor<T, R, D> grad_src;
};

namespace detail {

// The lines of a shape along one axis: line l is the l-th position (row-major) of the other
// axes, and offset() finds its first element in a tensor with the given strides.
template <int R>
struct AxisLines {
    Shape<R> shape;
    int axis;
    index_t count = 1;  // number of lines
    index_t length;     // elements per line

    AxisLines(const Shape<R>& s, int a) : shape(s), axis(a), length(s[a]) {
        for (int d = 0; d < R; ++d)
            if (d != a) count *= s[d];
    }

    index_t offset(index_t line, const Shape<R>& strides) const {
        index_t off = 0;
        for (int d = R - 1; d >= 0; --d) {
            if (d == axis) continue;
            off += (line % shape[d]) * strides[d];
            line /= shape[d];
        }
        return off;
    }

    template <class F>
    void parallel(F&& f) const {
        if (count == 0 || length == 0) return;
        parallel_for(0, count, std::max<index_t>(1, cpu::grain / length), [&](index_t b, index_t e) {
            for (index_t l = b; l < e; ++l) f(l);
        });
    }
};

// Every index in [0, bound); the message names the op, the index, the axis and the shape. On
// CUDA the first bad one is found on the device (ops/cuda/index_check.cuh).
template <int R, int RI, Device D>
void check_axis_indices(const Tensor<std::int64_t, RI, D>& dense_index, index_t bound, const char* op, int axis,
                        const char* what, const Shape<R>& shape) {
    if constexpr (std::same_as<D, Cpu>) {
        const std::int64_t* p = dense_index.data();
        for (index_t j = 0; j < dense_index.numel(); ++j)
            WEFT_CHECK(p[j] >= 0 && p[j] < bound, op, ": index ", p[j], " is out of range for axis ", axis, " of ",
                       what, " of shape ", shape, " (size ", bound, ")");
    } else {
#if WEFT_WITH_CUDA
        const index_t j = cuda::first_bad_index(dense_index.data(), dense_index.numel(), bound);
        if (j >= 0)
            WEFT_FAIL(op, ": index ", cuda::index_at(dense_index.data(), j), " is out of range for axis ", axis,
                      " of ", what, " of shape ", shape, " (size ", bound, ")");
#endif
    }
}

template <int R, Device D>
void check_index_extents(const char* op, const Tensor<std::int64_t, R, D>& index, const Shape<R>& x, int axis,
                         const Shape<R>* src) {
    for (int d = 0; d < R; ++d) {
        WEFT_CHECK(d == axis || index.size(d) <= x[d], op, ": index of shape ", index.shape(),
                   " is larger than x of shape ", x, " along axis ", d, " (only axis ", axis, " may differ)");
        WEFT_CHECK(!src || index.size(d) <= (*src)[d], op, ": index of shape ", index.shape(),
                   " is larger than src of shape ", *src, " along axis ", d);
    }
}

// out[line + k] = x[line + index[line + k]] along `axis`, over index's shape (strides per tensor).
template <class T, int R>
void gather_lines(const Tensor<T, R, Cpu>& out, const Tensor<T, R, Cpu>& x, const Tensor<std::int64_t, R, Cpu>& index,
                  int axis) {
    const AxisLines<R> lines(index.shape(), axis);
    const index_t os = out.stride(axis), xs = x.stride(axis), is = index.stride(axis);
    T* po = out.data();
    const T* px = x.data();
    const std::int64_t* pi = index.data();
    lines.parallel([&](index_t l) {
        T* o = po + lines.offset(l, out.strides());
        const T* xl = px + lines.offset(l, x.strides());
        const std::int64_t* il = pi + lines.offset(l, index.strides());
        for (index_t k = 0; k < lines.length; ++k) o[k * os] = xl[il[k * is] * xs];
    });
}

// out[line + index[line + k]] += src[line + k] along `axis`, over index's shape.
template <class T, int R>
void scatter_add_lines(const Tensor<T, R, Cpu>& out, const Tensor<T, R, Cpu>& src,
                       const Tensor<std::int64_t, R, Cpu>& index, int axis) {
    using C = compute_t<T>;
    const AxisLines<R> lines(index.shape(), axis);
    const index_t os = out.stride(axis), ss = src.stride(axis), is = index.stride(axis);
    T* po = out.data();
    const T* ps = src.data();
    const std::int64_t* pi = index.data();
    lines.parallel([&](index_t l) {
        T* o = po + lines.offset(l, out.strides());
        const T* sl = ps + lines.offset(l, src.strides());
        const std::int64_t* il = pi + lines.offset(l, index.strides());
        for (index_t k = 0; k < lines.length; ++k) {
            T& dst = o[il[k * is] * os];
            dst = convert<T>(convert<C>(dst) + convert<C>(sl[k * ss]));
        }
    });
}

// A tensor as [outer, n, inner] around `axis` (for index_select), with its extents.
template <int R>
void split_around(const Shape<R>& s, int axis, index_t& outer, index_t& inner) {
    outer = inner = 1;
    for (int d = 0; d < axis; ++d) outer *= s[d];
    for (int d = axis + 1; d < R; ++d) inner *= s[d];
}

}  // namespace detail

// ---- backward ------------------------------------------------------------------------------

// Gradient of sum(grad_out * gather(x, axis, index)) with respect to x of shape x_shape.
template <Element T, int R, Device D>
Tensor<T, R, D> gather_backward(const Tensor<T, R, D>& grad_out, const Shape<R>& x_shape, int axis,
                                const Tensor<std::int64_t, R, D>& index) {
    const int a = Shape<R>::normalize_axis(axis);
    WEFT_CHECK(grad_out.shape() == index.shape(), "gather_backward: grad_out of shape ", grad_out.shape(),
               " differs from index of shape ", index.shape());
    detail::check_index_extents<R>("gather_backward", index, x_shape, a, nullptr);
    const auto idx = index.contiguous();
    detail::check_axis_indices(idx, x_shape[a], "gather_backward", a, "x", x_shape);
    auto grad_x = Tensor<T, R, D>::zeros(x_shape);
    if constexpr (std::same_as<D, Cpu>) {
        detail::scatter_add_lines(grad_x, grad_out.detach(), idx, a);
    } else {
#if WEFT_WITH_CUDA
        cuda::scatter_add_lines(grad_x, grad_out.detach(), idx, a);
#endif
    }
    return grad_x;
}

// Gradient of sum(grad_out * index_select(x, axis, index)) with respect to x of shape x_shape.
template <Element T, int R, Device D>
Tensor<T, R, D> index_select_backward(const Tensor<T, R, D>& grad_out, const Shape<R>& x_shape, int axis,
                                      const Tensor<std::int64_t, 1, D>& index) {
    const int a = Shape<R>::normalize_axis(axis);
    Shape<R> expected = x_shape;
    expected[a] = index.size(0);
    WEFT_CHECK(grad_out.shape() == expected, "index_select_backward: grad_out of shape ", grad_out.shape(),
               " does not match x of shape ", x_shape, " with ", index.size(0), " indices along axis ", a,
               " (expected ", expected, ")");
    const auto idx = index.contiguous();
    detail::check_axis_indices(idx, x_shape[a], "index_select_backward", a, "x", x_shape);
    index_t outer, inner;
    detail::split_around(x_shape, a, outer, inner);
    const auto g = grad_out.detach().contiguous();
    auto grad_x = Tensor<T, R, D>::empty(x_shape);
    if constexpr (std::same_as<D, Cpu>) {
        detail::index_rows_backward(grad_x.data(), g.data(), outer, x_shape[a], inner, idx.data(), idx.numel());
    } else {
#if WEFT_WITH_CUDA
        cuda::index_rows_backward(grad_x.data(), g.data(), outer, x_shape[a], inner, idx.data(), idx.numel());
#endif
    }
    return grad_x;
}

// Gradients of sum(grad_out * scatter_add(x, axis, index, src)) with respect to x and src.
template <Element T, int R, Device D>
ScatterAddGrads<T, R, D> scatter_add_backward(const Tensor<T, R, D>& grad_out, int axis,
                                              const Tensor<std::int64_t, R, D>& index, const Shape<R>& src_shape,
                                              bool need_x = true, bool need_src = true) {
    const int a = Shape<R>::normalize_axis(axis);
    detail::check_index_extents<R>("scatter_add_backward", index, grad_out.shape(), a, &src_shape);
    ScatterAddGrads<T, R, D> grads;
    if (need_x) grads.grad_x = grad_out.detach();
    if (need_src) {
        const auto idx = index.contiguous();
        detail::check_axis_indices(idx, grad_out.size(a), "scatter_add_backward", a, "x", grad_out.shape());
        // src's elements outside index's extent were not used: their gradient is zero.
        bool covers = src_shape == index.shape();
        grads.grad_src = covers ? Tensor<T, R, D>::empty(src_shape) : Tensor<T, R, D>::zeros(src_shape);
        if constexpr (std::same_as<D, Cpu>) {
            detail::gather_lines(grads.grad_src, grad_out.detach(), idx, a);
        } else {
#if WEFT_WITH_CUDA
            cuda::gather_lines(grads.grad_src, grad_out.detach(), idx, a);
#endif
        }
    }
    return grads;
}

// ---- forward -------------------------------------------------------------------------------

// out[..., i, ...] = x[..., index[..., i, ...], ...] along axis; out has index's shape.
template <Element T, int R, Device D>
Tensor<T, R, D> gather(const Tensor<T, R, D>& x, int axis, const Tensor<std::int64_t, R, D>& index) {
    static_assert(R >= 1, "weft: gather needs tensors of rank 1 or more");
    const int a = Shape<R>::normalize_axis(axis);
    detail::check_index_extents<R>("gather", index, x.shape(), a, nullptr);
    const auto idx = index.contiguous();
    detail::check_axis_indices(idx, x.size(a), "gather", a, "x", x.shape());
    auto out = Tensor<T, R, D>::empty(index.shape());
    if constexpr (std::same_as<D, Cpu>) {
        detail::gather_lines(out, x.detach(), idx, a);
    } else {
#if WEFT_WITH_CUDA
        cuda::gather_lines(out, x.detach(), idx, a);
#endif
    }
    if constexpr (FloatingElement<T>) {
        if (needs_grad(x))
            record(
                out, "gather",
                [x, a, idx](const Tensor<T, R, D>& g) { accumulate_grad(x, gather_backward(g, x.shape(), a, idx)); },
                x);
    }
    return out;
}

// x's slices at the listed positions along axis: the result's extent there is index.size(0).
template <Element T, int R, Device D>
Tensor<T, R, D> index_select(const Tensor<T, R, D>& x, int axis, const Tensor<std::int64_t, 1, D>& index) {
    static_assert(R >= 1, "weft: index_select needs a tensor of rank 1 or more");
    const int a = Shape<R>::normalize_axis(axis);
    const auto idx = index.contiguous();
    detail::check_axis_indices(idx, x.size(a), "index_select", a, "x", x.shape());
    index_t outer, inner;
    detail::split_around(x.shape(), a, outer, inner);
    Shape<R> os = x.shape();
    os[a] = idx.numel();
    auto out = Tensor<T, R, D>::empty(os);
    const auto xc = x.detach().contiguous();  // [outer, size along axis, inner]
    if constexpr (std::same_as<D, Cpu>) {
        detail::index_rows_forward(out.data(), xc.data(), outer, x.size(a), inner, idx.data(), idx.numel());
    } else {
#if WEFT_WITH_CUDA
        cuda::index_rows_forward(out.data(), xc.data(), outer, x.size(a), inner, idx.data(), idx.numel());
#endif
    }
    if constexpr (FloatingElement<T>) {
        if (needs_grad(x))
            record(
                out, "index_select",
                [x, a, idx](const Tensor<T, R, D>& g) {
                    accumulate_grad(x, index_select_backward(g, x.shape(), a, idx));
                },
                x);
    }
    return out;
}

// A copy of x with src[..., i, ...] added at x[..., index[..., i, ...], ...] along axis.
template <Element T, int R, Device D>
Tensor<T, R, D> scatter_add(const Tensor<T, R, D>& x, int axis, const Tensor<std::int64_t, R, D>& index,
                            const Tensor<T, R, D>& src) {
    static_assert(R >= 1, "weft: scatter_add needs tensors of rank 1 or more");
    const int a = Shape<R>::normalize_axis(axis);
    const Shape<R> src_shape = src.shape();
    detail::check_index_extents<R>("scatter_add", index, x.shape(), a, &src_shape);
    const auto idx = index.contiguous();
    detail::check_axis_indices(idx, x.size(a), "scatter_add", a, "x", x.shape());
    auto out = x.detach().clone();
    if constexpr (std::same_as<D, Cpu>) {
        detail::scatter_add_lines(out, src.detach(), idx, a);
    } else {
#if WEFT_WITH_CUDA
        cuda::scatter_add_lines(out, src.detach(), idx, a);
#endif
    }
    if constexpr (FloatingElement<T>) {
        if (needs_grad(x, src))
            record(
                out, "scatter_add",
                [x, src, a, idx](const Tensor<T, R, D>& g) {
                    auto grads = scatter_add_backward(g, a, idx, src.shape(), x.requires_grad(), src.requires_grad());
                    if (x.requires_grad()) accumulate_grad(x, std::move(grads.grad_x));
                    if (src.requires_grad()) accumulate_grad(src, std::move(grads.grad_src));
                },
                x, src);
    }
    return out;
}

}  // namespace weft
