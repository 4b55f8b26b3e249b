// weft/core/tensor.hpp: `Tensor<T, Rank, Device>`, a typed, strided view over shared storage.
//
//   auto x = Tensor<float, 2>::randn({3, 4});     // [3, 4]
//   auto y = x.transpose(0, 1);                   // [4, 3], a view: no copy
//   auto z = y.contiguous();                      // dense copy, row-major
//   x(1, 2) = 5.0f;                               // element access (CPU)
//
// Element type, rank and device are part of the type: a rank-3 tensor does not bind where a
// matrix is needed, and a CUDA tensor does not mix with a CPU one. Extents are run-time values;
// a mismatch throws `weft::Error` naming the shapes.
//
// Copy and move are handle operations, as with std::shared_ptr and torch::Tensor: `a = b`
// makes `a` refer to `b`'s elements. Assigning an *expression* (`a = b * 2`, `a = 0.0f`, see
// <weft/expr.hpp>) writes elements into `a`'s existing view instead, or allocates `a` if it is
// still empty.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstring>
#include <initializer_list>
#include <ostream>
#include <type_traits>
#include <vector>

#include "backend.hpp"
#include "config.hpp"
#include "device.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "grad_slot.hpp"
#include "philox.hpp"
#include "shape.hpp"
#include "storage.hpp"

namespace weft {

template <Element T, int Rank, Device D = Cpu>
class Tensor;

namespace detail {

template <class T, int Rank>
struct nested_list {
    using type = std::initializer_list<typename nested_list<T, Rank - 1>::type>;
};
template <class T>
struct nested_list<T, 0> {
    using type = T;
};

// Anything that the expression layer can evaluate into a tensor: it says so with this tag.
template <class E>
concept Evaluable = requires { typename E::weft_expression_tag; };

template <class X>
struct is_tensor : std::false_type {};
template <Element T, int R, Device D>
struct is_tensor<Tensor<T, R, D>> : std::true_type {};

}  // namespace detail

template <class X>
concept AnyTensor = detail::is_tensor<std::remove_cvref_t<X>>::value;

template <class T, int Rank>
using nested_list_t = typename detail::nested_list<T, Rank>::type;

template <Element T, int Rank, Device D>
class Tensor {
    static_assert(Rank >= 0 && Rank <= 8, "weft: tensors have rank 0 to 8");

public:
    using value_type = T;
    using device_type = D;
    static constexpr int rank = Rank;
    using weft_expression_tag = void;  // a tensor is the simplest expression

    // An empty handle: no storage, every extent 0. Assigning an expression allocates it.
    Tensor() = default;

    Tensor(const Tensor&) = default;
    Tensor(Tensor&&) noexcept = default;
    // Handle assignment (see above), for named tensors only...
    Tensor& operator=(const Tensor&) & = default;
    Tensor& operator=(Tensor&&) & noexcept = default;
    // ...because on a temporary view, `y.slice(0, 0, 2) = z` would rebind a handle that dies at
    // the semicolon and silently write nothing. There it copies z's elements into the view, with
    // broadcasting and the aliasing check of an expression (as libtorch does).
    Tensor& operator=(const Tensor& src) && {
        assign_expression(*this, src);
        return *this;
    }

    // Evaluates an expression into a new dense tensor: `Tensor<float, 2> y = a * b + c;`
    template <detail::Evaluable E>
        requires(!std::same_as<std::remove_cvref_t<E>, Tensor>)
    Tensor(const E& expr) {
        assign_expression(*this, expr);
    }

    // Writes an expression's elements into this view (or allocates, if empty). See expr/.
    template <class E>
        requires(!std::same_as<std::remove_cvref_t<E>, Tensor> &&
                 (detail::Evaluable<E> || std::is_arithmetic_v<E> || std::same_as<E, bf16> ||
                  std::same_as<E, half>))
    Tensor& operator=(const E& expr) {
        assign_expression(*this, expr);
        return *this;
    }

    // ---- factories ---------------------------------------------------------------------------

    static Tensor empty(const Shape<Rank>& shape) {
        for (int i = 0; i < Rank; ++i)
            WEFT_CHECK(shape[i] >= 0, "negative extent in shape ", shape);
        Tensor t;
        t.shape_ = shape;
        t.strides_ = contiguous_strides(shape);
        t.storage_ = Storage<D>::allocate(std::size_t(shape.numel()) * sizeof(T));
        return t;
    }

    template <class F>
    static Tensor generate(const Shape<Rank>& shape, F f) {
        Tensor t = empty(shape);
        Backend<D>::generate(t.data(), t.numel(), f);
        return t;
    }

    static Tensor full(const Shape<Rank>& shape, T value) {
        return generate(shape, Fill{value});
    }
    static Tensor zeros(const Shape<Rank>& shape) { return full(shape, T(0)); }
    static Tensor ones(const Shape<Rank>& shape) { return full(shape, T(1)); }

    // [start, stop) in steps of `step`, like numpy.arange.
    static Tensor arange(double start, double stop, double step = 1)
        requires(Rank == 1)
    {
        WEFT_CHECK(step != 0, "arange: step must not be zero");
        const double span = (stop - start) / step;
        const index_t n = span > 0 ? index_t(std::ceil(span)) : 0;
        return generate(Shape<1>{n}, Arange{start, step});
    }
    static Tensor arange(index_t stop)
        requires(Rank == 1)
    {
        return arange(0.0, double(stop), 1.0);
    }

    static Tensor rand(const Shape<Rank>& shape, Generator& gen = default_generator())
        requires FloatingElement<T>
    {
        using C = std::conditional_t<std::same_as<T, double>, double, float>;
        using U = random::Uniform<C>;
        const std::uint64_t base = gen.advance(U::blocks(std::uint64_t(shape.numel())));
        if constexpr (std::same_as<T, bf16> || std::same_as<T, half>)
            return generate(shape, RoundedDown<U>{U{gen.seed, base, C(0), C(1)}});
        else
            return generate(shape, Converted<U>{U{gen.seed, base, C(0), C(1)}});
    }

    static Tensor randn(const Shape<Rank>& shape, Generator& gen = default_generator())
        requires FloatingElement<T>
    {
        using C = std::conditional_t<std::same_as<T, double>, double, float>;
        using N = random::Normal<C>;
        const std::uint64_t base = gen.advance(N::blocks(std::uint64_t(shape.numel())));
        return generate(shape, Converted<N>{N{gen.seed, base, C(0), C(1)}});
    }

    // Uniform integers in [low, high).
    static Tensor randint(std::int64_t low, std::int64_t high, const Shape<Rank>& shape,
                          Generator& gen = default_generator())
        requires IntegralElement<T>
    {
        WEFT_CHECK(low < high, "randint: empty range [", low, ", ", high, ")");
        using R = random::RandInt<T>;
        const std::uint64_t base = gen.advance(R::blocks(std::uint64_t(shape.numel())));
        return generate(shape, R{gen.seed, base, low, high});
    }

    // Copies host values into a new tensor of the given shape.
    static Tensor from_vector(const std::vector<T>& values, const Shape<Rank>& shape) {
        WEFT_CHECK(index_t(values.size()) == shape.numel(), "from_vector: ", values.size(),
                   " values do not fill shape ", shape, " (", shape.numel(), " elements)");
        auto host = Tensor<T, Rank, Cpu>::empty(shape);
        if constexpr (std::same_as<T, bool>) {
            for (std::size_t i = 0; i < values.size(); ++i) host.data()[i] = values[i];
        } else {
            std::memcpy(host.data(), values.data(), values.size() * sizeof(T));
        }
        return host.template to<D>();
    }

    // Tensor<float, 2>::from({{1, 2, 3}, {4, 5, 6}}): shape [2, 3], taken from the nesting.
    static Tensor from(nested_list_t<T, Rank> values)
        requires(Rank > 0)
    {
        Shape<Rank> shape;
        infer_shape<0>(values, shape);
        std::vector<T> flat;
        flat.reserve(std::size_t(shape.numel()));
        flatten_into<0>(values, shape, flat);
        return from_vector(flat, shape);
    }

    // A view of memory weft does not own. `owner`, if given, is kept alive by the view;
    // otherwise the caller keeps `data` alive for as long as the tensor is used.
    static Tensor wrap(T* data, const Shape<Rank>& shape, const Shape<Rank>& strides,
                       std::shared_ptr<void> owner = {}) {
        Tensor t;
        t.shape_ = shape;
        t.strides_ = strides;
        index_t hi = 0;
        for (int i = 0; i < Rank; ++i)
            if (shape[i] > 0) hi += (shape[i] - 1) * strides[i];
        t.storage_ = Storage<D>::borrow(data, std::size_t(hi + 1) * sizeof(T), std::move(owner));
        return t;
    }
    static Tensor wrap(T* data, const Shape<Rank>& shape, std::shared_ptr<void> owner = {}) {
        return wrap(data, shape, contiguous_strides(shape), std::move(owner));
    }

    // ---- inspection --------------------------------------------------------------------------

    const Shape<Rank>& shape() const { return shape_; }
    const Shape<Rank>& strides() const { return strides_; }
    index_t size(int axis) const { return shape_.at(axis); }
    index_t stride(int axis) const { return strides_.at(axis); }
    index_t offset() const { return offset_; }
    index_t numel() const { return shape_.numel(); }
    static constexpr DType dtype() { return dtype_of<T>; }
    // False only for a default-constructed handle.
    bool defined() const { return storage_.defined(); }
    const Storage<D>& storage() const { return storage_; }

    T* data() const { return static_cast<T*>(storage_.data()) + offset_; }

    bool is_contiguous() const {
        index_t expected = 1;
        for (int i = Rank - 1; i >= 0; --i) {
            if (shape_[i] == 1) continue;
            if (strides_[i] != expected) return false;
            expected *= shape_[i];
        }
        return true;
    }

    // ---- element access (CPU) ----------------------------------------------------------------

    template <class... I>
        requires(sizeof...(I) == Rank && (std::is_integral_v<I> && ...))
    T& operator()(I... idx) const {
        static_assert(std::same_as<D, Cpu>,
                      "weft: element access reads host memory; copy a CUDA tensor with .to<Cpu>() first");
        const index_t ix[] = {index_t(idx)..., 0};
        index_t off = 0;
        for (int i = 0; i < Rank; ++i) {
            WEFT_CHECK(ix[i] >= 0 && ix[i] < shape_[i], "index ", ix[i], " is out of range for axis ", i,
                       " of shape ", shape_);
            off += ix[i] * strides_[i];
        }
        return data()[off];
    }

    // The single value of a rank-0 tensor (or any one-element tensor), copied to the host.
    T item() const {
        WEFT_CHECK(numel() == 1, "item() needs exactly one element, shape is ", shape_);
        if constexpr (std::same_as<D, Cpu>) return data()[0];
        else return to<Cpu>().data()[0];
    }

    // ---- views: no copies ---------------------------------------------------------------------

    // Python slicing along one axis: [start, stop) with step > 0; negative bounds count from the end.
    Tensor slice(int axis, index_t start, index_t stop, index_t step = 1) const
        requires(Rank > 0)
    {
        const int a = Shape<Rank>::normalize_axis(axis);
        WEFT_CHECK(step > 0, "slice: step must be positive, got ", step);
        const index_t n = shape_[a];
        auto clamp = [n](index_t v) { return std::clamp(v < 0 ? v + n : v, index_t(0), n); };
        start = clamp(start);
        stop = std::max(clamp(stop), start);
        Tensor t = *this;
        t.offset_ += start * strides_[a];
        t.shape_[a] = (stop - start + step - 1) / step;
        t.strides_[a] *= step;
        return linked_view(t);
    }

    Tensor narrow(int axis, index_t start, index_t length) const
        requires(Rank > 0)
    {
        const int a = Shape<Rank>::normalize_axis(axis);
        WEFT_CHECK(start >= 0 && length >= 0 && start + length <= shape_[a], "narrow: [", start, ", ",
                   start + length, ") is outside axis ", a, " of shape ", shape_);
        return slice(a, start, start + length);
    }

    // Drops an axis by picking one index along it: [A, B, C].select(1, i) -> [A, C].
    Tensor<T, Rank - 1, D> select(int axis, index_t index) const
        requires(Rank > 0)
    {
        const int a = Shape<Rank>::normalize_axis(axis);
        const index_t n = shape_[a];
        const index_t i = index < 0 ? index + n : index;
        WEFT_CHECK(i >= 0 && i < n, "select: index ", index, " is out of range for axis ", a, " of shape ",
                   shape_);
        Tensor<T, Rank - 1, D> t;
        t.storage_ = storage_;
        t.offset_ = offset_ + i * strides_[a];
        for (int k = 0, j = 0; k < Rank; ++k) {
            if (k == a) continue;
            t.shape_[j] = shape_[k];
            t.strides_[j] = strides_[k];
            ++j;
        }
        return linked_view(t);
    }

    Tensor<T, Rank - 1, D> operator[](index_t index) const
        requires(Rank > 0)
    {
        return select(0, index);
    }

    // permute(2, 0, 1): axis k of the result is axis order[k] of this tensor.
    template <class... I>
        requires(sizeof...(I) == Rank && (std::is_integral_v<I> && ...))
    Tensor permute(I... order) const {
        const int ord[] = {int(order)..., 0};
        bool seen[Rank > 0 ? Rank : 1] = {};
        Tensor t = *this;
        for (int k = 0; k < Rank; ++k) {
            const int a = Shape<Rank>::normalize_axis(ord[k]);
            WEFT_CHECK(!seen[a], "permute: axis ", a, " appears twice");
            seen[a] = true;
            t.shape_[k] = shape_[a];
            t.strides_[k] = strides_[a];
        }
        return linked_view(t);
    }

    Tensor transpose(int axis0, int axis1) const {
        const int a = Shape<Rank>::normalize_axis(axis0), b = Shape<Rank>::normalize_axis(axis1);
        Tensor t = *this;
        std::swap(t.shape_[a], t.shape_[b]);
        std::swap(t.strides_[a], t.strides_[b]);
        return linked_view(t);
    }

    // The transpose of a matrix.
    Tensor t() const {
        static_assert(Rank == 2,
                      "weft: t() transposes a matrix (rank 2); for other ranks use transpose(axis0, axis1) or permute(...)");
        return transpose(0, 1);
    }

    // Reinterprets the elements with a new shape without copying; one extent may be -1.
    // Throws if the strides cannot express it (then use reshape, which copies).
    template <class... I>
        requires((std::is_integral_v<I> && ...))
    Tensor<T, int(sizeof...(I)), D> view(I... extents) const {
        constexpr int N = int(sizeof...(I));
        auto shape = infer_extents<N>({index_t(extents)...});
        Shape<N> strides;
        WEFT_CHECK(view_strides(shape, strides), "view: a tensor of shape ", shape_, " and strides ",
                   strides_, " cannot be viewed as ", shape, " without a copy; use reshape()");
        return restrided(shape, strides);
    }

    // Like view, but copies into a dense tensor when the strides do not allow a view.
    template <class... I>
        requires((std::is_integral_v<I> && ...))
    Tensor<T, int(sizeof...(I)), D> reshape(I... extents) const {
        constexpr int N = int(sizeof...(I));
        auto shape = infer_extents<N>({index_t(extents)...});
        Shape<N> strides;
        if (view_strides(shape, strides)) return restrided(shape, strides);
        return contiguous().template reshape_contiguous<N>(shape);
    }

    template <int N>
    Tensor<T, N, D> reshape(const Shape<N>& shape) const {
        return reshape_impl(shape, std::make_integer_sequence<int, N>{});
    }

    Tensor<T, 1, D> flatten() const { return reshape(-1); }

    // Broadcasts size-1 axes (and new leading axes) to larger extents with stride 0; -1 keeps
    // an extent. expand(4, -1, 3) on a [1, 3] tensor gives [4, 1->?]: see docs/tensors.md.
    template <class... I>
        requires((std::is_integral_v<I> && ...))
    Tensor<T, int(sizeof...(I)), D> expand(I... extents) const {
        constexpr int N = int(sizeof...(I));
        static_assert(N >= Rank, "weft: expand cannot lower the rank; use select() or squeeze()");
        const index_t want[] = {index_t(extents)...};
        constexpr int lead = N - Rank;  // new leading axes, broadcast with stride 0
        Shape<N> shape, strides;
        for (int k = 0; k < lead; ++k) {
            WEFT_CHECK(want[k] >= 0, "expand: new leading axis ", k, " needs an extent, got ", want[k]);
            shape[k] = want[k];
            strides[k] = 0;
        }
        for (int src = 0; src < Rank; ++src) {
            const int k = src + lead;
            const index_t have = shape_[src];
            const index_t w = want[k] == -1 ? have : want[k];
            WEFT_CHECK(w == have || have == 1, "expand: shape ", shape_, " cannot expand to ",
                       Shape<N>::from_array(want), ": extent ", want[k], " at axis ", k);
            shape[k] = w;
            strides[k] = (w == have) ? strides_[src] : 0;
        }
        return restrided(shape, strides);
    }

    Tensor<T, Rank - 1, D> squeeze(int axis) const
        requires(Rank > 0)
    {
        const int a = Shape<Rank>::normalize_axis(axis);
        WEFT_CHECK(shape_[a] == 1, "squeeze: axis ", a, " of shape ", shape_, " has extent ", shape_[a],
                   ", not 1");
        return select(a, 0);
    }

    Tensor<T, Rank + 1, D> unsqueeze(int axis) const {
        const int a = axis < 0 ? axis + Rank + 1 : axis;
        WEFT_CHECK(a >= 0 && a <= Rank, "unsqueeze: axis ", axis, " is out of range for rank ", Rank);
        Shape<Rank + 1> shape, strides;
        for (int k = 0, j = 0; k <= Rank; ++k) {
            if (k == a) {
                shape[k] = 1;
                strides[k] = (a < Rank) ? strides_[a] * shape_[a] : 1;
                continue;
            }
            shape[k] = shape_[j];
            strides[k] = strides_[j];
            ++j;
        }
        return restrided(shape, strides);
    }

    // ---- copies --------------------------------------------------------------------------------

    // This tensor if it is already dense and row-major, else a dense copy.
    Tensor contiguous() const { return is_contiguous() ? *this : clone(); }

    // A dense copy that shares nothing with this tensor.
    Tensor clone() const {
        Tensor out = empty(shape_);
        Backend<D>::copy_strided(out.data(), out.strides_.dims, data(), strides_.dims, shape_.dims, Rank,
                                 sizeof(T));
        if (grad_slot_) {  // a copy is a view of the same logical elements, for the gradient
            const StridedLayout dense = out.layout();
            out.grad_slot_ = grad_slot_->view(dense, dense);
        }
        return out;
    }

    // A dense copy on another device: x.to<Cuda>(), y.to<Cpu>().
    template <Device To>
    Tensor<T, Rank, To> to() const {
        if constexpr (std::same_as<To, D>) {
            return *this;
        } else {
            WEFT_CHECK(!recording(), "to<", To::name, ">(): moving a tensor that requires grad between devices is "
                       "not differentiable; move it first and call requires_grad_() on the moved tensor, or "
                       "detach() it");
            const Tensor dense = detach().contiguous();
            auto out = Tensor<T, Rank, To>::empty(shape_);
            using GpuSide = std::conditional_t<std::same_as<To, Cpu>, D, To>;  // the CUDA end does the copy
            Backend<GpuSide>::copy_between(out.data(), To{}, dense.data(), D{}, std::size_t(numel()) * sizeof(T));
            return out;
        }
    }

    // Copies a same-shaped tensor's elements into this view, whatever either's strides.
    void copy_from(const Tensor& src) const {
        WEFT_CHECK(src.shape_ == shape_, "copy_from: shapes ", src.shape_, " and ", shape_, " differ");
        WEFT_CHECK(!src.recording(), "copy_from: the source requires grad and copy_from is not differentiable; "
                   "assign an expression to a new tensor (auto y = eval(x)), or detach() the source");
        Backend<D>::copy_strided(data(), strides_.dims, src.data(), src.strides_.dims, shape_.dims, Rank,
                                 sizeof(T));
    }

    // ---- autograd (the tape lives in weft/autograd/; see docs/autograd.md) ------------------

    // Does gradient flow into this tensor: a leaf marked with requires_grad_(), or a result
    // computed from one while grad mode was on?
    bool requires_grad() const { return grad_slot_ && grad_slot_->requires_grad(); }
    // ...and would an op on it be recorded now (grad mode on)?
    bool recording() const { return grad_slot_ && grad_slot_->recording(); }
    // The same elements, cut loose from the tape: nothing computed from it is differentiated.
    Tensor detach() const {
        Tensor t = *this;
        t.grad_slot_.reset();
        return t;
    }
    // Makes this tensor a leaf whose gradient backward() accumulates into grad().
    Tensor& requires_grad_(bool on = true) {
        autograd_set_requires_grad(*this, on);
        return *this;
    }
    // The accumulated gradient of a leaf (undefined before the first backward reaches it).
    Tensor grad() const { return autograd_grad(*this); }
    // Back-propagates from this one-element tensor (usually the loss).
    void backward(bool retain_graph = false) const { autograd_backward(*this, Tensor(), retain_graph); }
    // Back-propagates `seed` (shaped as this tensor): the gradient of sum(seed * this).
    void backward(const Tensor& seed, bool retain_graph = false) const {
        autograd_backward(*this, seed, retain_graph);
    }
    // Keeps the gradient of this non-leaf tensor after backward, readable with grad().
    Tensor& retain_grad() {
        autograd_retain_grad(*this);
        return *this;
    }

    // For the tape and the ops: this tensor's slot (null when it takes no part in autograd).
    const std::shared_ptr<GradSlot>& grad_slot() const { return grad_slot_; }
    void set_grad_slot(std::shared_ptr<GradSlot> slot) { grad_slot_ = std::move(slot); }
    StridedLayout layout() const {
        StridedLayout l;
        l.rank = Rank;
        for (int d = 0; d < Rank; ++d) {
            l.shape[d] = shape_[d];
            l.strides[d] = strides_[d];
        }
        l.offset = offset_;
        return l;
    }

    // The functors factories pass to Backend<D>::generate. Public only because nvcc rejects a
    // private or protected nested type as a template argument of a __global__ function (the
    // CUDA generate kernel); not part of the API.
    struct Fill {
        T value;
        WEFT_HD T operator()(index_t) const { return value; }
    };
    struct Arange {
        double start, step;
        WEFT_HD T operator()(index_t i) const { return convert<T>(start + double(i) * step); }
    };
    template <class F>
    struct Converted {
        F f;
        WEFT_HD T operator()(index_t i) const { return convert<T>(f(i)); }
    };
    // A float in [0, 1) rounded to nearest 16-bit float can become 1.0 (1 in 512 for bf16), so
    // rand rounds down onto T's grid instead: [0, 1) stays half-open. For f(i) >= 0 only.
    template <class F>
    struct RoundedDown {
        F f;
        WEFT_HD T operator()(index_t i) const {
            const float u = f(i);
            T v = convert<T>(u);
            if (float(v) > u) v = T::from_bits(std::uint16_t(v.bits - 1u));  // the next value down
            return v;
        }
    };

private:
    template <Element, int, Device>
    friend class Tensor;

    template <int N>
    Tensor<T, N, D> restrided(const Shape<N>& shape, const Shape<N>& strides) const {
        Tensor<T, N, D> t;
        t.storage_ = storage_;
        t.offset_ = offset_;
        t.shape_ = shape;
        t.strides_ = strides;
        return linked_view(t);
    }

    // A view made from this tensor joins the tape when this tensor is on it.
    template <int N>
    Tensor<T, N, D> linked_view(Tensor<T, N, D>& view) const {
        view.grad_slot_ = grad_slot_ ? grad_slot_->view(layout(), view.layout()) : nullptr;
        return view;
    }

    template <int N>
    Tensor<T, N, D> reshape_contiguous(const Shape<N>& shape) const {
        return restrided(shape, contiguous_strides(shape));
    }

    template <int N, int... K>
    Tensor<T, N, D> reshape_impl(const Shape<N>& shape, std::integer_sequence<int, K...>) const {
        return reshape(shape[K]...);
    }

    template <int N>
    Shape<N> infer_extents(std::array<index_t, N> want) const {
        Shape<N> shape;
        int infer = -1;
        index_t known = 1;
        for (int k = 0; k < N; ++k) {
            if (want[k] == -1) {
                WEFT_CHECK(infer < 0, "reshape: only one extent may be -1, got ", Shape<N>::from_array(want));
                infer = k;
                continue;
            }
            WEFT_CHECK(want[k] >= 0, "reshape: negative extent in ", Shape<N>::from_array(want));
            shape[k] = want[k];
            known *= want[k];
        }
        if (infer >= 0) {
            WEFT_CHECK(known > 0 && numel() % known == 0, "reshape: cannot infer -1 turning shape ", shape_,
                       " into ", Shape<N>::from_array(want));
            shape[infer] = numel() / known;
        }
        WEFT_CHECK(shape.numel() == numel(), "reshape: shape ", shape_, " (", numel(),
                   " elements) cannot become ", shape, " (", shape.numel(), " elements)");
        return shape;
    }

    // Strides that let `shape` view this tensor's elements in row-major order, if any exist.
    // The old axes (size-1 axes aside) fall into chunks inside which elements are evenly spaced;
    // a view exists when, right to left, runs of new axes cover each chunk exactly.
    template <int N>
    bool view_strides(const Shape<N>& shape, Shape<N>& out) const {
        if (numel() == 0) {
            out = contiguous_strides(shape);
            return true;
        }
        struct Chunk {
            index_t numel, step;
        };
        Chunk chunks[Rank > 0 ? Rank : 1];
        int n_chunks = 0;
        for (int d = Rank - 1; d >= 0; --d) {
            if (shape_[d] == 1) continue;
            Chunk* last = n_chunks ? &chunks[n_chunks - 1] : nullptr;
            if (last && strides_[d] == last->step * last->numel) last->numel *= shape_[d];
            else chunks[n_chunks++] = {shape_[d], strides_[d]};
        }
        int k = N - 1;
        for (int c = 0; c < n_chunks; ++c) {
            index_t covered = 1;
            while (covered < chunks[c].numel) {
                if (k < 0) return false;
                out[k] = chunks[c].step * covered;
                covered *= shape[k];
                --k;
            }
            if (covered != chunks[c].numel) return false;
        }
        for (; k >= 0; --k) out[k] = (k + 1 < N) ? out[k + 1] * shape[k + 1] : 1;  // leftover size-1 axes
        return true;
    }

    template <int Level>
    static void infer_shape(const nested_list_t<T, Rank - Level>& values, Shape<Rank>& shape) {
        shape[Level] = index_t(values.size());
        if constexpr (Level + 1 < Rank) {
            if (values.size() > 0) infer_shape<Level + 1>(*values.begin(), shape);
        }
    }

    template <int Level>
    static void flatten_into(const nested_list_t<T, Rank - Level>& values, const Shape<Rank>& shape,
                             std::vector<T>& flat) {
        WEFT_CHECK(index_t(values.size()) == shape[Level], "from: ragged nested list: axis ", Level,
                   " has rows of length ", shape[Level], " and ", values.size());
        if constexpr (Level + 1 == Rank) {
            for (const T& v : values) flat.push_back(v);
        } else {
            for (const auto& row : values) flatten_into<Level + 1>(row, shape, flat);
        }
    }

    Storage<D> storage_;
    Shape<Rank> shape_;
    Shape<Rank> strides_;
    index_t offset_ = 0;
    std::shared_ptr<GradSlot> grad_slot_;
};

}  // namespace weft
