// weft/io/torch_archive.hpp: reading tensors from PyTorch's zip archives without PyTorch.
//
//   auto a = TorchArchive::open("ViT-B-16.pt");      // torch.save file or TorchScript archive
//   for (const auto& name : a.names()) ...           // "visual.conv1.weight", ...
//   a.info("visual.proj").dtype;                     // DType::f16 (as stored), shape {768, 512}
//   auto w = a.get<float, 2>("visual.proj");         // a new dense [768, 512] float tensor
//
// Both forms are ZIP files (detail/zip.hpp) holding "<prefix>/data.pkl", a pickle
// (detail/pickle.hpp) that describes the tensors, and "<prefix>/data/<key>", one entry per
// storage with its raw little-endian elements. A torch.save archive pickles the saved object (a
// state dict); a TorchScript archive (torch.jit.save, OpenAI's CLIP .pt files) pickles the module
// as a tree of objects whose attribute dicts hold parameters, buffers and submodules. weft names
// every tensor reachable from the root by the dotted path of keys and attributes that leads to
// it, which is the name torch.jit.load(...).state_dict() or the saved dict itself gives it; a
// TorchScript module's plain tensor attributes (not parameters or buffers) are listed as well.
// Code entries (compressed or not) and constants.pkl are never read.
//
// The archive is untrusted input: see docs/torch-archive.md. `open` checks every storage a tensor
// uses (the entry exists, is stored uncompressed, its size is the element count the pickle states,
// lies inside the file) and every view (offset and strides stay inside its storage) before any
// tensor is read; errors are weft::Error naming the file and the tensor or entry.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../core/tensor.hpp"
#include "detail/pickle.hpp"
#include "detail/zip.hpp"

namespace weft {

// What the archive says about one tensor.
struct TorchTensorInfo {
    std::string name;
    DType dtype = DType::f32;        // the storage's element type
    std::vector<index_t> shape;      // [] for a scalar
    std::vector<index_t> strides;    // in elements
    index_t offset = 0;              // into the storage, in elements
    std::string storage_entry;       // "<prefix>/data/<key>"

    int rank() const { return int(shape.size()); }
    index_t numel() const {
        index_t n = 1;
        for (index_t e : shape) n *= e;
        return n;
    }
    // True when the elements are dense and row-major (no gaps, no reordering).
    bool contiguous() const {
        index_t expect = 1;
        for (int d = rank() - 1; d >= 0; --d) {
            if (shape[std::size_t(d)] != 1 && strides[std::size_t(d)] != expect) return false;
            expect *= shape[std::size_t(d)];
        }
        return true;
    }
};

// An open PyTorch archive. Copies share the file; get() may be called from several threads at once.
class TorchArchive {
public:
    enum class Kind { state_dict, torchscript };

    static TorchArchive open(const std::filesystem::path& path) {
        TorchArchive a;
        a.path_ = path;
        a.zip_ = detail::zip::Archive::open(path, "PyTorch archive '" + path.string() + "'");
        const std::string& where = a.zip_.where();

        // The pickle sits at "<prefix>/data.pkl"; torch.save uses the prefix "archive",
        // torch.jit.save the file's stem (so a renamed file keeps its old prefix).
        const detail::zip::Entry* pkl = nullptr;
        for (const auto& e : a.zip_.entries())
            if (e.name.ends_with("/data.pkl") && e.name.find('/') == e.name.size() - 9) {
                pkl = &e;
                break;
            }
        WEFT_CHECK(pkl, where, ": no '<name>/data.pkl' entry: not a torch.save or torch.jit.save archive "
                   "(files from torch older than 1.6 are not ZIP-based and are not supported)");
        a.prefix_ = pkl->name.substr(0, pkl->name.size() - 8);  // keeps the '/'
        WEFT_CHECK(pkl->size <= (std::uint64_t(1) << 31), where, ": entry '", pkl->name, "' is ", pkl->size,
                   " bytes, implausibly large for a pickle");
        const std::string bytes = a.zip_.read_entry(*pkl);
        const auto root = detail::pickle::Unpickler(bytes, where + ", entry '" + pkl->name + "'").load();
        a.kind_ = root->kind == detail::pickle::Value::Kind::object ? Kind::torchscript : Kind::state_dict;
        a.collect(*root, "", 0);
        return a;
    }

    const std::filesystem::path& path() const { return path_; }
    Kind kind() const { return kind_; }

    // Tensor names in the order the archive lists them (a state dict's order).
    const std::vector<std::string>& names() const { return order_; }
    std::size_t size() const { return order_.size(); }
    bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

    const TorchTensorInfo& info(std::string_view name) const {
        const auto it = tensors_.find(name);
        if (it == tensors_.end()) {
            std::string some;
            for (std::size_t k = 0; k < std::min<std::size_t>(order_.size(), 5); ++k)
                some += (k ? ", '" : "'") + order_[k] + "'";
            WEFT_FAIL(zip_.where(), ": no tensor '", name, "' (the archive holds ", order_.size(), " tensors",
                      order_.empty() ? "" : ": ", some, order_.size() > 5 ? ", ..." : "", ")");
        }
        return it->second;
    }

    // A new dense tensor holding tensor `name` converted to T (fp16 -> float and the like, as a
    // cast would). The rank must be Rank; floating-point data is not converted to integers, and
    // only bool data is read as bool.
    template <Element T, int Rank>
    Tensor<T, Rank, Cpu> get(std::string_view name) const {
        const TorchTensorInfo& e = info(name);
        WEFT_CHECK(e.rank() == Rank, zip_.where(), ": tensor '", e.name, "' has shape ", list(e.shape), " (rank ",
                   e.rank(), "), but get asks for rank ", Rank);
        const bool src_float = e.dtype == DType::f32 || e.dtype == DType::f64 || e.dtype == DType::f16 ||
                               e.dtype == DType::bf16;
        WEFT_CHECK(FloatingElement<T> || !src_float, zip_.where(), ": tensor '", e.name, "' holds ",
                   dtype_name(e.dtype), "; get<", dtype_name(dtype_of<T>),
                   "> would truncate it (ask for a floating-point type)");
        constexpr bool want_bool = std::same_as<T, bool>;
        WEFT_CHECK(!want_bool || e.dtype == DType::b8, zip_.where(), ": tensor '", e.name, "' holds ",
                   dtype_name(e.dtype), ", not bool");
        Shape<Rank> shape;
        for (int d = 0; d < Rank; ++d) shape.dims[d] = e.shape[std::size_t(d)];
        // A view with zero strides (an expanded tensor) can be far larger than its storage.
        Tensor<T, Rank, Cpu> out;
        try {
            out = Tensor<T, Rank, Cpu>::empty(shape);
        } catch (const std::bad_alloc&) {
            WEFT_FAIL(zip_.where(), ": tensor '", e.name, "' of shape ", list(e.shape), " (", e.numel(),
                      " elements) does not fit in memory");
        }
        if (e.numel() == 0) return out;

        // Read the span of the storage the view touches, then gather it in row-major order.
        index_t last = e.offset;
        for (int d = 0; d < Rank; ++d) last += (e.shape[std::size_t(d)] - 1) * e.strides[std::size_t(d)];
        const std::size_t es = dtype_size(e.dtype);
        const index_t span = last - e.offset + 1;
        std::vector<unsigned char> raw(std::size_t(span) * es);
        const detail::zip::Entry* se = zip_.find(e.storage_entry);
        zip_.read(raw.data(), raw.size(), zip_.data_offset(*se) + std::uint64_t(e.offset) * es,
                  "tensor '" + e.name + "' (entry '" + e.storage_entry + "')");
        if (e.dtype == DType::b8)
            for (std::size_t k = 0; k < raw.size(); ++k)
                WEFT_CHECK(raw[k] <= 1, zip_.where(), ": bool tensor '", e.name, "' holds byte ", int(raw[k]));
        switch (e.dtype) {
            case DType::f32: gather<float>(e, raw.data(), out.data()); break;
            case DType::f64: gather<double>(e, raw.data(), out.data()); break;
            case DType::f16: gather<half>(e, raw.data(), out.data()); break;
            case DType::bf16: gather<bf16>(e, raw.data(), out.data()); break;
            case DType::i64: gather<std::int64_t>(e, raw.data(), out.data()); break;
            case DType::i32: gather<std::int32_t>(e, raw.data(), out.data()); break;
            case DType::u8: gather<std::uint8_t>(e, raw.data(), out.data()); break;
            case DType::b8: gather<bool>(e, raw.data(), out.data()); break;
        }
        return out;
    }

private:
    TorchArchive() = default;

    static std::string list(const std::vector<index_t>& v) {
        std::string s = "[";
        for (std::size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
        return s + "]";
    }

    // Copies the view's elements (relative to the span's first element) into dst, row-major.
    template <class S, class T>
    static void gather(const TorchTensorInfo& e, const unsigned char* raw, T* dst) {
        const int rank = e.rank();
        std::vector<index_t> idx(std::size_t(rank), 0);
        const index_t n = e.numel();
        index_t src = 0;
        for (index_t k = 0; k < n; ++k) {
            S x;
            std::memcpy(&x, raw + std::size_t(src) * sizeof(S), sizeof(S));
            if constexpr (std::same_as<T, bool>) dst[k] = bool(x);
            else if constexpr (std::same_as<S, bool>) dst[k] = convert<T>(std::uint8_t(x));
            else dst[k] = convert<T>(x);
            for (int d = rank - 1; d >= 0; --d) {  // odometer increment
                const auto du = std::size_t(d);
                src += e.strides[du];
                if (++idx[du] < e.shape[du]) break;
                src -= e.strides[du] * e.shape[du];
                idx[du] = 0;
            }
        }
    }

    void collect(const detail::pickle::Value& v, const std::string& path, int depth) {
        using K = detail::pickle::Value::Kind;
        WEFT_CHECK(depth < 200, zip_.where(), ": objects nest deeper than 200 levels at '", path, "'");
        // Memo references let a small pickle describe a graph with exponentially many paths.
        WEFT_CHECK(++visits_ <= (std::size_t(1) << 20), zip_.where(), ": the pickle's object graph has more "
                   "than 2^20 paths to walk (a crafted file?)");
        auto child = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
        switch (v.kind) {
            case K::tensor: add(path, *v.tensor); break;
            case K::dict:
            case K::object:
                for (const auto& [k, x] : v.entries) {
                    if (k->kind == K::string) collect(*x, child(k->s), depth + 1);
                    else if (k->kind == K::integer) collect(*x, child(std::to_string(k->i)), depth + 1);
                }
                break;
            case K::list:
            case K::tuple:
                for (std::size_t k = 0; k < v.items.size(); ++k) collect(*v.items[k], child(std::to_string(k)), depth + 1);
                break;
            default: break;  // numbers, strings, flags: module attributes that are not tensors
        }
    }

    void add(const std::string& name, const detail::pickle::TensorRecord& r) {
        const std::string& where = zip_.where();
        const std::string tensor = where + ": tensor '" + name + "'";
        TorchTensorInfo info;
        info.name = name;
        info.dtype = r.storage->dtype;
        info.offset = r.offset;
        info.shape.assign(r.shape.begin(), r.shape.end());
        info.strides.assign(r.strides.begin(), r.strides.end());
        info.storage_entry = prefix_ + "data/" + r.storage->key;

        const detail::zip::Entry* se = zip_.find(info.storage_entry);
        WEFT_CHECK(se, tensor, ": its storage entry '", info.storage_entry, "' is missing from the archive");
        const std::uint64_t es = dtype_size(info.dtype);
        WEFT_CHECK(r.storage->numel <= (std::uint64_t(1) << 62) / es && se->size == r.storage->numel * es, tensor,
                   ": storage entry '", info.storage_entry, "' holds ", se->size, " bytes, but the pickle says it has ",
                   r.storage->numel, " elements of ", r.storage->type_name, " (", r.storage->numel * es,
                   " bytes): wrong storage size");
        zip_.data_offset(*se);  // stored, inside the file

        WEFT_CHECK(r.offset >= 0, tensor, ": negative storage offset ", r.offset);
        std::uint64_t last = std::uint64_t(r.offset);
        bool empty = false, overflow = false;
        std::uint64_t numel = 1;
        for (std::size_t d = 0; d < r.shape.size(); ++d) {
            WEFT_CHECK(r.shape[d] >= 0 && r.strides[d] >= 0, tensor, ": shape ", list(info.shape), " with strides ",
                       list(info.strides), " has a negative entry");
            if (r.shape[d] == 0) empty = true;
            std::uint64_t reach = 0;
            overflow |= __builtin_mul_overflow(std::uint64_t(std::max<std::int64_t>(r.shape[d] - 1, 0)),
                                               std::uint64_t(r.strides[d]), &reach);
            overflow |= __builtin_add_overflow(last, reach, &last);
            overflow |= __builtin_mul_overflow(numel, std::uint64_t(r.shape[d]), &numel);
        }
        // Stride-0 views can be far larger than their storage; 2^48 elements is beyond any memory.
        WEFT_CHECK(!overflow && numel < (std::uint64_t(1) << 48), tensor, ": shape ", list(info.shape),
                   " with strides ", list(info.strides), " overflows 64-bit sizes or offsets");
        WEFT_CHECK(empty || last < r.storage->numel, tensor, ": shape ", list(info.shape), ", strides ",
                   list(info.strides), " and offset ", r.offset, " reach element ", last, " of a storage of ",
                   r.storage->numel, " elements");
        const auto [it, fresh] = tensors_.emplace(name, std::move(info));
        WEFT_CHECK(fresh, where, ": two tensors are named '", name, "'");
        order_.push_back(name);
    }

    std::filesystem::path path_;
    detail::zip::Archive zip_;
    std::string prefix_;
    Kind kind_ = Kind::state_dict;
    std::map<std::string, TorchTensorInfo, std::less<>> tensors_;
    std::vector<std::string> order_;
    std::size_t visits_ = 0;  // values walked by collect()
};

}  // namespace weft
