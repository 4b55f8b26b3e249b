// weft/optim/param_groups.hpp: parameter groups with their own lr and weight-decay multipliers,
// chosen by name rules as mmcv's DefaultOptimizerConstructor does with `paramwise_cfg`.
//
//   // DenseCLIP: backbone at a tenth of the lr, the text encoder frozen by lr 0, no decay on norms
//   auto groups = make_param_groups(model.named_parameters(), {{"backbone", 0.1},
//                                                              {"text_encoder", 0.0},
//                                                              {"norm", 1.0, 0.0}});
//   AdamW<float> opt(groups, {.lr = 1e-4, .weight_decay = 1e-4});
//
// Matching (mmcv 1.x, mmcv/runner/optimizer/default_constructor.py, add_params): the keys are
// tried longest first, ties in alphabetical order, and the first key that is a substring of the
// parameter's name decides both multipliers (a key without decay_mult has decay_mult 1; the
// other rules are then ignored). mmcv matches against f"{prefix}.{name}", which for a parameter
// of the top module (prefix '') is ".weight": a name without a dot is matched with a leading
// dot here too, so a key such as ".weight" behaves identically.
//
// Parameters with requires_grad false are left out: they receive no gradient, so an optimizer
// would never step them (mmcv keeps them in groups of their own that never move).
#pragma once

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../nn/tensor_ref.hpp"

namespace weft::optim {

// One paramwise_cfg.custom_keys entry: parameters whose name contains `key` get
// lr = base_lr * lr_mult and weight_decay = base_wd * decay_mult.
struct ParamRule {
    std::string key;
    double lr_mult = 1, decay_mult = 1;
};

// mmcv's paramwise_cfg. bias_* apply to parameters named "...bias" outside normalization layers,
// norm_decay_mult to every parameter of a normalization layer; these apply only to parameters
// no custom key matched. mmcv recognises normalization layers by module type, which a name does
// not carry: `is_norm(name)` says which parameters belong to one (none when it is empty).
struct ParamGroupConfig {
    std::vector<ParamRule> custom_keys;
    double bias_lr_mult = 1;
    double bias_decay_mult = 1;
    double norm_decay_mult = 1;
    std::function<bool(const std::string& name)> is_norm;
};

template <Element T, Device D = Cpu>
struct ParamGroup {
    std::vector<NamedTensor<T, D>> params;
    double lr_mult = 1;
    double decay_mult = 1;
};

namespace detail {

// The keys in the order mmcv tries them: longest first, then alphabetical.
inline std::vector<const ParamRule*> rules_in_match_order(const std::vector<ParamRule>& rules) {
    std::vector<const ParamRule*> order;
    std::set<std::string> seen;
    for (const ParamRule& r : rules) {
        WEFT_CHECK(!r.key.empty(), "make_param_groups: an empty key would match every parameter");
        WEFT_CHECK(seen.insert(r.key).second, "make_param_groups: the key '", r.key,
                   "' is given twice (mmcv's custom_keys is a dict: one entry per key)");
        order.push_back(&r);
    }
    std::sort(order.begin(), order.end(), [](const ParamRule* a, const ParamRule* b) {
        if (a->key.size() != b->key.size()) return a->key.size() > b->key.size();
        return a->key < b->key;
    });
    return order;
}

// mmcv matches "prefix.name"; a parameter of the top module has an empty prefix.
inline std::string match_string(const std::string& name) {
    return name.find('.') == std::string::npos ? "." + name : name;
}

inline bool is_bias(const std::string& name) {
    const auto dot = name.rfind('.');
    return (dot == std::string::npos ? name : name.substr(dot + 1)) == "bias";
}

}  // namespace detail

// The rule that decides `name`'s multipliers, or null when no key matches.
inline const ParamRule* match_param_rule(const std::string& name, const std::vector<ParamRule>& rules) {
    const std::string s = detail::match_string(name);
    for (const ParamRule* r : detail::rules_in_match_order(rules))
        if (s.find(r->key) != std::string::npos) return r;
    return nullptr;
}

// Groups the trainable parameters by their (lr_mult, decay_mult), in order of first appearance;
// within a group parameters keep their order. Names must be unique: optimizer state is saved by name.
template <Element T, Device D>
std::vector<ParamGroup<T, D>> make_param_groups(const std::vector<NamedTensor<T, D>>& params,
                                                const ParamGroupConfig& config) {
    const auto order = detail::rules_in_match_order(config.custom_keys);
    std::vector<ParamGroup<T, D>> groups;
    std::set<std::string> names;
    for (const NamedTensor<T, D>& p : params) {
        WEFT_CHECK(p.tensor.valid(), "make_param_groups: parameter '", p.name, "' refers to no tensor");
        WEFT_CHECK(names.insert(p.name).second, "make_param_groups: the parameter name '", p.name,
                   "' appears twice; optimizer state is keyed by name, so names must be unique");
        if (!p.tensor.requires_grad()) continue;

        double lr_mult = 1, decay_mult = 1;
        const std::string s = detail::match_string(p.name);
        const auto rule = std::find_if(order.begin(), order.end(),
                                       [&](const ParamRule* r) { return s.find(r->key) != std::string::npos; });
        if (rule != order.end()) {
            lr_mult = (*rule)->lr_mult;
            decay_mult = (*rule)->decay_mult;
        } else {
            const bool norm = config.is_norm && config.is_norm(p.name);
            const bool bias = detail::is_bias(p.name);
            if (bias && !norm) lr_mult = config.bias_lr_mult;
            if (norm) decay_mult = config.norm_decay_mult;
            else if (bias) decay_mult = config.bias_decay_mult;
        }

        auto g = std::find_if(groups.begin(), groups.end(),
                              [&](const auto& x) { return x.lr_mult == lr_mult && x.decay_mult == decay_mult; });
        if (g == groups.end()) {
            groups.push_back({{}, lr_mult, decay_mult});
            g = groups.end() - 1;
        }
        g->params.push_back(p);
    }
    return groups;
}

template <Element T, Device D>
std::vector<ParamGroup<T, D>> make_param_groups(const std::vector<NamedTensor<T, D>>& params,
                                                const std::vector<ParamRule>& custom_keys) {
    return make_param_groups(params, ParamGroupConfig{custom_keys, 1, 1, 1, {}});
}

}  // namespace weft::optim
