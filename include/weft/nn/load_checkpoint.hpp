// weft/nn/load_checkpoint.hpp: a module's state from any checkpoint io/checkpoint.hpp reads
// (a torch.save or TorchScript archive, or safetensors).
//
//   auto ck = Checkpoint::open("RN50.pt");
//   nn::load_state(model.visual, ck, {.prefix = "visual."});          // strict: every key must fit
//   auto r = nn::load_state(model, ck, {.strict = false});            // load what fits, report the rest
//
// As load_state of nn/state_file.hpp (whose rules it shares): keys are the module's state_dict
// names after `prefix`; strict loading checks every key and shape first and throws weft::Error
// naming the file and each missing, unexpected or mis-shaped key, before any tensor is written;
// stored element types are converted to the module's. Two hooks cover what real checkpoints
// carry beyond a module's state: `ignore` names keys (prefix stripped) that are left alone on
// both sides, neither loaded nor checked nor reported (OpenAI's `input_resolution` scalars, or a
// tensor the caller converts itself), and `optional` names module keys that may be absent and
// keep their value (PyTorch's BatchNorm `num_batches_tracked`, which older files lack).
#pragma once

#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "../io/checkpoint.hpp"
#include "module.hpp"

namespace weft::nn {

struct CheckpointLoadOptions {
    bool strict = true;
    std::string prefix = "";
    std::function<bool(std::string_view)> ignore = nullptr;    // keys to leave alone on both sides
    std::function<bool(std::string_view)> optional = nullptr;  // module keys that may be missing
};

template <Element T, Device D>
LoadReport load_state(Module<T, D>& module, const Checkpoint& ck, const CheckpointLoadOptions& options = {}) {
    const std::string& prefix = options.prefix;
    const std::string where = "load_state: " + ck.where() +
                              (prefix.empty() ? std::string() : " (keys under '" + prefix + "')");
    const auto own = module.named_state();
    LoadReport report;
    std::set<std::string, std::less<>> expected;
    std::vector<std::string> missing_detail, unexpected_detail;
    auto shape_str = [](const std::vector<index_t>& s) {
        std::string r = "[";
        for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
        return r + "]";
    };
    auto ignored = [&](std::string_view name) { return options.ignore && options.ignore(name); };
    for (const auto& e : own) {
        expected.insert(e.name);
        if (ignored(e.name)) continue;
        const std::string key = prefix + e.name;
        if (!ck.contains(key)) {
            if (options.optional && options.optional(e.name)) continue;
            report.missing.push_back(e.name);
            missing_detail.push_back(e.name + " " + e.tensor.shape_string());
            continue;
        }
        const auto shape = ck.shape(key);
        if (shape != e.tensor.shape()) report.mismatched.push_back({e.name, e.tensor.shape(), shape});
    }
    for (const auto& key : ck.names()) {
        if (key.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string name = key.substr(prefix.size());
        if (expected.count(name) || ignored(name)) continue;
        report.unexpected.push_back(name);
        unexpected_detail.push_back(name + " " + shape_str(ck.shape(key)));
    }
    if (options.strict && !report.ok())
        WEFT_FAIL(where, " does not fit the module; nothing was loaded\n",
                  LoadReport{missing_detail, unexpected_detail, report.mismatched}.message());

    NoGrad no_grad;
    for (const auto& e : own) {
        const std::string key = prefix + e.name;
        if (ignored(e.name) || !ck.contains(key) || ck.shape(key) != e.tensor.shape()) continue;
        e.tensor.visit([&](auto& t) {
            constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
            t.copy_from(ck.template get<T, R>(key).template to<D>());
        });
    }
    return report;
}

}  // namespace weft::nn
