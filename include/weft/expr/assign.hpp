// weft/expr/assign.hpp: where lazy expressions become numbers.
//
//   Tensor<float, 2> y = a * b + c;   // allocate y with the broadcast shape, one pass
//   y = relu(y);                      // write into y's existing elements, one pass
//   y.slice(0, 0, 2) = 0.0f;          // write into a view
//   auto z = eval(exp(x));            // same, when the type is long to spell
//
// Assignment is alias-safe: when an operand shares memory with the destination in a different
// layout (y = y.t() * 2, y.slice(0, 1, n) = y.slice(0, 0, n - 1)), the expression is first
// evaluated into a temporary. Reading the very same elements that are written (y = y * 2) needs
// no temporary. (A plain `y = y.t()` on a named tensor rebinds the handle; see tensor.hpp.)
#pragma once

#include <ostream>
#include <type_traits>

#include "derivative.hpp"
#include "executor.hpp"
#include "expression.hpp"
#include "../core/format.hpp"

namespace weft {

namespace detail {

template <int R, int E>
Shape<R> left_pad(const Shape<E>& s) {
    Shape<R> out;
    for (int d = 0; d < R; ++d) out[d] = d < R - E ? 1 : s[d - (R - E)];
    return out;
}

// Does writing `dst` while reading `e` risk reading an element that was already overwritten?
template <Element T, int R, Device D, Expression E>
bool unsafe_alias(const Tensor<T, R, D>& dst, const E& e) {
    bool unsafe = false;
    visit_tensors(e, [&](const auto& t) {
        if (!same_storage(t.storage(), dst.storage()) || t.numel() == 0) return;
        const auto leaf = make_evaluator(t, dst.shape());
        if (static_cast<const void*>(leaf.p) != static_cast<const void*>(dst.data())) {
            unsafe = true;
            return;
        }
        for (int d = 0; d < R; ++d)
            if (dst.shape()[d] > 1 && leaf.st[d] != dst.strides()[d]) unsafe = true;
    });
    return unsafe;
}

}  // namespace detail

template <Element T, int R, Device D, class E>
void assign_expression(Tensor<T, R, D>& dst, const E& e) {
    if constexpr (ScalarValue<E>) {
        static_assert(!(std::is_integral_v<T> && std::is_floating_point_v<E>),
                      "weft: assigning a floating-point number to an integer tensor; convert it explicitly");
        assign_expression(dst, Scalar<T>{convert<compute_t<T>>(e)});
    } else {
        static_assert(Expression<E>, "weft: only expressions, tensors and numbers can be assigned to a tensor");
        static_assert(rank_of<E> <= R,
                      "weft: the expression has a higher rank than the tensor it is assigned to; "
                      "reshape the tensor or reduce the expression");
        static_assert(devices_compatible<device_of<E>, D>,
                      "weft: the expression lives on another device than the tensor; move it with .to<Device>()");
        static_assert(std::same_as<value_of<E>, T>,
                      "weft: the expression's element type differs from the tensor's; weft does not convert "
                      "silently: write weft::cast<T>(expression)");
        const auto es = shape_of(e);
        const bool fresh = !dst.defined();
        if (fresh) {
            dst = Tensor<T, R, D>::empty(detail::left_pad<R>(es));
        } else {
            WEFT_CHECK(!(grad_enabled() && autograd::detail::any_requires_grad(e)),
                       "an expression that requires grad is written into an existing tensor of shape ", dst.shape(),
                       "; autograd records only new results: write `auto y = eval(expression)` (or "
                       "`Tensor<T, R> y = expression`), or compute under NoGrad");
            WEFT_CHECK(broadcasts_to(es, dst.shape()), "cannot assign an expression of shape ", es,
                       " to a tensor of shape ", dst.shape());
        }
        if (fresh) record_expression(dst, "expression", e, [](const Tensor<T, R, D>& g) { return g; });
        if (dst.numel() == 0) return;
        if (detail::unsafe_alias(dst, e)) {
            Tensor<T, R, D> tmp = Tensor<T, R, D>::empty(dst.shape());
            Executor<D>::assign(tmp, make_evaluator(e, tmp.shape()));
            Executor<D>::assign(dst, make_evaluator(tmp, dst.shape()));
            return;
        }
        Executor<D>::assign(dst, make_evaluator(e, dst.shape()));
    }
}

// Evaluates an expression into a new dense tensor (scalar-only expressions land on the CPU).
template <Expression E>
auto eval(const E& e) {
    using D = std::conditional_t<std::same_as<device_of<E>, AnyDevice>, Cpu, device_of<E>>;
    Tensor<value_of<E>, rank_of<E>, D> out;
    assign_expression(out, e);
    return out;
}

// Printing an expression prints its value.
template <Expression E>
    requires(!AnyTensor<E>)
std::ostream& operator<<(std::ostream& os, const E& e) {
    return os << eval(e);
}

}  // namespace weft
