// weft/autograd/tape.hpp: the tape: what an op records so that backward() can run it in reverse.
//
// Every tensor that gradient flows into carries a slot (core/grad_slot.hpp); here a slot is a
// `Node`. A leaf node (a tensor marked requires_grad_()) only collects its gradient. An interior
// node belongs to the result of one recorded op: it keeps edges to the nodes of that op's inputs
// and a closure that, given the gradient of the result, adds the gradients of the inputs into
// their nodes. The closure owns what the backward needs (inputs, saved intermediates), and
// backward() frees it once it has run.
//
// An op records itself like this (ops/ and expr/ do it for every differentiable function):
//
//   auto out = forward(a.detach(), b.detach());           // compute without recording views
//   if (needs_grad(a, b))
//       record(out, "matmul", [a, b](const Tensor<T, 2, D>& g) {
//           accumulate_grad(a, matmul(g, b.t()));          // skipped when a needs no gradient
//           accumulate_grad(b, matmul(a.t(), g));
//       }, a, b);
//
// The closure must not capture `out` itself without detach(): the result would own its node
// and its node the result, and neither would ever be freed.
//
// Gradients accumulate: a tensor used twice receives the sum, and a leaf's grad() keeps
// summing over backward() calls until it is cleared (micro-batches add up, as in PyTorch).
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../core/grad_slot.hpp"
#include "../core/tensor.hpp"
#include "../expr/executor.hpp"
#include "../expr/functors.hpp"
#include "../exec/cpu/thread_pool.hpp"
#include "../expr/nodes.hpp"
#include "grad_mode.hpp"
#if WEFT_WITH_CUDA
#include "cuda/view_backward.cuh"
#endif

namespace weft {

namespace autograd {

// A place on the tape, independent of element type and device (what the engine walks).
class Node : public GradSlot {
public:
    Node(const char* name, bool leaf) : name_(name), leaf_(leaf) {}

    bool requires_grad() const override { return true; }
    bool recording() const override { return grad_enabled(); }

    const char* name() const { return name_; }
    bool is_leaf() const { return leaf_; }
    virtual bool has_grad() const = 0;
    virtual void clear_grad() = 0;

    std::vector<std::shared_ptr<Node>> inputs;  // the nodes this node's closure sends gradient to
    std::function<void()> backward_fn;          // null for leaves, and once released
    bool retains_grad = false;                  // a non-leaf whose grad() the user asked to keep
    bool released = false;                      // its closure ran and was freed
    // A leaf's listener: called during backward() once the leaf's gradient of this backward is
    // complete (every node sending it gradient has run). Data-parallel training starts the
    // all-reduce of a gradient bucket from here, while the rest of the backward goes on.
    std::function<void()> grad_ready;

private:
    const char* name_;
    bool leaf_;
};

// The node of a tensor with elements T on device D. Its gradient is stored flat (one dense
// buffer) with the tensor's shape beside it, so one node type serves every rank.
template <Element T, Device D>
class Slot final : public Node {
public:
    Slot(const char* name, bool leaf, const index_t* shape, int rank) : Node(name, leaf), shape_(shape, shape + rank) {}

    bool has_grad() const override { return grad_.defined(); }
    void clear_grad() override {
        grad_ = {};
        owned_ = false;
    }

    const std::vector<index_t>& shape() const { return shape_; }

    // The gradient viewed with the tensor's rank; undefined when none has arrived.
    template <int R>
    Tensor<T, R, D> grad_as() const {
        if (!grad_.defined()) return {};
        Shape<R> s;
        for (int d = 0; d < R; ++d) s[d] = shape_[std::size_t(d)];
        return grad_.reshape(s);
    }

    // The gradient as one dense row (any rank); undefined when none has arrived.
    const Tensor<T, 1, D>& flat_grad() const { return grad_; }

    // Adds g (shaped as the tensor) into the gradient.
    template <int R>
    void accumulate(const Tensor<T, R, D>& g) {
        check_shape(g);
        accumulate_flat(g.detach().contiguous().reshape(g.numel()));
    }

    // As above, for a gradient the caller gives up: when nothing else holds its memory, a leaf
    // adopts it as its gradient instead of copying it (a parameter's first gradient of a step,
    // fresh from its GEMM: copying them took 2% of a ViT-B/16 training step).
    template <int R>
    void accumulate(Tensor<T, R, D>&& g) {
        check_shape(g);
        Tensor<T, 1, D> flat = g.detach().contiguous().reshape(g.numel());
        g = {};
        const bool sole = flat.offset() == 0 && flat.storage().use_count() == 1 &&
                          flat.storage().bytes() == std::size_t(flat.numel()) * sizeof(T);
        if (!grad_.defined() && is_leaf() && sole) {
            grad_ = std::move(flat);
            owned_ = true;
            return;
        }
        accumulate_flat(flat);
    }

    void accumulate_flat(const Tensor<T, 1, D>& g) {
        if (!grad_.defined()) {
            // A leaf's gradient outlives backward and is the user's to modify (clipping scales it
            // in place), so it gets its own buffer. An interior gradient may share: it is read
            // once and freed.
            grad_ = is_leaf() ? g.clone() : g;
            owned_ = is_leaf();
            return;
        }
        if (!owned_) {
            Tensor<T, 1, D> sum = Tensor<T, 1, D>::empty(grad_.shape());
            Executor<D>::assign(sum, make_evaluator(Binary<fn::Add, Tensor<T, 1, D>, Tensor<T, 1, D>>(fn::Add{}, grad_, g),
                                                    sum.shape()));
            grad_ = sum;
            owned_ = true;
            return;
        }
        Executor<D>::assign(grad_, make_evaluator(Binary<fn::Add, Tensor<T, 1, D>, Tensor<T, 1, D>>(fn::Add{}, grad_, g),
                                                  grad_.shape()));
    }

    // Makes `g` ([numel], dense) this leaf's gradient, shared rather than copied: later
    // gradients add into it in place. Mixed precision (optim/master_weights.hpp) hands each fp32
    // master a slice of one buffer that holds all of their gradients, so that one reduction
    // checks them all for inf and NaN.
    void set_flat_grad(Tensor<T, 1, D> g) {
        WEFT_CHECK(is_leaf(), "autograd: set_flat_grad on the result of '", name(), "'; only a leaf's gradient is set");
        index_t n = 1;
        for (const index_t e : shape_) n *= e;
        WEFT_CHECK(g.numel() == n && g.is_contiguous(), "autograd: set_flat_grad got ", g.numel(),
                   " elements (dense: ", g.is_contiguous(), ") for a tensor of ", n, " elements");
        grad_ = std::move(g);
        owned_ = true;
    }

    // Adds the gradient of a view (dense, in the view's element order) into this gradient: the
    // view's element i sits where `to` places it, this tensor where `from` places it.
    void accumulate_view(const Tensor<T, 1, D>& g, const StridedLayout& from, const StridedLayout& to);

    std::shared_ptr<GradSlot> view(const StridedLayout& from, const StridedLayout& to) override;

    // Views made of this view that link past it, straight to its base (see view()). retain_grad()
    // refuses such a view: its gradient would miss theirs.
    int views_linked_past() const { return linked_past_; }

private:
    template <int R>
    void check_shape(const Tensor<T, R, D>& g) const {
        bool same = int(shape_.size()) == R;
        for (int d = 0; same && d < R; ++d) same = g.shape()[d] == shape_[std::size_t(d)];
        WEFT_CHECK(same, "autograd: the backward of '", name(), "' produced a gradient of shape ", g.shape(),
                   " for a tensor of shape ", Shape<R>::from_array(as_array<R>()));
    }

    template <int R>
    std::array<index_t, R> as_array() const {
        std::array<index_t, R> a{};
        for (int d = 0; d < R && d < int(shape_.size()); ++d) a[std::size_t(d)] = shape_[std::size_t(d)];
        return a;
    }

    // Makes grad_ a buffer this node may add to in place (zeros when none has arrived).
    void own_grad() {
        if (!grad_.defined()) {
            index_t n = 1;
            for (const index_t e : shape_) n *= e;
            grad_ = Tensor<T, 1, D>::zeros({n});
        } else if (!owned_) {
            grad_ = grad_.clone();
        }
        owned_ = true;
    }

    std::vector<index_t> shape_;
    Tensor<T, 1, D> grad_;
    bool owned_ = false;  // grad_ is this node's alone, so it may be added to in place
    // For a view's node: the node of the tensor it sends its gradient to, where that tensor sits
    // (view_from_) and where the view sits (view_to_), in one address space. inputs[0] owns it.
    Slot* view_base_ = nullptr;
    StridedLayout view_from_, view_to_;
    int linked_past_ = 0;
};

namespace detail {

// Calls f(position) for every element of a layout, in row-major order of its indices.
template <class F>
void for_each_position(const StridedLayout& l, F&& f) {
    const index_t n = l.numel();
    if (n == 0) return;
    index_t idx[8] = {};
    index_t pos = l.offset;
    for (index_t i = 0; i < n; ++i) {
        f(i, pos);
        for (int d = l.rank - 1; d >= 0; --d) {
            if (++idx[d] < l.shape[d]) {
                pos += l.strides[d];
                break;
            }
            pos -= (l.shape[d] - 1) * l.strides[d];
            idx[d] = 0;
        }
    }
}

inline bool is_dense(const StridedLayout& l) {
    index_t expected = 1;
    for (int d = l.rank - 1; d >= 0; --d) {
        if (l.shape[d] == 1) continue;
        if (l.strides[d] != expected) return false;
        expected *= l.shape[d];
    }
    return true;
}

template <class T>
void add_into(T& dst, T v) {
    dst = convert<T>(convert<compute_t<T>>(dst) + convert<compute_t<T>>(v));
}

// A layout with its size-1 dimensions dropped and its dimensions merged wherever one steps
// through the next as a single stride: two layouts that list the same positions in the same
// order become equal, and a scatter over it gets its longest inner run.
inline StridedLayout merged(const StridedLayout& l) {
    StridedLayout m;
    m.offset = l.offset;
    for (int d = 0; d < l.rank; ++d) {
        if (l.shape[d] == 1) continue;
        if (m.rank > 0 && m.strides[m.rank - 1] == l.strides[d] * l.shape[d]) {
            m.shape[m.rank - 1] *= l.shape[d];
            m.strides[m.rank - 1] = l.strides[d];
            continue;
        }
        m.shape[m.rank] = l.shape[d];
        m.strides[m.rank] = l.strides[d];
        ++m.rank;
    }
    return m;
}

inline bool same_positions(const StridedLayout& a, const StridedLayout& b) {
    const StridedLayout x = merged(a), y = merged(b);
    if (x.numel() != y.numel()) return false;
    if (x.numel() == 0) return true;
    if (x.rank != y.rank || x.offset != y.offset) return false;
    for (int d = 0; d < x.rank; ++d)
        if (x.shape[d] != y.shape[d] || x.strides[d] != y.strides[d]) return false;
    return true;
}

// dst[pos] += src[i] for every element i of `to` at position pos: rows of the innermost dimension
// at a time, and over the cores when the rows do not share positions (no expanded dimension).
template <class T>
void scatter_add(T* dst, const T* src, const StridedLayout& to) {
    const StridedLayout l = merged(to);
    const index_t n = l.numel();
    if (n == 0) return;
    if (l.rank == 0) {
        add_into(dst[l.offset], src[0]);
        return;
    }
    const index_t run = l.shape[l.rank - 1], step = l.strides[l.rank - 1], rows = n / run;
    bool overlapping = false;
    for (int d = 0; d < l.rank; ++d) overlapping = overlapping || l.strides[d] == 0;
    auto add_rows = [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            index_t pos = l.offset, rest = r;
            for (int d = l.rank - 2; d >= 0; --d) {
                pos += (rest % l.shape[d]) * l.strides[d];
                rest /= l.shape[d];
            }
            T* out = dst + pos;
            const T* in = src + r * run;
            if (step == 1) {
                for (index_t j = 0; j < run; ++j) add_into(out[j], in[j]);
            } else {
                for (index_t j = 0; j < run; ++j) add_into(out[j * step], in[j]);
            }
        }
    };
    if (overlapping) add_rows(0, rows);
    else parallel_for(0, rows, std::max<index_t>(1, (index_t(1) << 15) / run), add_rows);
}

// The gradient of a view whose base is strided (not dense), sent back as a dense gradient of the
// base: every element of `to` adds its gradient to the element of `from` at the same position.
// Collects by position over the span the base covers, then reads the base's elements.
template <class T>
Tensor<T, 1, Cpu> strided_view_backward(const Tensor<T, 1, Cpu>& g, const StridedLayout& from,
                                        const StridedLayout& to) {
    auto out = Tensor<T, 1, Cpu>::zeros({from.numel()});
    if (from.numel() == 0) return out;
    index_t hi = from.offset;
    for (int d = 0; d < from.rank; ++d) {
        WEFT_CHECK(from.strides[d] != 0 || from.shape[d] <= 1,
                   "autograd: a view of an expanded tensor cannot send its gradient back (elements share "
                   "memory); make the expanded tensor contiguous() first");
        hi += (from.shape[d] - 1) * from.strides[d];
    }
    std::vector<T> span(std::size_t(hi - from.offset + 1), T(0));
    const T* src = g.data();
    for_each_position(to, [&](index_t i, index_t pos) { add_into(span[std::size_t(pos - from.offset)], src[i]); });
    T* dst = out.data();
    for_each_position(from, [&](index_t i, index_t pos) { dst[i] = span[std::size_t(pos - from.offset)]; });
    return out;
}

#if WEFT_WITH_CUDA
// The same on the GPU (autograd/cuda/view_backward.cuh): the span is a zero-filled device
// buffer, the view's gradient is added into it by position, and the base's elements are read
// out of it with a strided copy.
template <class T>
Tensor<T, 1, Cuda> strided_view_backward(const Tensor<T, 1, Cuda>& g, const StridedLayout& from,
                                         const StridedLayout& to) {
    if (from.numel() == 0) return Tensor<T, 1, Cuda>::zeros({0});
    index_t hi = from.offset;
    for (int d = 0; d < from.rank; ++d) {
        WEFT_CHECK(from.strides[d] != 0 || from.shape[d] <= 1,
                   "autograd: a view of an expanded tensor cannot send its gradient back (elements share "
                   "memory); make the expanded tensor contiguous() first");
        hi += (from.shape[d] - 1) * from.strides[d];
    }
    auto span = Tensor<T, 1, Cuda>::zeros({hi - from.offset + 1});
    cuda::view_scatter_add(span.data(), g.data(), merged(to), from.offset);
    auto out = Tensor<T, 1, Cuda>::empty({from.numel()});  // every element written below
    index_t dense[8] = {};
    index_t step = 1;
    for (int d = from.rank - 1; d >= 0; --d) {
        dense[d] = step;
        step *= from.shape[d];
    }
    // out[i] = span[position of from's element i - from.offset]: span.data() is from.offset.
    Backend<Cuda>::copy_strided(out.data(), dense, span.data(), from.strides, from.shape, from.rank, sizeof(T));
    return out;
}
#endif

}  // namespace detail

// The same three cases on both devices; on CUDA, strided_view_backward's overload and the
// scatter are kernels (autograd/cuda/view_backward.cuh) that add in the CPU's order, so the two
// give the same bits.
template <Element T, Device D>
void Slot<T, D>::accumulate_view(const Tensor<T, 1, D>& g, const StridedLayout& from, const StridedLayout& to) {
    if (detail::same_positions(from, to)) {  // a reshape or a copy: the same elements in the same order
        accumulate_flat(g);
    } else if (!detail::is_dense(from)) {
        accumulate_flat(detail::strided_view_backward(g, from, to));
    } else {  // added in place where the view's elements sit, with no zero-filled copy
        own_grad();
        if constexpr (std::same_as<D, Cpu>) {
            detail::scatter_add(grad_.data() - from.offset, g.data(), to);
        } else {
#if WEFT_WITH_CUDA
            cuda::view_scatter_add(grad_.data(), g.data(), detail::merged(to), from.offset);
#else
            WEFT_FAIL("autograd: the backward of a view of a ", D::name,
                      " tensor needs CUDA: compile this translation unit with nvcc and WEFT_CUDA");
#endif
        }
    }
}

// A view of a view links straight to the first tensor that is not a view (unless the middle one
// retains its gradient): q = qkv.narrow(...).reshape(...).permute(...) sends its gradient into
// qkv's in one scatter, instead of through a zero-filled gradient of every shape in between.
// The link is exact because the middle view sits where the new view's `from` says (its own
// layout), in the address space its own link to the base uses.
template <Element T, Device D>
std::shared_ptr<GradSlot> Slot<T, D>::view(const StridedLayout& from, const StridedLayout& to) {
    if (!grad_enabled()) return nullptr;
    Slot* base = this;
    StridedLayout base_from = from;
    if (view_base_ && !retains_grad && detail::same_positions(from, view_to_)) {
        base = view_base_;
        base_from = view_from_;
        ++linked_past_;
    }
    auto out = std::make_shared<Slot<T, D>>("view", false, to.shape, to.rank);
    out->inputs.push_back(std::static_pointer_cast<Node>(base->shared_from_this()));
    out->view_base_ = base;
    out->view_from_ = base_from;
    out->view_to_ = to;
    out->backward_fn = [self = out.get(), base, base_from, to]() {
        base->accumulate_view(self->flat_grad(), base_from, to);
    };
    return out;
}

template <Element T, int R, Device D>
Slot<T, D>& slot_of(const Tensor<T, R, D>& t) {
    return static_cast<Slot<T, D>&>(*t.grad_slot());
}

}  // namespace autograd

// ---- what ops use to record themselves ----------------------------------------------------------

namespace autograd::detail {
template <class X>
bool requires_grad_of(const X& x) {
    if constexpr (AnyTensor<X>) return x.requires_grad();
    else return false;
}
template <class X>
void push_input(std::vector<std::shared_ptr<Node>>& inputs, const X& x) {
    if constexpr (AnyTensor<X>) {
        if (x.requires_grad()) inputs.push_back(std::static_pointer_cast<Node>(x.grad_slot()));
    }
}
}  // namespace autograd::detail

// Must an op with these inputs record a node? (Grad mode on and some input requires grad.)
// Arguments that are not tensors are ignored, so an op can pass all its arguments.
template <class... X>
bool needs_grad(const X&... inputs) {
    return grad_enabled() && (autograd::detail::requires_grad_of(inputs) || ...);
}

// Attaches a node to `out` whose edges are `inputs`: `backward(grad_out)` runs once the
// gradient of `out` is complete. (record() below collects the edges from an op's arguments.)
template <Element T, int R, Device D, class F>
void record_with_inputs(Tensor<T, R, D>& out, const char* name, F&& backward,
                        std::vector<std::shared_ptr<autograd::Node>> inputs) {
    auto node = std::make_shared<autograd::Slot<T, D>>(name, false, out.shape().dims, R);
    node->inputs = std::move(inputs);
    node->backward_fn = [self = node.get(), f = std::forward<F>(backward)]() {
        if (self->has_grad()) f(self->template grad_as<R>());
    };
    out.set_grad_slot(std::move(node));
}

// Attaches a node to `out`: `backward(grad_out)` runs once the gradient of `out` is complete.
// `inputs` are the op's tensor arguments (others are ignored); those that require grad become
// the node's edges.
template <Element T, int R, Device D, class F, class... X>
void record(Tensor<T, R, D>& out, const char* name, F&& backward, const X&... inputs) {
    static_assert(FloatingElement<T>, "weft: only floating-point results carry gradients");
    std::vector<std::shared_ptr<autograd::Node>> edges;
    (autograd::detail::push_input(edges, inputs), ...);
    record_with_inputs(out, name, std::forward<F>(backward), std::move(edges));
}

// Adds g into the gradient of `input` (inside a backward closure); nothing if it needs none.
template <Element T, int R, Device D>
void accumulate_grad(const Tensor<T, R, D>& input, const Tensor<T, R, D>& g) {
    if (input.requires_grad()) autograd::slot_of(input).accumulate(g);
}
// The same for a gradient the caller gives up (a temporary, or std::move(grads.grad_w)): a
// parameter may then keep its memory instead of a copy.
template <Element T, int R, Device D>
void accumulate_grad(const Tensor<T, R, D>& input, Tensor<T, R, D>&& g) {
    if (input.requires_grad()) autograd::slot_of(input).accumulate(std::move(g));
}

// ---- the Tensor members' implementations (found by argument-dependent lookup) -------------------

template <Element T, int R, Device D>
void autograd_set_requires_grad(Tensor<T, R, D>& t, bool on) {
    static_assert(FloatingElement<T>, "weft: only floating-point tensors can require grad");
    if (t.grad_slot()) {
        WEFT_CHECK(autograd::slot_of(t).is_leaf(), "requires_grad_: this tensor is the result of a recorded op (",
                   autograd::slot_of(t).name(), "); detach() it to make a new leaf");
        if (!on) t.set_grad_slot(nullptr);
        return;
    }
    if (on) t.set_grad_slot(std::make_shared<autograd::Slot<T, D>>("leaf", true, t.shape().dims, R));
}

template <Element T, int R, Device D>
Tensor<T, R, D> autograd_grad(const Tensor<T, R, D>& t) {
    if (!t.grad_slot()) return {};
    auto& s = autograd::slot_of(t);
    return s.template grad_as<R>();
}

template <Element T, int R, Device D>
void autograd_retain_grad(Tensor<T, R, D>& t) {
    WEFT_CHECK(t.requires_grad(), "retain_grad: the tensor does not require grad");
    WEFT_CHECK(autograd::slot_of(t).views_linked_past() == 0, "retain_grad: views of this view of shape ",
               t.shape(), " were taken before, and their gradients go straight to its base; call "
               "retain_grad() before taking views of it");
    autograd::slot_of(t).retains_grad = true;
}

namespace autograd {

// Calls `f` during each backward() once the gradient of the leaf `t` (a parameter) is complete;
// an empty f removes the listener. A leaf the backward does not reach is not called.
template <Element T, int R, Device D>
void on_grad_ready(const Tensor<T, R, D>& t, std::function<void()> f) {
    WEFT_CHECK(t.requires_grad() && slot_of(t).is_leaf(), "autograd::on_grad_ready: the tensor of shape ", t.shape(),
               " must be a leaf that requires grad (a parameter)");
    slot_of(t).grad_ready = std::move(f);
}

// Forgets the accumulated gradient of a tensor (a parameter, before the next step).
template <Element T, int R, Device D>
void clear_grad(const Tensor<T, R, D>& t) {
    if (t.grad_slot()) slot_of(t).clear_grad();
}

// Runs the tape backward from `root`, whose gradient has been seeded.
inline void run_backward(const std::shared_ptr<Node>& root, bool retain_graph) {
    // Reverse post-order of a depth-first walk: every node comes after all nodes that feed
    // gradient into it.
    std::vector<Node*> order;
    std::unordered_set<Node*> seen;
    std::vector<std::pair<Node*, std::size_t>> stack{{root.get(), 0}};
    seen.insert(root.get());
    while (!stack.empty()) {
        auto& [node, next] = stack.back();
        if (next < node->inputs.size()) {
            Node* child = node->inputs[next++].get();
            if (seen.insert(child).second) stack.push_back({child, 0});
            continue;
        }
        order.push_back(node);
        stack.pop_back();
    }
    // Leaves that listen for their gradient: how many nodes still have to send it.
    std::unordered_map<Node*, int> pending;
    for (Node* node : order)
        if (!node->is_leaf())
            for (const auto& in : node->inputs)
                if (in->is_leaf() && in->grad_ready) ++pending[in.get()];
    NoGrad no_grad;  // the backward itself is not recorded
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Node* node = *it;
        if (node->is_leaf()) continue;
        if (node->has_grad()) {
            WEFT_CHECK(!node->released, "backward: the graph through '", node->name(),
                       "' was already freed by an earlier backward(); pass retain_graph = true to the first "
                       "one to run backward twice");
            if (node->backward_fn) node->backward_fn();
        }
        if (!node->retains_grad) node->clear_grad();
        if (!retain_graph) {
            node->backward_fn = nullptr;  // frees what the closure saved
            node->released = true;
        }
        if (!pending.empty())
            for (const auto& in : node->inputs) {
                const auto p = pending.find(in.get());
                if (p != pending.end() && --p->second == 0) in->grad_ready();
            }
    }
}

}  // namespace autograd

template <Element T, int R, Device D>
void autograd_backward(const Tensor<T, R, D>& root, const Tensor<T, R, D>& seed, bool retain_graph) {
    WEFT_CHECK(root.requires_grad(), "backward: this tensor does not require grad: no input of its "
               "computation requires grad, or it was computed under NoGrad");
    Tensor<T, R, D> s = seed;
    if (!s.defined()) {
        WEFT_CHECK(root.numel() == 1, "backward() needs a one-element tensor (a loss); this one has shape ",
                   root.shape(), ". Pass the gradient of the output: backward(seed)");
        s = Tensor<T, R, D>::ones(root.shape());
    }
    WEFT_CHECK(s.shape() == root.shape(), "backward: the seed's shape ", s.shape(), " differs from the tensor's ",
               root.shape());
    {
        NoGrad no_grad;
        autograd::slot_of(root).accumulate(s.detach());
    }
    autograd::run_backward(std::static_pointer_cast<autograd::Node>(root.grad_slot()), retain_graph);
}

}  // namespace weft
