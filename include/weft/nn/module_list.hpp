// weft/nn/module_list.hpp: `ModuleList`, owned submodules named "0", "1", ... (no forward).
//
//   nn::ModuleList<nn::TransformerEncoderLayer<float>> layers;
//   for (int i = 0; i < depth; ++i) layers.emplace_back(width, heads);   // "layers.3.linear1.weight"
//   for (auto& layer : layers) x = layer(x);
//
// The element type M fixes what operator[] and iteration return; ModuleList<nn::Module<T, D>>
// holds modules of any type (then downcast with at<Concrete>(i)). As torch.nn.ModuleList, it
// only names and owns its children; the enclosing module decides how to call them.
#pragma once

#include <concepts>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "module.hpp"

namespace weft::nn {

template <class M>
class ModuleList : public Module<typename M::value_type, typename M::device_type> {
    using Base = Module<typename M::value_type, typename M::device_type>;
    static_assert(std::derived_from<M, Base>, "weft: ModuleList<M> holds modules: M must derive from nn::Module");

public:
    ModuleList() = default;

    template <class U>
        requires std::derived_from<U, M>
    U& push_back(std::unique_ptr<U> module) {
        WEFT_CHECK(module != nullptr, "ModuleList::push_back: null module");
        U& ref = *module;
        this->register_module(std::to_string(items_.size()), ref);
        items_.push_back(std::move(module));
        return ref;
    }

    // Constructs an M in place from the arguments.
    template <class... Args>
    M& emplace_back(Args&&... args) {
        return push_back(std::make_unique<M>(std::forward<Args>(args)...));
    }

    std::size_t size() const { return items_.size(); }
    bool empty() const { return items_.empty(); }

    M& operator[](std::size_t i) const {
        WEFT_CHECK(i < items_.size(), "ModuleList: index ", i, " is out of range for ", items_.size(), " modules");
        return *items_[i];
    }

    template <class U>
    U& at(std::size_t i) const {
        auto* u = dynamic_cast<U*>(&(*this)[i]);
        WEFT_CHECK(u != nullptr, "ModuleList::at: module ", i, " is not of the requested type");
        return *u;
    }

    // Iterates the modules as M&.
    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = M;
        using difference_type = std::ptrdiff_t;
        using pointer = M*;
        using reference = M&;
        iterator() = default;
        explicit iterator(typename std::vector<std::unique_ptr<M>>::const_iterator it) : it_(it) {}
        M& operator*() const { return **it_; }
        M* operator->() const { return it_->get(); }
        iterator& operator++() {
            ++it_;
            return *this;
        }
        iterator operator++(int) {
            iterator old = *this;
            ++it_;
            return old;
        }
        bool operator==(const iterator& o) const { return it_ == o.it_; }

    private:
        typename std::vector<std::unique_ptr<M>>::const_iterator it_;
    };
    iterator begin() const { return iterator(items_.begin()); }
    iterator end() const { return iterator(items_.end()); }

private:
    std::vector<std::unique_ptr<M>> items_;
};

}  // namespace weft::nn
