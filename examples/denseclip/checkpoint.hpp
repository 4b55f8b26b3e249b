// examples/denseclip/checkpoint.hpp: a training checkpoint in one safetensors file.
//
//   save_training_checkpoint(work / "iter_200.safetensors", model, opt, {.iter = 200, ...});
//   auto s = load_training_checkpoint(path, model, &opt);      // -> iteration, RNG, config name
//
// Contents: the model's state under its own names (so `denseclip eval --checkpoint` and
// load_denseclip read the same file), the optimizer's state under "optimizer." (AdamW's moments
// and step per parameter), and metadata: "weft.denseclip.iter" (iterations done),
// "weft.denseclip.rng" (seed and offset of the generator dropout draws from), "weft.denseclip.config"
// (the config's name, checked on resume) and "weft.denseclip.seed" (the data order's seed). The
// file is written to "<path>.tmp" and renamed (io/safetensors.hpp): a crash leaves the previous
// checkpoint intact.
#pragma once

#include <filesystem>
#include <string>

#include <weft/io/safetensors.hpp>

#include "model.hpp"
#include "step.hpp"

namespace denseclip {

struct TrainingState {
    std::int64_t iter = 0;
    Generator rng{};
    std::uint64_t data_seed = 0;
    std::string config;
};

template <Element T, Device D>
void save_training_checkpoint(const std::filesystem::path& path, const DenseClip<T, D>& model,
                              const optim::AdamW<T, D>& opt, const TrainingState& s) {
    std::vector<SafetensorsEntry> entries;
    for (const auto& e : model.named_state())  // host copies of a model on the GPU
        e.tensor.visit([&](const auto& t) { entries.emplace_back(e.name, t.detach().template to<Cpu>()); });
    for (auto& e : opt.state_entries("optimizer.")) entries.push_back(std::move(e));
    save_safetensors(path, entries,
                     {{"weft.denseclip.iter", std::to_string(s.iter)},
                      {"weft.denseclip.rng", std::to_string(s.rng.seed) + " " + std::to_string(s.rng.offset)},
                      {"weft.denseclip.seed", std::to_string(s.data_seed)},
                      {"weft.denseclip.config", s.config},
                      {"weft.optimizer", opt.name()}});
}

// Loads the model (strict) and, when `opt` is given, the optimizer state; returns the metadata.
template <Element T, Device D>
TrainingState load_training_checkpoint(const std::filesystem::path& path, DenseClip<T, D>& model,
                                       optim::AdamW<T, D>* opt) {
    const auto ck = Checkpoint::open(path);
    load_denseclip(model, ck);
    const SafetensorsFile f = SafetensorsFile::open(path);
    const std::string where = "checkpoint '" + path.string() + "'";
    const auto& meta = f.metadata();
    const auto need = [&](const std::string& key) -> const std::string& {
        const auto it = meta.find(key);
        WEFT_CHECK(it != meta.end(), where, ": no '", key, "' metadata; not a training checkpoint of weft's denseclip ",
                   "(a model-only file loads with `denseclip eval`, not with --resume)");
        return it->second;
    };
    TrainingState s;
    try {
        s.iter = std::stoll(need("weft.denseclip.iter"));
        const std::string rng = need("weft.denseclip.rng");
        const auto space = rng.find(' ');
        s.rng.seed = std::stoull(rng.substr(0, space));
        s.rng.offset = std::stoull(rng.substr(space + 1));
        s.data_seed = std::stoull(need("weft.denseclip.seed"));
    } catch (const std::logic_error&) {
        WEFT_FAIL(where, ": malformed training metadata");
    }
    s.config = need("weft.denseclip.config");
    if (opt) opt->load_state(f, where, "optimizer.");
    return s;
}

}  // namespace denseclip
