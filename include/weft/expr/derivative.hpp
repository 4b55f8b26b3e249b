// weft/expr/derivative.hpp: the backward of a fused expression, generated at compile time.
//
// Reverse mode over the expression tree: the adjoint of the root is the incoming gradient g;
// an interior node passes to each operand its own adjoint times the functor's derivative
// (fn::Exp::d, fn::Mul::d0, ...), recomputed from the operands inside the same fused loop. At
// each tensor leaf that requires grad, the adjoint is a lazy expression; it is evaluated once,
// summed over the axes that leaf was broadcast along, and added to the leaf's gradient:
//
//   y = exp(a * b) + c        adjoint of a:  g * exp(a * b) * b      (one loop)
//                             adjoint of c:  g, summed to c's shape  (one reduction)
//
// Functors without a derivative (comparisons, logic) pass no gradient, nor do integer casts.
#pragma once

#include <vector>

#include "../autograd/tape.hpp"
#include "expression.hpp"
#include "functors.hpp"
#include "nodes.hpp"
#include "operators.hpp"
#include "reduce_kernel.hpp"

namespace weft {

namespace fn {

// f'(x) as a functor of x alone: the backward loop recomputes y = f(x) from x.
template <class F>
struct DerivativeOf {
    static constexpr const char* name = "derivative";
    F f;
    template <class T> WEFT_HD T operator()(T x) const { return f.d(x, f(x)); }
};

template <class F>
struct Derivative0 {
    static constexpr const char* name = "derivative";
    F f;
    template <class T> WEFT_HD T operator()(T a, T b) const { return f.d0(a, b, f(a, b)); }
};

template <class F>
struct Derivative1 {
    static constexpr const char* name = "derivative";
    F f;
    template <class T> WEFT_HD T operator()(T a, T b) const { return f.d1(a, b, f(a, b)); }
};

}  // namespace fn

// An expression read at a larger (broadcast) shape: gives `g` of a keepdim reduction the shape
// of the reduced operand.
template <Expression A, int R>
struct Broadcast {
    using value_type = value_of<A>;
    using compute_type = compute_t<value_type>;
    using device_type = device_of<A>;
    static constexpr int rank = R;
    using weft_expression_tag = void;

    A a;
    Shape<R> shape_;

    Broadcast(A a_, const Shape<R>& s) : a(std::move(a_)), shape_(s) {
        WEFT_CHECK(broadcasts_to(shape_of(a), s), "broadcast: shape ", shape_of(a), " does not broadcast to ", s);
    }
    const Shape<R>& shape() const { return shape_; }
};

template <int R, class A, int RB>
auto make_evaluator(const Broadcast<A, RB>& e, const Shape<R>& out) {
    return make_evaluator(e.a, out);
}
template <class A, int R, class V>
void visit_tensors(const Broadcast<A, R>& e, V&& v) {
    visit_tensors(e.a, v);
}

template <int R, Expression A>
Broadcast<A, R> broadcast_to(const A& a, const Shape<R>& s) {
    return Broadcast<A, R>(a, s);
}

namespace autograd::detail {

template <Expression E>
bool any_requires_grad(const E& e) {
    bool any = false;
    visit_tensors(e, [&](const auto& t) { any = any || t.requires_grad(); });
    return any;
}

template <Expression E>
std::vector<std::shared_ptr<Node>> grad_inputs(const E& e) {
    std::vector<std::shared_ptr<Node>> inputs;
    visit_tensors(e, [&](const auto& t) {
        if (t.requires_grad()) inputs.push_back(std::static_pointer_cast<Node>(t.grad_slot()));
    });
    return inputs;
}

// The adjoint `adj` (an expression at the evaluation shape) summed down to `leaf_shape`.
template <int RL, Expression A>
Tensor<value_of<A>, RL, device_of<A>> sum_to(const A& adj, const Shape<RL>& leaf_shape) {
    constexpr int R = rank_of<A>;
    using T = value_of<A>;
    using D = device_of<A>;
    const Shape<R> full = shape_of(adj);
    std::array<bool, (R > 0 ? R : 1)> mask{};
    bool any = false;
    for (int d = 0; d < R; ++d) {
        const int src = d - (R - RL);
        mask[std::size_t(d)] = src < 0 ? true : (leaf_shape[src] == 1 && full[d] != 1);
        any = any || (mask[std::size_t(d)] && full[d] != 1) || src < 0;
    }
    Tensor<T, R, D> out;
    if constexpr (R > 0) {
        if (any) {
            using Acc = weft::detail::sum_acc_t<T, !std::same_as<D, Cuda>>;
            out = weft::detail::reduce_raw<T>(adj, mask, reduce_op::Sum<Acc>{});
            return out.reshape(leaf_shape);
        }
    }
    out = Tensor<T, R, D>::empty(full);
    if (out.numel() > 0) Executor<D>::assign(out, make_evaluator(adj, full));
    return out.reshape(leaf_shape);
}

}  // namespace autograd::detail

// ---- the walk over the tree ---------------------------------------------------------------------

// Calls fn(leaf, adjoint) for every tensor leaf of `e` that requires grad.
template <Element T, int R, Device D, class G, class Fn>
void for_each_leaf_adjoint(const Tensor<T, R, D>& t, const G& adj, Fn& fn) {
    if constexpr (FloatingElement<T>) {
        if (t.requires_grad()) fn(t, adj);
    }
}

template <Element T, class G, class Fn>
void for_each_leaf_adjoint(const Scalar<T>&, const G&, Fn&) {}

template <class F, class A, class G, class Fn>
void for_each_leaf_adjoint(const Unary<F, A>& e, const G& adj, Fn& fn) {
    if constexpr (fn::DifferentiableUnary<F, compute_t<value_of<A>>>) {
        if (!autograd::detail::any_requires_grad(e.a)) return;
        using Dx = fn::DerivativeOf<F>;
        for_each_leaf_adjoint(e.a, adj * Unary<Dx, A>(Dx{e.f}, e.a), fn);
    }
}

template <class F, class A, class B, class G, class Fn>
void for_each_leaf_adjoint(const Binary<F, A, B>& e, const G& adj, Fn& fn) {
    if constexpr (fn::DifferentiableBinary<F, compute_t<value_of<A>>>) {
        if (autograd::detail::any_requires_grad(e.a)) {
            using D0 = fn::Derivative0<F>;
            for_each_leaf_adjoint(e.a, adj * Binary<D0, A, B>(D0{e.f}, e.a, e.b), fn);
        }
        if (autograd::detail::any_requires_grad(e.b)) {
            using D1 = fn::Derivative1<F>;
            for_each_leaf_adjoint(e.b, adj * Binary<D1, A, B>(D1{e.f}, e.a, e.b), fn);
        }
    }
}

template <class C, class A, class B, class G, class Fn>
void for_each_leaf_adjoint(const Where<C, A, B>& e, const G& adj, Fn& fn) {
    if (autograd::detail::any_requires_grad(e.a)) for_each_leaf_adjoint(e.a, where(e.c, adj, 0), fn);
    if (autograd::detail::any_requires_grad(e.b)) for_each_leaf_adjoint(e.b, where(e.c, 0, adj), fn);
}

template <class To, class A, class G, class Fn>
void for_each_leaf_adjoint(const Cast<To, A>& e, const G& adj, Fn& fn) {
    if constexpr (FloatingElement<To> && FloatingElement<value_of<A>>) {
        if (autograd::detail::any_requires_grad(e.a)) for_each_leaf_adjoint(e.a, cast<value_of<A>>(adj), fn);
    }
}

template <class A, int R, class G, class Fn>
void for_each_leaf_adjoint(const Broadcast<A, R>& e, const G& adj, Fn& fn) {
    for_each_leaf_adjoint(e.a, adj, fn);
}

// Records on `out` the node of an expression `e` evaluated into it. `root(g)` turns the gradient
// of `out` into the adjoint of e's root, at e's evaluation shape (for a plain assignment, g
// itself; for a reduction, g broadcast back over the reduced axes).
template <Element T, int R, Device D, Expression E, class Root>
void record_expression(Tensor<T, R, D>& out, const char* name, const E& e, Root root) {
    if constexpr (FloatingElement<T> && FloatingElement<value_of<E>>) {
        if (!grad_enabled() || !autograd::detail::any_requires_grad(e)) return;
        record_with_inputs(
            out, name,
            [e, root](const Tensor<T, R, D>& g) {
                auto send = [](const auto& leaf, const auto& adj) {
                    accumulate_grad(leaf, autograd::detail::sum_to(adj, leaf.shape()));
                };
                for_each_leaf_adjoint(e, root(g), send);
            },
            autograd::detail::grad_inputs(e));
    }
}

}  // namespace weft
