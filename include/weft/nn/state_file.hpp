// weft/nn/state_file.hpp: a module's state to and from a safetensors file.
//
//   nn::save_state(model, "model.safetensors", {{"epoch", "12"}});
//   nn::load_state(model, "model.safetensors");                      // strict: every key must fit
//   auto r = nn::load_state(model.visual, "clip.safetensors", false, "visual.");
//
// save_state writes the parameters and persistent buffers under their state_dict names,
// atomically (io/safetensors.hpp writes "<path>.tmp" and renames it).
//
// load_state reads the keys that begin with `prefix` (which is stripped: a sub-model loads from
// a larger checkpoint) into the module's existing tensors, as load_state_dict does: strict
// throws weft::Error naming the file and every missing, unexpected or mis-shaped key, before any
// tensor is read; non-strict loads what fits and returns the LoadReport. A tensor stored in
// another element type is converted to the module's (a float64 or float16 file into a float
// model, PyTorch's int64 num_batches_tracked into a float buffer); a dtype weft cannot read
// (I8, U16, ...) is an error naming the key. The header is validated when the file is opened,
// so a truncated file fails before anything is written into the module.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "../expr.hpp"
#include "../io/safetensors.hpp"
#include "module.hpp"

namespace weft::nn {

template <Element T, Device D>
void save_state(const Module<T, D>& module, const std::filesystem::path& path,
                const std::map<std::string, std::string>& metadata = {}) {
    std::vector<SafetensorsEntry> entries;
    for (const auto& e : module.named_state())
        e.tensor.visit([&](const auto& t) {
            WEFT_CHECK(t.defined(), "save_state(", path.string(), "): the module's tensor '", e.name,
                       "' is undefined");
            entries.emplace_back(e.name, t.detach().template to<Cpu>());
        });
    save_safetensors(path, entries, metadata);
}

namespace detail {

// Tensor `key` of `file` as Tensor<T, R> on the CPU, converted from the file's element type.
template <Element T, int R>
Tensor<T, R, Cpu> read_converted(const SafetensorsFile& file, const std::string& key) {
    const SafetensorsInfo& info = file.info(key);
    auto convert_from = [&]<class U>() -> Tensor<T, R, Cpu> {
        if constexpr (std::same_as<U, T>) {
            return file.get<T, R>(key);
        } else {
            const auto src = file.get<U, R>(key);
            Tensor<T, R, Cpu> out = cast<T>(src);
            return out;
        }
    };
    switch (*info.dtype) {
        case DType::f32: return convert_from.template operator()<float>();
        case DType::f64: return convert_from.template operator()<double>();
        case DType::f16: return convert_from.template operator()<half>();
        case DType::bf16: return convert_from.template operator()<bf16>();
        case DType::i64: return convert_from.template operator()<std::int64_t>();
        case DType::i32: return convert_from.template operator()<std::int32_t>();
        default: break;
    }
    WEFT_FAIL("load_state: safetensors file '", file.path().string(), "': tensor '", key, "' is ", info.dtype_code,
              ", which does not convert to the module's ", dtype_name(dtype_of<T>));
}

inline bool convertible_dtype(const SafetensorsInfo& info) {
    if (!info.dtype) return false;
    switch (*info.dtype) {
        case DType::f32:
        case DType::f64:
        case DType::f16:
        case DType::bf16:
        case DType::i64:
        case DType::i32: return true;
        default: return false;
    }
}

}  // namespace detail

template <Element T, Device D>
LoadReport load_state(Module<T, D>& module, const std::filesystem::path& path, bool strict = true,
                      std::string_view prefix = "") {
    const auto file = SafetensorsFile::open(path);
    const std::string where = "load_state: safetensors file '" + path.string() + "'" +
                              (prefix.empty() ? std::string() : " (keys under '" + std::string(prefix) + "')");
    const auto own = module.named_state();
    LoadReport report;
    std::set<std::string, std::less<>> expected;
    std::vector<std::string> missing_detail, unexpected_detail;
    for (const auto& e : own) {
        expected.insert(e.name);
        const std::string key = std::string(prefix) + e.name;
        if (!file.contains(key)) {
            report.missing.push_back(e.name);
            missing_detail.push_back(e.name + " " + e.tensor.shape_string());
            continue;
        }
        const SafetensorsInfo& info = file.info(key);
        WEFT_CHECK(detail::convertible_dtype(info), where, ": tensor '", key, "' is ", info.dtype_code,
                   ", which does not convert to the module's ", dtype_name(dtype_of<T>));
        if (info.shape != e.tensor.shape()) report.mismatched.push_back({e.name, e.tensor.shape(), info.shape});
    }
    for (const auto& key : file.names()) {
        if (key.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string name = key.substr(prefix.size());
        if (!expected.count(name)) {
            report.unexpected.push_back(name);
            unexpected_detail.push_back(name + " " + file.info(key).shape_str());
        }
    }
    if (strict && !report.ok())
        WEFT_FAIL(where, " does not fit the module; nothing was loaded\n",
                  LoadReport{missing_detail, unexpected_detail, report.mismatched}.message());

    NoGrad no_grad;
    for (const auto& e : own) {
        const std::string key = std::string(prefix) + e.name;
        if (!file.contains(key) || file.info(key).shape != e.tensor.shape()) continue;
        e.tensor.visit([&](auto& t) {
            constexpr int R = std::remove_cvref_t<decltype(t)>::rank;
            if constexpr (std::same_as<D, Cpu>) {
                if (file.info(key).dtype == dtype_of<T>) {
                    file.get_into(key, t);
                    return;
                }
            }
            t.copy_from(detail::read_converted<T, R>(file, key).template to<D>());
        });
    }
    return report;
}

}  // namespace weft::nn
