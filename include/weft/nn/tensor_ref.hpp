// weft/nn/tensor_ref.hpp: a module's tensor seen without its rank.
//
// A Linear's weight is a Tensor<float, 2> and its bias a Tensor<float, 1>; the code that walks
// all parameters (optimizers, state_dict, checkpoints, gradient clipping, all-reduce) needs
// neither rank. A TensorRef refers to the member tensor itself (so it sees the module's tensor
// even after the module rebinds it) and offers what that code needs: shape, the elements as
// one dense row, the gradient as one dense row, requires_grad.
//
//   TensorRef<float> w = linear.weight;        // refers to the member
//   auto p = w.flat();                         // [numel] view: writes land in the weight
//   auto g = w.grad_flat();                    // [numel] view of the accumulated gradient
//   auto& typed = w.get<2>();                  // back to Tensor<float, 2>& (rank checked)
#pragma once

#include <string>
#include <vector>

#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"

namespace weft {

template <Element T, Device D = Cpu>
class TensorRef {
public:
    TensorRef() = default;
    template <int R>
    TensorRef(Tensor<T, R, D>& t) : ptr_(&t), rank_(R) {}  // NOLINT: implicit by design

    bool valid() const { return ptr_ != nullptr; }
    // The referenced Tensor object (identity: two refs to one member compare equal).
    const void* address() const { return ptr_; }
    int rank() const { return rank_; }
    bool defined() const {
        return visit([](const auto& t) { return t.defined(); });
    }
    std::vector<index_t> shape() const {
        return visit([](const auto& t) {
            return std::vector<index_t>(t.shape().dims, t.shape().dims + std::remove_cvref_t<decltype(t)>::rank);
        });
    }
    index_t numel() const {
        return visit([](const auto& t) { return t.numel(); });
    }
    std::string shape_string() const {
        std::string s = "[";
        const auto sh = shape();
        for (std::size_t i = 0; i < sh.size(); ++i) s += (i ? ", " : "") + std::to_string(sh[i]);
        return s + "]";
    }

    // The tensor with its rank; throws if R is not its rank.
    template <int R>
    Tensor<T, R, D>& get() const {
        WEFT_CHECK(ptr_ && rank_ == R, "TensorRef: asked for rank ", R, ", the tensor has rank ", rank_);
        return *static_cast<Tensor<T, R, D>*>(ptr_);
    }

    // The elements as one dense row, sharing memory with the tensor (which must be dense) and
    // detached from autograd: writing into it (an optimizer step) is not recorded.
    Tensor<T, 1, D> flat() const {
        return visit([](const auto& t) -> Tensor<T, 1, D> {
            WEFT_CHECK(t.is_contiguous(), "TensorRef::flat: the tensor of shape ", t.shape(),
                       " is not dense; module tensors are allocated dense");
            return t.detach().reshape(t.numel());
        });
    }

    // The accumulated gradient as one dense row (shared: scaling it in place scales the
    // gradient); undefined when backward has not reached the tensor.
    Tensor<T, 1, D> grad_flat() const {
        return visit([](const auto& t) -> Tensor<T, 1, D> {
            if (!t.grad_slot()) return {};
            return autograd::slot_of(t).flat_grad();
        });
    }

    bool requires_grad() const {
        return visit([](const auto& t) { return t.requires_grad(); });
    }
    void requires_grad_(bool on) const {
        visit([on](auto& t) { t.requires_grad_(on); });
    }
    void clear_grad() const {
        visit([](const auto& t) { autograd::clear_grad(t); });
    }

    // Calls f(Tensor<T, R, D>&) with the tensor at its rank.
    template <class F>
    decltype(auto) visit(F&& f) const {
        WEFT_CHECK(ptr_, "TensorRef: empty reference");
        switch (rank_) {
            case 0: return f(*static_cast<Tensor<T, 0, D>*>(ptr_));
            case 1: return f(*static_cast<Tensor<T, 1, D>*>(ptr_));
            case 2: return f(*static_cast<Tensor<T, 2, D>*>(ptr_));
            case 3: return f(*static_cast<Tensor<T, 3, D>*>(ptr_));
            case 4: return f(*static_cast<Tensor<T, 4, D>*>(ptr_));
            case 5: return f(*static_cast<Tensor<T, 5, D>*>(ptr_));
            case 6: return f(*static_cast<Tensor<T, 6, D>*>(ptr_));
            case 7: return f(*static_cast<Tensor<T, 7, D>*>(ptr_));
            default: return f(*static_cast<Tensor<T, 8, D>*>(ptr_));
        }
    }

private:
    void* ptr_ = nullptr;
    int rank_ = 0;
};

// A tensor with its dotted name in a module tree ("backbone.layer1.0.conv1.weight").
template <Element T, Device D = Cpu>
struct NamedTensor {
    std::string name;
    TensorRef<T, D> tensor;
};

}  // namespace weft
