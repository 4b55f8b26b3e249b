// weft/optim/optimizer.hpp: what every optimizer shares: parameter groups with their lr and
// weight decay, per-parameter state, step/zero_grad, and saving that state by parameter name.
//
//   AdamW<float> opt(make_param_groups(model.named_parameters(), rules), {.lr = 1e-4});
//   for (...) {
//       opt.zero_grad();
//       loss(model, batch).backward();
//       opt.set_lr(schedule.lr_at(iter));          // each group: base lr * its lr_mult
//       opt.step();
//   }
//   opt.save_state("optim.safetensors");           // resume: opt.load_state(...) continues exactly
//   auto e = opt.state_entries("optimizer.");       // or inside a larger file (a training checkpoint)
//
// A parameter whose gradient is undefined (backward did not reach it, or zero_grad cleared it
// and nothing has arrived since) is skipped by step(), state and all, as torch skips a
// parameter whose .grad is None.
//
// State file: safetensors, one tensor per state buffer under "<parameter name>:<buffer>" with the
// parameter's shape and dtype, and "<parameter name>:step" (I64, a scalar) for each parameter that
// has been stepped; metadata "weft.optimizer" names the optimizer. Keys are names, not positions,
// so the file survives a model whose parameters are listed in another order or grouped otherwise.
// An optimizer of Cuda parameters writes and reads the same files, through host copies.
#pragma once

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../autograd/grad_mode.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../exec/cpu/executor.hpp"
#include "../exec/cpu/thread_pool.hpp"
#include "../io/safetensors.hpp"
#include "../nn/tensor_ref.hpp"
#include "param_groups.hpp"

namespace weft::optim {

template <Element T, Device D = Cpu>
class Optimizer {
    static_assert(FloatingElement<T>, "weft: optimizers update floating-point parameters");

public:
    using Flat = Tensor<T, 1, D>;

    struct Group {
        std::vector<NamedTensor<T, D>> params;
        double lr_mult = 1;
        double decay_mult = 1;
        double lr = 0;            // this group's current learning rate
        double weight_decay = 0;  // this group's weight decay: the optimizer's times decay_mult
    };

    // Per parameter: how many steps it has taken, and the optimizer's buffers (named by
    // buffer_names(), each [numel] like the parameter's flat view; allocated at its first step).
    struct State {
        std::int64_t step = 0;
        std::vector<Flat> buffers;
    };

    Optimizer(const Optimizer&) = delete;  // two optimizers would share one set of buffers
    Optimizer& operator=(const Optimizer&) = delete;
    Optimizer(Optimizer&&) noexcept = default;
    Optimizer& operator=(Optimizer&&) noexcept = default;
    virtual ~Optimizer() = default;

    // "SGD", "AdamW": written into state files and checked when loading.
    virtual std::string name() const = 0;
    // The per-parameter buffers this optimizer keeps, in the order of State::buffers.
    virtual std::vector<std::string> buffer_names() const = 0;

    // One update of every parameter that has a gradient, in one pass over its elements. Every
    // parameter is checked before any changes, so a refused step leaves all of them and their
    // state as they were; then update_many() updates them all (on CUDA, AdamW in one launch).
    void step() {
        NoGrad no_grad;  // the update is not part of any graph
        const std::size_t buffers = buffer_names().size();
        std::vector<Update> updates;
        for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
            const Group& g = groups_[gi];
            for (std::size_t pi = 0; pi < g.params.size(); ++pi) {
                const NamedTensor<T, D>& p = g.params[pi];
                const Flat grad = p.tensor.grad_flat();
                if (!grad.defined()) continue;
                const Flat param = p.tensor.flat();
                WEFT_CHECK(grad.numel() == param.numel(), name(), ".step: parameter '", p.name, "' of shape ",
                           p.tensor.shape_string(), " has a gradient of ", grad.numel(), " elements");
                State& s = state_[gi][pi];
                if (s.step > 0)  // (a first step allocates its buffers below)
                    for (std::size_t b = 0; b < s.buffers.size(); ++b)
                        WEFT_CHECK(s.buffers[b].numel() == param.numel(), name(), ".step: parameter '", p.name,
                                   "' now has shape ", p.tensor.shape_string(), ", but its ", buffer_names()[b],
                                   " has ", s.buffers[b].numel(), " elements (the tensor was replaced)");
                updates.push_back({&g, &s, param, grad});
            }
        }
        for (Update& u : updates) {
            State& s = *u.state;
            if (s.step == 0) {
                s.buffers.clear();
                for (std::size_t b = 0; b < buffers; ++b)
                    s.buffers.push_back(Flat::zeros({u.param.numel()}));
            }
            ++s.step;
        }
        update_many(updates);
    }

    // Clears every parameter's gradient (undefined, as torch's set_to_none), so that step()
    // skips a parameter that the next backward does not reach.
    void zero_grad() {
        for (const Group& g : groups_)
            for (const NamedTensor<T, D>& p : g.params) p.tensor.clear_grad();
    }

    // Sets each group's lr to base_lr * lr_mult (what a schedule calls every iteration).
    void set_lr(double base_lr) {
        lr_ = base_lr;
        for (Group& g : groups_) g.lr = base_lr * g.lr_mult;
    }
    // The optimizer's own lr: as constructed, or as last given to set_lr.
    double lr() const { return lr_; }
    double weight_decay() const { return weight_decay_; }

    // Groups may be edited (a group's lr set directly, as mmcv's hooks do per group).
    std::vector<Group>& groups() { return groups_; }
    const std::vector<Group>& groups() const { return groups_; }

    // The state of parameter `param`; throws if no parameter has that name.
    const State& state(const std::string& param) const {
        const auto [gi, pi] = locate(param);
        WEFT_CHECK(gi >= 0, name(), ": no parameter named '", param, "'");
        return state_[std::size_t(gi)][std::size_t(pi)];
    }
    // One buffer of a parameter's state ("exp_avg", "momentum_buffer"); undefined before its first step.
    Flat state(const std::string& param, std::string_view buffer) const {
        const State& s = state(param);
        const auto names = buffer_names();
        for (std::size_t b = 0; b < names.size(); ++b)
            if (names[b] == buffer) return b < s.buffers.size() ? s.buffers[b] : Flat();
        WEFT_FAIL(name(), " keeps no buffer '", buffer, "'");
    }

    // Writes the state of every stepped parameter to a safetensors file (atomically: see io/).
    void save_state(const std::filesystem::path& path) const {
        save_safetensors(path, state_entries(), {{"weft.optimizer", name()}});
    }

    // The entries save_state writes, each key preceded by `prefix`, for a file that holds more
    // than the optimizer (a training checkpoint). They point into the optimizer's buffers: write
    // them before the next step.
    // On CUDA each buffer is copied to the host here, and the entries keep those copies.
    std::vector<SafetensorsEntry> state_entries(const std::string& prefix = "") const {
        std::vector<SafetensorsEntry> entries;
        const auto names = buffer_names();
        for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
            for (std::size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
                const NamedTensor<T, D>& p = groups_[gi].params[pi];
                const State& s = state_[gi][pi];
                if (s.step == 0) continue;
                entries.emplace_back(prefix + p.name + ":step", Tensor<std::int64_t, 0>::full({}, s.step));
                for (std::size_t b = 0; b < names.size(); ++b) {
                    if constexpr (std::same_as<D, Cpu>) {
                        entries.emplace_back(prefix + p.name + ":" + names[b], dtype_of<T>, p.tensor.shape(),
                                             s.buffers[b].data(), std::size_t(s.buffers[b].numel()) * sizeof(T));
                    } else {
                        const Tensor<T, 1, Cpu> host = s.buffers[b].template to<Cpu>();
                        SafetensorsEntry& e =
                            entries.emplace_back(prefix + p.name + ":" + names[b], dtype_of<T>, p.tensor.shape(),
                                                 host.data(), std::size_t(host.numel()) * sizeof(T));
                        e.keep = host.storage();
                    }
                }
            }
        }
        return entries;
    }

    // Replaces the state with a file's. Every check happens before anything changes: a file of
    // another optimizer, state for a parameter this optimizer lacks, a missing buffer, a shape or
    // dtype that differs from the parameter's each throw weft::Error naming the file and key, and
    // leave the state as it was. Parameters the file does not mention start fresh (they had not
    // been stepped when it was saved). Hyperparameters (lr, betas, ...) are not in the file.
    void load_state(const std::filesystem::path& path) {
        const SafetensorsFile f = SafetensorsFile::open(path);
        const std::string where = "optimizer state file '" + path.string() + "'";
        const auto& meta = f.metadata();
        const auto kind = meta.find("weft.optimizer");
        WEFT_CHECK(kind != meta.end(), where, ": no 'weft.optimizer' metadata: not an optimizer state file");
        WEFT_CHECK(kind->second == name(), where, ": holds the state of ", kind->second, ", not of ", name());
        load_state(f, where);
    }

    // The same from the keys of `f` that begin with `prefix` (state_entries' counterpart); the
    // caller checks that the file holds this optimizer's state. `where` names the file in errors.
    // A CUDA optimizer reads each buffer into host memory and copies it to the device.
    void load_state(const SafetensorsFile& f, const std::string& where, const std::string& prefix = "") {
        const auto names = buffer_names();
        for (const std::string& full : f.names()) {
            if (!std::string_view(full).starts_with(prefix)) continue;
            const std::string key = full.substr(prefix.size());
            const auto colon = key.rfind(':');
            WEFT_CHECK(colon != std::string::npos, where, ": key '", key,
                       "' is not of the form '<parameter>:<buffer>'");
            const std::string param = key.substr(0, colon), buffer = key.substr(colon + 1);
            WEFT_CHECK(locate(param).first >= 0, where, ": key '", key, "' holds state for parameter '", param,
                       "', which this ", name(), " does not optimize (renamed, removed, or frozen?)");
            bool known = buffer == "step";
            for (const auto& n : names) known = known || buffer == n;
            WEFT_CHECK(known, where, ": key '", key, "': ", name(), " keeps no state '", buffer,
                       "' (saved with other options, e.g. amsgrad or momentum?)");
            WEFT_CHECK(f.contains(prefix + param + ":step"), where, ": key '", full, "' has no matching '", prefix + param,
                       ":step'");
        }

        std::vector<std::vector<State>> fresh(groups_.size());
        for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
            fresh[gi].resize(groups_[gi].params.size());
            for (std::size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
                const NamedTensor<T, D>& p = groups_[gi].params[pi];
                const std::string step_key = prefix + p.name + ":step";
                if (!f.contains(step_key)) continue;
                State& s = fresh[gi][pi];
                s.step = f.get<std::int64_t, 0>(step_key).item();
                WEFT_CHECK(s.step > 0, where, ": key '", step_key, "' is ", s.step, "; a saved step count is positive");
                for (const std::string& b : names) {
                    const std::string key = prefix + p.name + ":" + b;
                    WEFT_CHECK(f.contains(key), where, ": no key '", key, "', which ", name(),
                               " needs for parameter '", p.name, "' (saved with other options?)");
                    const SafetensorsInfo& info = f.info(key);
                    WEFT_CHECK(info.shape == p.tensor.shape(), where, ": key '", key, "' has shape ",
                               info.shape_str(), ", but parameter '", p.name, "' has shape ", p.tensor.shape_string());
                    s.buffers.push_back(p.tensor.visit([&](const auto& t) -> Flat {
                        if constexpr (std::same_as<D, Cpu>) {
                            auto buf = std::remove_cvref_t<decltype(t)>::empty(t.shape());
                            f.get_into(key, buf);
                            return buf.reshape(buf.numel());
                        } else {
                            auto buf = Tensor<T, std::remove_cvref_t<decltype(t)>::rank, Cpu>::empty(t.shape());
                            f.get_into(key, buf);
                            return buf.reshape(buf.numel()).template to<D>();
                        }
                    }));
                }
            }
        }
        state_ = std::move(fresh);
    }

    std::size_t param_count() const {
        std::size_t n = 0;
        for (const Group& g : groups_) n += g.params.size();
        return n;
    }

protected:
    Optimizer(std::vector<ParamGroup<T, D>> groups, double lr, double weight_decay)
        : lr_(lr), weight_decay_(weight_decay) {
        WEFT_CHECK(lr >= 0, "optimizer: lr ", lr, " is negative");
        WEFT_CHECK(weight_decay >= 0, "optimizer: weight_decay ", weight_decay, " is negative");
        for (ParamGroup<T, D>& pg : groups) {
            Group g;
            g.lr_mult = pg.lr_mult;
            g.decay_mult = pg.decay_mult;
            g.lr = lr * pg.lr_mult;
            g.weight_decay = weight_decay * pg.decay_mult;
            for (std::size_t pi = 0; pi < pg.params.size(); ++pi) {
                const NamedTensor<T, D>& p = pg.params[pi];
                WEFT_CHECK(p.tensor.valid(), "optimizer: parameter '", p.name, "' refers to no tensor");
                WEFT_CHECK(index_.emplace(p.name, std::pair{int(groups_.size()), int(pi)}).second, "optimizer: the parameter name '", p.name,
                           "' appears twice; state is saved by name, so names must be unique");
            }
            g.params = std::move(pg.params);
            state_.emplace_back(g.params.size());
            groups_.push_back(std::move(g));
        }
    }

    static std::vector<ParamGroup<T, D>> one_group(std::vector<NamedTensor<T, D>> params) {
        std::vector<ParamGroup<T, D>> groups(1);
        groups[0].params = std::move(params);
        return groups;
    }

    // Updates one parameter (its flat view `param`, gradient `grad`) of group `g`; `s.step`
    // already counts this step and `s.buffers` exist (zeros at the first step).
    virtual void update(const Group& g, State& s, const Flat& param, const Flat& grad) = 0;

    // One parameter's share of a step: update()'s arguments.
    struct Update {
        const Group* group;
        State* state;
        Flat param;
        Flat grad;
    };

    // Updates every parameter of one step, in the order of the groups. By default one update()
    // each, in turn; an optimizer whose device wants few large launches overrides it (AdamW on
    // CUDA: one multi-tensor kernel for the whole step).
    virtual void update_many(const std::vector<Update>& updates) {
        for (const Update& u : updates) update(*u.group, *u.state, u.param, u.grad);
    }

private:
    std::pair<int, int> locate(const std::string& param) const {
        const auto it = index_.find(param);
        return it == index_.end() ? std::pair<int, int>{-1, -1} : it->second;
    }

    std::vector<Group> groups_;
    std::vector<std::vector<State>> state_;  // [group][parameter], parallel to groups_
    std::map<std::string, std::pair<int, int>> index_;  // parameter name -> [group, parameter]
    double lr_ = 0;
    double weight_decay_ = 0;
};

namespace detail {

// Runs body(begin, end) over [0, n) on the CPU threads: the optimizers' fused update loops, in
// which each element is read and written once for all of its buffers.
template <class F>
void for_each_chunk(index_t n, F&& body) {
    parallel_for(0, n, cpu::grain, std::forward<F>(body));
}

}  // namespace detail

}  // namespace weft::optim
