// weft/nn/sequential.hpp: `Sequential`, modules applied one after another to a tensor of one rank.
//
//   nn::Sequential<double, 2> mlp;                      // [batch, features] in and out
//   mlp.emplace_back<nn::Linear<double>>(4, 8);         // "0.weight", "0.bias"
//   mlp.emplace_back<nn::GELU<double>>();               // "1" (no tensors)
//   mlp.emplace_back<nn::Linear<double>>(8, 2);         // "2.weight", "2.bias"
//   auto y = mlp(x);                                    // [B, 4] -> [B, 2]
//
// The stages are type-erased: each keeps its module (owned, by std::unique_ptr) and a call of
// that module's forward at rank `Rank`, fixed when the stage is added. That keeps Sequential
// one type whatever it holds (it can be built in a loop and stored as a member), at the price
// of one indirect call per stage. Every stage maps Tensor<T, Rank, D> to Tensor<T, Rank, D>;
// a model that changes rank between stages is written as its own Module with a forward.
// Children are named "0", "1", ... as torch.nn.Sequential.
#pragma once

#include <concepts>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "module.hpp"

namespace weft::nn {

// A module usable as a stage of Sequential<T, Rank, D>.
template <class M, class T, int Rank, class D>
concept SequentialStage = std::derived_from<M, Module<T, D>> && requires(const M& m, const Tensor<T, Rank, D>& x) {
    { m.forward(x) } -> std::convertible_to<Tensor<T, Rank, D>>;
};

template <Element T = float, int Rank = 2, Device D = Cpu>
class Sequential : public Module<T, D> {
public:
    using Input = Tensor<T, Rank, D>;

    Sequential() = default;

    // Appends a stage; returns a reference to it (Sequential owns it).
    template <class M>
    M& push_back(std::unique_ptr<M> module) {
        static_assert(std::derived_from<M, Module<T, D>>,
                      "weft: a Sequential stage must derive from nn::Module<T, D> with the Sequential's T and D");
        static_assert(SequentialStage<M, T, Rank, D>,
                      "weft: a Sequential<T, Rank, D> stage needs a const forward(const Tensor<T, Rank, D>&) "
                      "returning Tensor<T, Rank, D>; stages that change the rank belong in a Module of your own");
        WEFT_CHECK(module != nullptr, "Sequential::push_back: null module");
        M& ref = *module;
        this->register_module(std::to_string(stages_.size()), ref);
        stages_.push_back({std::move(module), [&ref](const Input& x) -> Input { return ref.forward(x); }});
        return ref;
    }

    // Constructs a stage in place: seq.emplace_back<nn::Linear<float>>(in, out).
    template <class M, class... Args>
    M& emplace_back(Args&&... args) {
        return push_back(std::make_unique<M>(std::forward<Args>(args)...));
    }

    Input forward(const Input& x) const {
        Input y = x;
        for (const auto& s : stages_) y = s.forward(y);
        return y;
    }
    Input operator()(const Input& x) const { return forward(x); }

    std::size_t size() const { return stages_.size(); }
    bool empty() const { return stages_.empty(); }

    Module<T, D>& operator[](std::size_t i) const {
        WEFT_CHECK(i < stages_.size(), "Sequential: index ", i, " is out of range for ", stages_.size(), " stages");
        return *stages_[i].module;
    }

    // Stage i as its concrete type; throws if it is another type.
    template <class M>
    M& at(std::size_t i) const {
        auto* m = dynamic_cast<M*>(&(*this)[i]);
        WEFT_CHECK(m != nullptr, "Sequential::at: stage ", i, " is not of the requested module type");
        return *m;
    }

private:
    struct Stage {
        std::unique_ptr<Module<T, D>> module;
        std::function<Input(const Input&)> forward;
    };
    std::vector<Stage> stages_;
};

}  // namespace weft::nn
