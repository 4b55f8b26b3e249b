// weft/io/checkpoint.hpp: one reader for every checkpoint form weft loads weights from.
//
//   auto ck = Checkpoint::open("ViT-B-16.pt");       // TorchScript, torch.save, or safetensors
//   ck.format();                                     // Checkpoint::Format::torchscript
//   for (const auto& name : ck.names()) ck.shape(name);
//   auto w = ck.get<float, 2>("visual.proj");        // converted from the stored fp16
//
// The format is recognised by content, not by file name: a ZIP file (PyTorch archives start
// with "PK\3\4") is read by TorchArchive, anything else must be a safetensors file. Both readers
// validate the whole file when it is opened, so a damaged file fails here, before any model is
// built. get() converts the stored element type to the one asked for (fp16, bf16, fp32, fp64 and
// the integer types; floating-point data is never read as integers).
#pragma once

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "safetensors.hpp"
#include "torch_archive.hpp"

namespace weft {

class Checkpoint {
public:
    enum class Format { safetensors, torch_save, torchscript };

    static Checkpoint open(const std::filesystem::path& path) {
        Checkpoint c;
        c.path_ = path;
        if (is_zip(path)) {
            c.torch_ = TorchArchive::open(path);
            c.names_ = c.torch_->names();
        } else {
            c.safetensors_ = SafetensorsFile::open(path);
            c.names_ = c.safetensors_->names();
        }
        return c;
    }

    const std::filesystem::path& path() const { return path_; }
    Format format() const {
        if (!torch_) return Format::safetensors;
        return torch_->kind() == TorchArchive::Kind::torchscript ? Format::torchscript : Format::torch_save;
    }
    static const char* format_name(Format f) {
        switch (f) {
            case Format::safetensors: return "safetensors";
            case Format::torch_save: return "torch.save archive";
            case Format::torchscript: return "TorchScript archive";
        }
        return "?";
    }

    // Tensor names in the file's order.
    const std::vector<std::string>& names() const { return names_; }
    bool contains(std::string_view name) const {
        return torch_ ? torch_->contains(name) : safetensors_->contains(name);
    }
    std::vector<index_t> shape(std::string_view name) const {
        return torch_ ? torch_->info(name).shape : safetensors_->info(name).shape;
    }
    // The stored element type's name ("float16", "F16", ...), for messages.
    std::string dtype_name(std::string_view name) const {
        if (torch_) return std::string(weft::dtype_name(torch_->info(name).dtype));
        return safetensors_->info(name).dtype_code;
    }
    // True when the stored elements are floating point.
    bool is_floating(std::string_view name) const {
        const std::optional<DType> d = torch_ ? std::optional<DType>(torch_->info(name).dtype)
                                              : safetensors_->info(name).dtype;
        return d && (*d == DType::f16 || *d == DType::bf16 || *d == DType::f32 || *d == DType::f64);
    }

    // A new tensor holding `name` converted to T; the rank must match.
    template <Element T, int Rank>
    Tensor<T, Rank, Cpu> get(std::string_view name) const {
        if (torch_) return torch_->get<T, Rank>(name);
        const SafetensorsInfo& info = safetensors_->info(name);
        WEFT_CHECK(info.dtype.has_value(), where(), ": tensor '", name, "' is ", info.dtype_code,
                   ", which weft does not read");
        WEFT_CHECK(FloatingElement<T> || !is_floating(name), where(), ": tensor '", name, "' holds ",
                   info.dtype_code, "; get<", weft::dtype_name(dtype_of<T>), "> would truncate it");
        switch (*info.dtype) {
            case DType::f32: return converted<T, float, Rank>(name);
            case DType::f64: return converted<T, double, Rank>(name);
            case DType::f16: return converted<T, half, Rank>(name);
            case DType::bf16: return converted<T, bf16, Rank>(name);
            case DType::i64: return converted<T, std::int64_t, Rank>(name);
            case DType::i32: return converted<T, std::int32_t, Rank>(name);
            case DType::u8: return converted<T, std::uint8_t, Rank>(name);
            case DType::b8: return converted<T, bool, Rank>(name);
        }
        WEFT_FAIL(where(), ": tensor '", name, "' has an element type weft does not read");
    }

    std::string where() const { return std::string(format_name(format())) + " '" + path_.string() + "'"; }

private:
    Checkpoint() = default;

    static bool is_zip(const std::filesystem::path& path) {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        WEFT_CHECK(f != nullptr, "checkpoint '", path.string(), "': cannot open (",
                   std::filesystem::exists(path) ? "not readable" : "no such file", ")");
        unsigned char magic[4] = {};
        const std::size_t n = std::fread(magic, 1, 4, f);
        std::fclose(f);
        return n == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
    }

    template <Element T, class U, int Rank>
    Tensor<T, Rank, Cpu> converted(std::string_view name) const {
        if constexpr (std::same_as<T, U>) {
            return safetensors_->get<T, Rank>(name);
        } else {
            const auto src = safetensors_->get<U, Rank>(name);
            Tensor<T, Rank, Cpu> out = Tensor<T, Rank, Cpu>::empty(src.shape());
            const U* s = src.data();
            T* d = out.data();
            for (index_t i = 0, n = src.numel(); i < n; ++i) {
                if constexpr (std::same_as<U, half> || std::same_as<U, bf16>) d[i] = static_cast<T>(float(s[i]));
                else d[i] = static_cast<T>(s[i]);
            }
            return out;
        }
    }

    std::filesystem::path path_;
    std::optional<TorchArchive> torch_;
    std::optional<SafetensorsFile> safetensors_;
    std::vector<std::string> names_;
};

}  // namespace weft
