// weft/nn/module.hpp: `Module`, the base of every layer: named parameters, buffers, children.
//
//   template <Element T = float, Device D = Cpu>
//   class Block : public nn::Module<T, D> {
//   public:
//       nn::Linear<T, D> fc{16, 16};
//       Tensor<T, 1, D> scale = Tensor<T, 1, D>::ones({16});
//       Block() {
//           this->register_module("fc", fc);              // "fc.weight", "fc.bias"
//           this->register_parameter("scale", scale);     // requires_grad_() is set here
//       }
//       Tensor<T, 2, D> forward(const Tensor<T, 2, D>& x) const { return fc(x) * scale; }
//   };
//
// A module does not own what it registers: it keeps references to its members, so that the
// names it reports always reach the tensors the layer uses. That is why a Module can be neither
// copied nor moved (a copy would refer to the original's members); build it in place, or hold it
// by std::unique_ptr (Sequential and ModuleList do).
//
// Names are PyTorch's: a child's tensors are prefixed with the child's name and a dot, so a
// checkpoint written by torch (`layers.0.self_attn.in_proj_weight`) loads by name lookup. The
// order is PyTorch's too: a module's own parameters, then its own buffers, then each child in
// registration order (state_dict); parameters alone in the same walk (named_parameters).
//
// Buffers are tensors of the module's element type T (running statistics, fixed tables). An
// integer buffer such as BatchNorm's num_batches_tracked is kept in T as well: exact up to 2^24
// in float, and load_state converts a file's int64 into T.
#pragma once

#include <algorithm>
#include <concepts>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../autograd/tape.hpp"
#include "../core/tensor.hpp"
#include "state_dict.hpp"
#include "tensor_ref.hpp"

namespace weft::nn {

template <Element T = float, Device D = Cpu>
class Module {
public:
    using value_type = T;
    using device_type = D;

    Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    Module(Module&&) = delete;
    Module& operator=(Module&&) = delete;
    virtual ~Module() = default;

    // ---- registration: `member` must outlive the module (it is normally a data member) --------

    // A trainable tensor: made a leaf that requires grad. Returns `member`.
    template <int R>
    Tensor<T, R, D>& register_parameter(const std::string& name, Tensor<T, R, D>& member) {
        check_new_name(name, "register_parameter");
        WEFT_CHECK(member.defined(), "register_parameter: the tensor '", name,
                   "' is undefined; allocate it before registering it");
        if (member.grad_slot() && !autograd::slot_of(member).is_leaf()) member = member.detach();
        member.requires_grad_();
        params_.push_back({name, TensorRef<T, D>(member)});
        return member;
    }

    // A tensor that belongs to the module's state but is not trained (running statistics). A
    // non-persistent buffer is left out of state_dict and checkpoints (a precomputed table).
    template <int R>
    Tensor<T, R, D>& register_buffer(const std::string& name, Tensor<T, R, D>& member, bool persistent = true) {
        check_new_name(name, "register_buffer");
        WEFT_CHECK(member.defined(), "register_buffer: the tensor '", name,
                   "' is undefined; allocate it before registering it");
        buffers_.push_back({{name, TensorRef<T, D>(member)}, persistent});
        return member;
    }

    // A submodule whose tensors appear under "<name>.". Returns `child`.
    template <class M>
        requires std::derived_from<M, Module>
    M& register_module(const std::string& name, M& child) {
        check_new_name(name, "register_module");
        WEFT_CHECK(static_cast<const Module*>(&child) != this, "register_module: '", name,
                   "' is the module itself");
        children_.push_back({name, &child});
        return child;
    }

    // ---- queries -------------------------------------------------------------------------------

    // Every parameter with its dotted name (the children's too unless recurse is false). A
    // tensor reachable under two names (a shared child) is listed once, under the first.
    std::vector<NamedTensor<T, D>> named_parameters(bool recurse = true) const {
        std::vector<NamedTensor<T, D>> out;
        std::set<const void*> seen;
        walk("", recurse, [&](const std::string& prefix, const Module& m) {
            for (const auto& p : m.params_)
                if (seen.insert(p.tensor.address()).second) out.push_back({prefix + p.name, p.tensor});
        });
        return out;
    }
    std::vector<TensorRef<T, D>> parameters(bool recurse = true) const {
        std::vector<TensorRef<T, D>> out;
        for (auto& p : named_parameters(recurse)) out.push_back(p.tensor);
        return out;
    }

    // The parameters whose dotted name satisfies pred(std::string_view):
    //   for (auto& p : model.parameters_matching(nn::starts_with("backbone.")))
    //       p.tensor.requires_grad_(false);                       // freeze the backbone
    template <class Pred>
    std::vector<NamedTensor<T, D>> parameters_matching(Pred&& pred) const {
        std::vector<NamedTensor<T, D>> out;
        for (auto& p : named_parameters())
            if (pred(std::string_view(p.name))) out.push_back(std::move(p));
        return out;
    }

    // Every buffer (persistent or not) with its dotted name.
    std::vector<NamedTensor<T, D>> named_buffers(bool recurse = true) const {
        std::vector<NamedTensor<T, D>> out;
        walk("", recurse, [&](const std::string& prefix, const Module& m) {
            for (const auto& b : m.buffers_) out.push_back({prefix + b.entry.name, b.entry.tensor});
        });
        return out;
    }
    std::vector<TensorRef<T, D>> buffers(bool recurse = true) const {
        std::vector<TensorRef<T, D>> out;
        for (auto& b : named_buffers(recurse)) out.push_back(b.tensor);
        return out;
    }

    // The direct children, in registration order.
    std::vector<std::pair<std::string, Module*>> named_children() const { return children_; }

    // This module (named "") and every module below it, depth first, each once.
    std::vector<std::pair<std::string, Module*>> named_modules() const {
        std::vector<std::pair<std::string, Module*>> out;
        std::set<const Module*> seen;
        walk("", true, [&](const std::string& prefix, const Module& m) {
            if (seen.insert(&m).second)
                out.push_back({prefix.empty() ? prefix : prefix.substr(0, prefix.size() - 1), const_cast<Module*>(&m)});
        });
        return out;
    }

    // Calls f(Module&) on every child (recursively) and then on this module, as torch's apply.
    template <class F>
    Module& apply(F&& f) {
        for (auto& [name, child] : children_) child->apply(f);
        f(*this);
        return *this;
    }

    // The parameters and persistent buffers in state_dict order, as references to the members.
    std::vector<NamedTensor<T, D>> named_state() const {
        std::vector<NamedTensor<T, D>> out;
        walk("", true, [&](const std::string& prefix, const Module& m) {
            for (const auto& p : m.params_) out.push_back({prefix + p.name, p.tensor});
            for (const auto& b : m.buffers_)
                if (b.persistent) out.push_back({prefix + b.entry.name, b.entry.tensor});
        });
        return out;
    }

    // ---- modes and gradients -------------------------------------------------------------------

    // Training mode for this module and every module below it (dropout drops, batch norm uses
    // batch statistics). Modules are created in training mode, as in PyTorch.
    virtual void train(bool on = true) {
        training_ = on;
        for (auto& [name, child] : children_) child->train(on);
    }
    void eval() { train(false); }
    bool is_training() const { return training_; }

    // Forgets every parameter's accumulated gradient (PyTorch's zero_grad(set_to_none=True):
    // the next backward() starts from nothing rather than from a tensor of zeros).
    void zero_grad() {
        for (auto& p : parameters()) p.clear_grad();
    }

    // ---- state ---------------------------------------------------------------------------------

    // Parameters and persistent buffers by dotted name, in PyTorch's order. The entries are
    // detached VIEWS of the module's tensors (no copy, as torch's state_dict()): they follow
    // later training steps. Call .clone() on the result for a snapshot.
    StateDict<T, D> state_dict() const {
        StateDict<T, D> sd;
        for (auto& e : named_state())
            e.tensor.visit([&](const auto& t) { sd.insert(e.name, t); });
        return sd;
    }

    // Copies the entries of `sd` into the module's existing tensors (no autograd; the tensors
    // keep their storage, so optimizers and views holding them stay valid).
    //   strict = true: any missing, unexpected or mis-shaped key throws weft::Error listing all
    //                  of them (names and shapes), and nothing is modified;
    //   strict = false: every key that fits is loaded, and the report lists the rest.
    LoadReport load_state_dict(const StateDict<T, D>& sd, bool strict = true) {
        const auto own = named_state();
        LoadReport report;
        std::set<std::string, std::less<>> expected;
        for (const auto& e : own) {
            expected.insert(e.name);
            const auto* src = sd.find(e.name);
            if (!src) report.missing.push_back(e.name);
            else if (src->shape != e.tensor.shape()) report.mismatched.push_back({e.name, e.tensor.shape(), src->shape});
        }
        for (const auto& s : sd)
            if (!expected.count(s.name)) report.unexpected.push_back(s.name);
        if (strict && !report.ok()) {
            auto shape_of = [&](const std::string& n) -> std::string {
                for (const auto& e : own)
                    if (e.name == n) return e.tensor.shape_string();
                return "";
            };
            std::vector<std::string> missing, unexpected;
            for (const auto& n : report.missing) missing.push_back(n + " " + shape_of(n));
            for (const auto& n : report.unexpected) unexpected.push_back(n + " " + sd.at(n).shape_string());
            WEFT_FAIL("load_state_dict (strict): the state dict does not fit the module; nothing was loaded\n",
                      LoadReport{missing, unexpected, report.mismatched}.message());
        }
        NoGrad no_grad;
        for (const auto& e : own) {
            const auto* src = sd.find(e.name);
            if (!src || src->shape != e.tensor.shape()) continue;
            e.tensor.visit([&](auto& t) {
                constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
                const auto s = src->template as<R>();
                if (s.data() != t.data()) t.copy_from(s);
            });
        }
        return report;
    }

private:
    void check_new_name(const std::string& name, const char* what) const {
        WEFT_CHECK(!name.empty(), what, ": empty name");
        WEFT_CHECK(name.find('.') == std::string::npos, what, ": '", name,
                   "' contains '.', which separates the levels of dotted names; register a child module instead");
        const bool taken = std::any_of(params_.begin(), params_.end(), [&](const auto& p) { return p.name == name; }) ||
                           std::any_of(buffers_.begin(), buffers_.end(),
                                       [&](const auto& b) { return b.entry.name == name; }) ||
                           std::any_of(children_.begin(), children_.end(),
                                       [&](const auto& c) { return c.first == name; });
        WEFT_CHECK(!taken, what, ": the name '", name, "' is already registered in this module");
    }

    struct Buffer {
        NamedTensor<T, D> entry;
        bool persistent;
    };

    // Visits this module and (if recurse) its descendants depth first with their name prefixes.
    template <class F>
    void walk(const std::string& prefix, bool recurse, F&& f) const {
        f(prefix, *this);
        if (!recurse) return;
        for (const auto& [name, child] : children_) child->walk(prefix + name + ".", true, f);
    }

    std::vector<NamedTensor<T, D>> params_;
    std::vector<Buffer> buffers_;
    std::vector<std::pair<std::string, Module*>> children_;
    bool training_ = true;
};

// A predicate for parameters_matching: names that begin with `prefix`.
inline auto starts_with(std::string prefix) {
    return [p = std::move(prefix)](std::string_view name) { return name.substr(0, p.size()) == p; };
}

// A predicate for parameters_matching: names that contain `part`.
inline auto name_contains(std::string part) {
    return [p = std::move(part)](std::string_view name) { return name.find(p) != std::string_view::npos; };
}

}  // namespace weft::nn
