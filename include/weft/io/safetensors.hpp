// weft/io/safetensors.hpp: reading and writing safetensors files (checkpoints, optimizer state).
//
//   save_safetensors("model.safetensors", {{"fc.weight", w}, {"fc.bias", b}}, {{"step", "100"}});
//   auto f = SafetensorsFile::open("model.safetensors");
//   auto w2 = f.get<float, 2>("fc.weight");          // a new [out, in] tensor
//   f.get_into("fc.bias", b);                        // fills an existing tensor, shape checked
//
// The format (github.com/huggingface/safetensors): an 8-byte little-endian header length N, N
// bytes of UTF-8 JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin,
// end]} (plus an optional "__metadata__" object of strings), then the data buffer: the tensors,
// dense, row-major, little-endian, at those offsets counted from the first byte after the header.
//
// A file is untrusted input. `open` reads only the header and checks every number in it against
// the file before any tensor is read: see docs/io.md for the list. Each error is a weft::Error
// naming the file and, where there is one, the tensor. Tensors are read with pread() from the
// descriptor `open` made, so a file replaced on disk after `open` (an atomic save) keeps reading
// the version that was checked. Writing goes to "<path>.tmp", is fsync'ed, then renamed over
// <path>: a crash or a full disk leaves the previous file as it was.
//
// POSIX only (open/pread/fsync/rename); little-endian hosts only.
#pragma once

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/dtype.hpp"
#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../core/storage.hpp"
#include "../core/tensor.hpp"
#include "detail/json.hpp"

namespace weft {

static_assert(std::endian::native == std::endian::little,
              "weft: safetensors files are little-endian and weft reads and writes them without byte "
              "swapping; a big-endian host is not supported");
static_assert(sizeof(bool) == 1, "weft: BOOL tensors are stored as one byte per element");

namespace detail::safetensors {

// Every fixed-size dtype the safetensors format defines, in the reference implementation's
// order of increasing alignment (its writer sorts by this rank, descending, then by name).
// `weft` is the element type weft reads it as; the others are recognised so that a file using
// them still opens (their sizes are checked) and only get() of such a tensor fails.
struct DTypeCode {
    std::string_view code;
    std::size_t size;
    int rank;
    std::optional<DType> weft;
};

inline constexpr DTypeCode dtype_codes[] = {
    {"BOOL", 1, 0, DType::b8},     {"U8", 1, 1, DType::u8},     {"I8", 1, 2, std::nullopt},
    {"F8_E5M2", 1, 3, std::nullopt}, {"F8_E4M3", 1, 4, std::nullopt}, {"I16", 2, 5, std::nullopt},
    {"U16", 2, 6, std::nullopt},   {"F16", 2, 7, DType::f16},   {"BF16", 2, 8, DType::bf16},
    {"I32", 4, 9, DType::i32},     {"U32", 4, 10, std::nullopt}, {"F32", 4, 11, DType::f32},
    {"F64", 8, 12, DType::f64},    {"I64", 8, 13, DType::i64},  {"U64", 8, 14, std::nullopt},
};

inline const DTypeCode* find_code(std::string_view code) {
    for (const auto& c : dtype_codes)
        if (c.code == code) return &c;
    return nullptr;
}

inline const DTypeCode& code_of(DType d) {
    for (const auto& c : dtype_codes)
        if (c.weft == d) return c;
    WEFT_FAIL("safetensors: no dtype code for ", dtype_name(d));
}

// The reference implementation's limit: larger headers are refused before they are read.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

inline std::string quoted(const std::filesystem::path& p) {
    std::string s = p.string();  // (not "'" + s + "'": GCC 12 warns falsely on that, -Wrestrict)
    s.insert(s.begin(), '\'');
    s += '\'';
    return s;
}

template <class Ints>
std::string list_str(const Ints& v) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    os << ']';
    return os.str();
}

inline std::string errno_str(int err) { return std::strerror(err); }

// A file descriptor closed when the last SafetensorsFile copy that uses it goes away.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// Reads exactly `n` bytes at `offset`; false with errno set (0 for end of file) otherwise.
inline bool pread_all(int fd, void* dst, std::uint64_t n, std::uint64_t offset) {
    auto* p = static_cast<unsigned char*>(dst);
    while (n > 0) {
        const std::size_t chunk = std::size_t(std::min<std::uint64_t>(n, std::uint64_t(1) << 30));
        const ssize_t got = ::pread(fd, p, chunk, off_t(offset));
        if (got < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (got == 0) {
            errno = 0;
            return false;
        }
        p += got;
        n -= std::uint64_t(got);
        offset += std::uint64_t(got);
    }
    return true;
}

}  // namespace detail::safetensors

// What a safetensors header says about one tensor.
struct SafetensorsInfo {
    std::string name;
    std::string dtype_code;        // as in the header: "F32", "BF16", "I8", ...
    std::optional<DType> dtype;    // weft's element type; empty for codes weft has none for (I8, U16, ...)
    std::vector<index_t> shape;    // [] for a scalar
    std::uint64_t begin = 0;       // byte range [begin, end) in the data buffer
    std::uint64_t end = 0;

    int rank() const { return int(shape.size()); }
    index_t numel() const {
        index_t n = 1;
        for (index_t e : shape) n *= e;
        return n;
    }
    std::uint64_t nbytes() const { return end - begin; }
    std::string shape_str() const { return detail::safetensors::list_str(shape); }
};

// An open safetensors file: its validated header, and a descriptor to read tensors through.
// Copies share the descriptor. get() and get_into() may be called from several threads at once.
class SafetensorsFile {
public:
    // Opens `path` and validates its header against the file's size; throws weft::Error naming
    // the file (and the tensor) on anything malformed or truncated.
    static SafetensorsFile open(const std::filesystem::path& path) {
        namespace st = detail::safetensors;
        SafetensorsFile f;
        f.path_ = path;
        const std::string where = "safetensors file " + st::quoted(path);

        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below);
        // it changes nothing for regular files.
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            const int err = errno;
            WEFT_FAIL(where, ": cannot open: ", st::errno_str(err));
        }
        f.fd_ = std::make_shared<st::Fd>(fd);

        struct stat sb {};
        if (::fstat(fd, &sb) != 0) {
            const int err = errno;
            WEFT_FAIL(where, ": cannot stat: ", st::errno_str(err));
        }
        WEFT_CHECK(S_ISREG(sb.st_mode), where, ": not a regular file");
        const std::uint64_t file_size = std::uint64_t(sb.st_size);

        WEFT_CHECK(file_size >= 8, where, ": the file is ", file_size,
                   " bytes, too short for the 8-byte header length (truncated, or not a safetensors file)");
        unsigned char len_bytes[8];
        f.read_or_fail(len_bytes, 8, 0, "the header length");
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];

        WEFT_CHECK(n <= st::max_header_bytes, where, ": header length ", n, " exceeds the ",
                   st::max_header_bytes, "-byte limit (corrupt length, or not a safetensors file)");
        WEFT_CHECK(n <= file_size - 8, where, ": header length ", n, " runs past the end of the file (",
                   file_size, " bytes, so at most ", file_size - 8, " header bytes): truncated file");
        WEFT_CHECK(n >= 2, where, ": a header of ", n, " bytes cannot hold a JSON object");

        std::string header(std::size_t(n), '\0');
        f.read_or_fail(header.data(), n, 8, "the header");
        WEFT_CHECK(header[0] == '{', where, ": the header does not start with '{' (not a safetensors file?)");

        f.data_offset_ = 8 + n;
        f.data_size_ = file_size - 8 - n;
        f.parse_header(header, where);
        return f;
    }

    const std::filesystem::path& path() const { return path_; }

    // Tensor names, sorted.
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        out.reserve(entries_.size());
        for (const auto& [name, info] : entries_) out.push_back(name);
        return out;
    }
    std::size_t size() const { return entries_.size(); }
    bool contains(std::string_view name) const { return entries_.find(name) != entries_.end(); }

    // The "__metadata__" strings (empty when the file has none).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // The dtype, shape and byte range of one tensor; throws naming the file if it has no such tensor.
    const SafetensorsInfo& info(std::string_view name) const {
        const auto it = entries_.find(name);
        if (it == entries_.end()) missing(name);
        return it->second;
    }

    // The file offset of the data buffer (8 + the header length).
    std::uint64_t data_offset() const { return data_offset_; }

    // A new dense tensor holding tensor `name`. Its dtype must be T's and its rank Rank exactly;
    // the error says what the file holds and what was asked for.
    template <Element T, int Rank>
    Tensor<T, Rank, Cpu> get(std::string_view name) const {
        const SafetensorsInfo& e = info(name);
        check_type<T, Rank>(e, "get<" + type_str<T, Rank>() + ">");
        const Shape<Rank> shape = Shape<Rank>::from_array(e.shape);
        auto t = Tensor<T, Rank, Cpu>::empty(shape);
        read_tensor(e, t.data());
        return t;
    }

    // Copies tensor `name` into `dst` (any strides; a view into a larger tensor works) after
    // checking dtype and shape. On any error `dst` is left unchanged.
    template <Element T, int Rank>
    void get_into(std::string_view name, const Tensor<T, Rank, Cpu>& dst) const {
        const SafetensorsInfo& e = info(name);
        check_type<T, Rank>(e, "get_into");
        WEFT_CHECK(dst.defined(), where(), ": get_into(\"", e.name,
                   "\"): the destination tensor is undefined");
        const Shape<Rank> shape = Shape<Rank>::from_array(e.shape);
        WEFT_CHECK(shape == dst.shape(), where(), ": tensor '", e.name, "' has shape ", shape,
                   ", but the destination has shape ", dst.shape());
        // Read into a temporary first, so that a read error cannot leave dst half written.
        auto tmp = Tensor<T, Rank, Cpu>::empty(shape);
        read_tensor(e, tmp.data());
        dst.copy_from(tmp);
    }

private:
    SafetensorsFile() = default;

    std::string where() const { return "safetensors file " + detail::safetensors::quoted(path_); }

    [[noreturn]] void missing(std::string_view name) const {
        std::ostringstream os;
        std::size_t shown = 0;
        for (const auto& [n, info] : entries_) {
            if (shown == 5) {
                os << ", ...";
                break;
            }
            os << (shown++ ? ", '" : "'") << n << "'";
        }
        WEFT_FAIL(where(), ": no tensor '", name, "' (the file holds ", entries_.size(), " tensors",
                  entries_.empty() ? "" : ": ", os.str(), ")");
    }

    template <Element T, int Rank>
    static std::string type_str() {
        return std::string(dtype_name(dtype_of<T>)) + ", " + std::to_string(Rank);
    }

    template <Element T, int Rank>
    void check_type(const SafetensorsInfo& e, const std::string& call) const {
        WEFT_CHECK(e.dtype.has_value(), where(), ": tensor '", e.name, "' has dtype ", e.dtype_code,
                   ", which weft has no element type for");
        WEFT_CHECK(*e.dtype == dtype_of<T>, where(), ": tensor '", e.name, "' is ", e.dtype_code, " (",
                   dtype_name(*e.dtype), ") with shape ", e.shape_str(), ", but ", call, " asks for ",
                   dtype_name(dtype_of<T>));
        WEFT_CHECK(e.rank() == Rank, where(), ": tensor '", e.name, "' has shape ", e.shape_str(), " (rank ",
                   e.rank(), "), but ", call, " asks for rank ", Rank);
    }

    void read_or_fail(void* dst, std::uint64_t n, std::uint64_t offset, std::string_view what) const {
        if (detail::safetensors::pread_all(fd_->fd, dst, n, offset)) return;
        const int err = errno;
        if (err == 0)
            WEFT_FAIL(where(), ": the file ended while reading ", what,
                      " (it was truncated, or changed since open)");
        WEFT_FAIL(where(), ": cannot read ", what, ": ", detail::safetensors::errno_str(err));
    }

    void read_tensor(const SafetensorsInfo& e, void* dst) const {
        read_or_fail(dst, e.nbytes(), data_offset_ + e.begin, "tensor '" + e.name + "'");
        if (e.dtype == DType::b8) {
            // Any byte but 0 and 1 is not a bool; reading it as one would be undefined.
            const auto* bytes = static_cast<const unsigned char*>(dst);
            for (std::uint64_t i = 0; i < e.nbytes(); ++i)
                WEFT_CHECK(bytes[i] <= 1, where(), ": BOOL tensor '", e.name, "' holds byte ", int(bytes[i]),
                           " at element ", i, " (only 0 and 1 are booleans)");
        }
    }

    void parse_header(std::string_view header, const std::string& where) {
        namespace json = detail::json;
        namespace st = detail::safetensors;
        using Kind = json::Value::Kind;

        const json::Value root = json::Parser(header, where).parse_document();
        WEFT_CHECK(root.kind == Kind::object, where, ": the header is ", root.kind_name(), ", not an object");

        std::vector<const SafetensorsInfo*> order;
        for (const auto& [key, value] : root.members) {
            if (key == "__metadata__") {
                WEFT_CHECK(value.kind == Kind::object, where, ": \"__metadata__\" is ", value.kind_name(),
                           ", not an object of strings");
                for (const auto& [mk, mv] : value.members) {
                    WEFT_CHECK(mv.kind == Kind::string, where, ": metadata key '", mk, "' has ",
                               mv.kind_name(), " as its value; safetensors metadata values are strings");
                    metadata_.emplace(mk, mv.text);
                }
                continue;
            }
            const std::string tensor = where + ": tensor '" + key + "'";
            WEFT_CHECK(value.kind == Kind::object, tensor, ": its entry is ", value.kind_name(),
                       ", not an object with dtype, shape and data_offsets");

            const json::Value *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
            for (const auto& [field, v] : value.members) {
                if (field == "dtype") dtype = &v;
                else if (field == "shape") shape = &v;
                else if (field == "data_offsets") offsets = &v;
                else WEFT_FAIL(tensor, ": unknown field '", field, "' (expected dtype, shape, data_offsets)");
            }
            WEFT_CHECK(dtype, tensor, ": missing \"dtype\"");
            WEFT_CHECK(shape, tensor, ": missing \"shape\"");
            WEFT_CHECK(offsets, tensor, ": missing \"data_offsets\"");

            SafetensorsInfo info;
            info.name = key;

            WEFT_CHECK(dtype->kind == Kind::string, tensor, ": \"dtype\" is ", dtype->kind_name(),
                       ", not a string");
            const st::DTypeCode* code = st::find_code(dtype->text);
            if (!code) {
                std::ostringstream known;
                for (const auto& c : st::dtype_codes) known << ' ' << c.code;
                WEFT_FAIL(tensor, ": unknown dtype '", dtype->text, "' (known:", known.str(), ")");
            }
            info.dtype_code = dtype->text;
            info.dtype = code->weft;

            // Extents: plain integers; the product (and that times the element size) must not
            // overflow, and the product of the non-zero extents must fit index_t so that strides do.
            WEFT_CHECK(shape->kind == Kind::array, tensor, ": \"shape\" is ", shape->kind_name(),
                       ", not an array");
            std::uint64_t numel = 1, nonzero = 1;
            bool overflow = false;
            for (const json::Value& x : shape->items) {
                std::uint64_t extent = 0;
                WEFT_CHECK(
                    json::to_u64(x, extent) && extent <= std::uint64_t(std::numeric_limits<index_t>::max()),
                    tensor, ": shape entry ", x.kind == Kind::number ? x.text : x.kind_name(),
                    " is not an extent (a non-negative integer below 2^63)");
                info.shape.push_back(index_t(extent));
                if (extent != 0)
                    overflow |= __builtin_mul_overflow(nonzero, extent, &nonzero) ||
                                nonzero > std::uint64_t(std::numeric_limits<index_t>::max());
                numel = extent == 0 || numel == 0 ? 0 : numel * extent;  // exact when !overflow
            }
            std::uint64_t nbytes = 0;
            overflow |= __builtin_mul_overflow(numel, std::uint64_t(code->size), &nbytes);
            WEFT_CHECK(!overflow, tensor, ": shape ", info.shape_str(), " with dtype ", info.dtype_code,
                       " overflows 64-bit sizes");

            WEFT_CHECK(offsets->kind == Kind::array && offsets->items.size() == 2, tensor,
                       ": \"data_offsets\" must be an array [begin, end] of two integers");
            for (int i = 0; i < 2; ++i) {
                const json::Value& x = offsets->items[std::size_t(i)];
                std::uint64_t& dst = i == 0 ? info.begin : info.end;
                WEFT_CHECK(json::to_u64(x, dst), tensor, ": data_offsets entry ",
                           x.kind == Kind::number ? x.text : x.kind_name(),
                           " is not a byte offset (a non-negative integer below 2^64)");
            }
            WEFT_CHECK(info.begin <= info.end, tensor, ": data_offsets [", info.begin, ", ", info.end,
                       "] end before they begin");
            WEFT_CHECK(info.end - info.begin == nbytes, tensor, ": data_offsets [", info.begin, ", ",
                       info.end, "] span ", info.end - info.begin, " bytes, but dtype ", info.dtype_code,
                       " and shape ", info.shape_str(), " need ", nbytes);
            WEFT_CHECK(info.end <= data_size_, tensor, ": data_offsets [", info.begin, ", ", info.end,
                       "] run past the end of the data buffer, which holds ", data_size_,
                       " bytes: truncated file");

            auto [it, inserted] = entries_.emplace(key, std::move(info));
            WEFT_CHECK(inserted, where, ": duplicate tensor '", key, "'");  // the parser catches these first
            order.push_back(&it->second);
        }

        // The reference implementation requires the tensors to tile the data buffer exactly: in
        // offset order each one starts where the previous ended, and the last ends at the end of
        // the file. So do we: no overlaps (two names for the same bytes), no gaps, no trailing bytes.
        std::sort(order.begin(), order.end(), [](const SafetensorsInfo* a, const SafetensorsInfo* b) {
            if (a->begin != b->begin) return a->begin < b->begin;
            return a->end != b->end ? a->end < b->end : a->name < b->name;
        });
        std::uint64_t covered = 0;
        const SafetensorsInfo* prev = nullptr;
        for (const SafetensorsInfo* e : order) {
            if (e->begin < covered)
                WEFT_FAIL(where, ": tensors '", prev->name, "' [", prev->begin, ", ", prev->end, ") and '",
                          e->name, "' [", e->begin, ", ", e->end, ") overlap in the data buffer");
            if (e->begin > covered)
                WEFT_FAIL(where, ": bytes [", covered, ", ", e->begin,
                          ") of the data buffer belong to no tensor (a gap ",
                          prev ? "after tensor '" + prev->name + "'" : std::string("at the start"),
                          ", before tensor '", e->name, "')");
            covered = e->end;
            prev = e;
        }
        WEFT_CHECK(covered == data_size_, where, ": ", data_size_ - covered,
                   " bytes follow the last tensor's data (the data buffer holds ", data_size_,
                   " bytes, the tensors cover ", covered, ")");
    }

    std::filesystem::path path_;
    std::shared_ptr<detail::safetensors::Fd> fd_;
    std::map<std::string, SafetensorsInfo, std::less<>> entries_;
    std::map<std::string, std::string> metadata_;
    std::uint64_t data_offset_ = 0;
    std::uint64_t data_size_ = 0;
};

// A named, dense, row-major view of tensor bytes to write: what save_safetensors takes. Made
// from any CPU tensor (a non-contiguous one is copied into a dense tensor that this keeps alive),
// or from raw bytes for callers with their own buffers (then they keep `data` alive).
struct SafetensorsEntry {
    std::string name;
    DType dtype = DType::f32;
    std::vector<index_t> shape;
    const void* data = nullptr;
    std::size_t nbytes = 0;
    Storage<Cpu> keep;  // the elements' storage (a dense copy if the tensor was strided), kept alive
    bool undefined = false;  // made from an undefined (default-constructed) tensor: save refuses it

    SafetensorsEntry(std::string name_, DType dtype_, std::vector<index_t> shape_, const void* data_,
              std::size_t nbytes_)
        : name(std::move(name_)), dtype(dtype_), shape(std::move(shape_)), data(data_), nbytes(nbytes_) {}

    template <Element T, int Rank, Device D>
    SafetensorsEntry(std::string name_, const Tensor<T, Rank, D>& t) : name(std::move(name_)), dtype(dtype_of<T>) {
        static_assert(std::same_as<D, Cpu>,
                      "weft: save_safetensors writes host memory; copy a CUDA tensor with .to<Cpu>() first");
        if (!t.defined()) {  // reported by save_safetensors, which knows the path
            undefined = true;
            return;
        }
        const Tensor<T, Rank, Cpu> dense = t.contiguous();
        keep = dense.storage();  // so the ref stays valid whatever happens to `t`
        shape.assign(dense.shape().dims, dense.shape().dims + Rank);
        data = dense.data();
        nbytes = std::size_t(dense.numel()) * sizeof(T);
    }
};

namespace detail::safetensors {

// Collects writes into 1 MiB blocks (a checkpoint has hundreds of small tensors); large
// tensors go straight to write().
class FileWriter {
public:
    explicit FileWriter(int fd) : fd_(fd) { buf_.reserve(capacity); }

    // False with errno set on failure.
    bool put(const void* p, std::size_t n) {
        if (buf_.size() + n > capacity && !flush()) return false;
        if (n >= capacity) return write_all(p, n);
        const auto* c = static_cast<const char*>(p);
        buf_.insert(buf_.end(), c, c + n);
        return true;
    }
    bool flush() {
        const bool ok = write_all(buf_.data(), buf_.size());
        buf_.clear();
        return ok;
    }

private:
    static constexpr std::size_t capacity = std::size_t(1) << 20;

    bool write_all(const void* p, std::size_t n) {
        const auto* c = static_cast<const char*>(p);
        while (n > 0) {
            const ssize_t put = ::write(fd_, c, std::min<std::size_t>(n, std::size_t(1) << 30));
            if (put < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            c += put;
            n -= std::size_t(put);
        }
        return true;
    }

    int fd_;
    std::vector<char> buf_;
};

}  // namespace detail::safetensors

// Writes `tensors` and `metadata` to `path` as a safetensors file, atomically: the bytes go to
// "<path>.tmp", which is fsync'ed and then renamed over `path`. Tensors are laid out as the
// reference implementation does (descending alignment, then name), so each starts aligned to
// its element size; the header is padded with spaces to a multiple of 8 bytes. Any error throws
// weft::Error naming the path (and tensor), removes the temporary file, and leaves a previous
// file at `path` untouched.
inline void save_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsEntry>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
    namespace st = detail::safetensors;
    namespace json = detail::json;
    const std::string where = "save_safetensors(" + st::quoted(path) + ")";

    // Check everything and build the header before touching the disk.
    std::vector<const SafetensorsEntry*> order;
    order.reserve(tensors.size());
    for (const SafetensorsEntry& t : tensors) {
        const std::string tensor = where + ": tensor '" + t.name + "'";
        WEFT_CHECK(!t.undefined, tensor, " is undefined (a default-constructed tensor)");
        WEFT_CHECK(t.name != "__metadata__", tensor, ": the name is reserved for the metadata");
        WEFT_CHECK(json::valid_utf8(t.name), where, ": a tensor name is not valid UTF-8");
        std::uint64_t numel = 1;
        bool overflow = false;
        for (index_t e : t.shape) {
            WEFT_CHECK(e >= 0, tensor, ": negative extent in shape ", st::list_str(t.shape));
            overflow |= __builtin_mul_overflow(numel, std::uint64_t(e), &numel);
        }
        std::uint64_t nbytes = 0;
        overflow |= __builtin_mul_overflow(numel, std::uint64_t(dtype_size(t.dtype)), &nbytes);
        WEFT_CHECK(!overflow && nbytes == t.nbytes, tensor, ": ", t.nbytes, " bytes given, but shape ",
                   st::list_str(t.shape), " of ", dtype_name(t.dtype), " needs ",
                   overflow ? std::string("more than 2^64") : std::to_string(nbytes));
        WEFT_CHECK(t.data || t.nbytes == 0, tensor, ": no data");
        order.push_back(&t);
    }
    for (const auto& [k, v] : metadata)
        WEFT_CHECK(json::valid_utf8(k) && json::valid_utf8(v), where, ": metadata key '", k,
                   "' or its value is not valid UTF-8");
    std::sort(order.begin(), order.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
        const int ra = st::code_of(a->dtype).rank, rb = st::code_of(b->dtype).rank;
        return ra != rb ? ra > rb : a->name < b->name;
    });
    {
        std::vector<std::string_view> names;
        for (const SafetensorsEntry* t : order) names.push_back(t->name);
        std::sort(names.begin(), names.end());
        const auto dup = std::adjacent_find(names.begin(), names.end());
        WEFT_CHECK(dup == names.end(), where, ": duplicate tensor '", dup == names.end() ? "" : *dup, "'");
    }

    std::string header = "{";
    if (!metadata.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : metadata) {
            if (!first) header += ',';
            first = false;
            json::write_string(header, k);
            header += ':';
            json::write_string(header, v);
        }
        header += '}';
    }
    std::uint64_t offset = 0;
    for (const SafetensorsEntry* t : order) {
        if (header.size() > 1) header += ',';
        json::write_string(header, t->name);
        header += ":{\"dtype\":\"";
        header += st::code_of(t->dtype).code;
        header += "\",\"shape\":[";
        for (std::size_t i = 0; i < t->shape.size(); ++i) {
            if (i) header += ',';
            header += std::to_string(t->shape[i]);
        }
        header += "],\"data_offsets\":[";
        header += std::to_string(offset);
        header += ',';
        offset += t->nbytes;
        header += std::to_string(offset);
        header += "]}";
    }
    header += '}';
    header.append((8 - header.size() % 8) % 8, ' ');
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; ++i)
        len_bytes[i] = static_cast<unsigned char>(std::uint64_t(header.size()) >> (8 * i));

    std::filesystem::path tmp = path;
    tmp += ".tmp";
    const std::string tmp_name = st::quoted(tmp);

    // A "<path>.tmp" left by a crash is replaced; a directory there is someone else's.
    struct stat sb {};
    if (::lstat(tmp.c_str(), &sb) == 0) {
        WEFT_CHECK(!S_ISDIR(sb.st_mode), where, ": the temporary file ", tmp_name,
                   " is in the way (it is a directory); nothing was written");
        ::unlink(tmp.c_str());
    }
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        const int err = errno;
        WEFT_FAIL(where, ": cannot create the temporary file ", tmp_name, ": ", st::errno_str(err),
                  "; nothing was written");
    }
    auto give_up = [&](const char* what, int err, bool close_fd) {
        if (close_fd) ::close(fd);
        ::unlink(tmp.c_str());
        WEFT_FAIL(where, ": ", what, " ", tmp_name, " failed: ", st::errno_str(err),
                  "; the temporary file was removed and any previous file at the path is unchanged");
    };

    st::FileWriter out(fd);
    bool ok = out.put(len_bytes, 8) && out.put(header.data(), header.size());
    for (std::size_t i = 0; ok && i < order.size(); ++i) ok = out.put(order[i]->data, order[i]->nbytes);
    ok = ok && out.flush();
    if (!ok) give_up("writing", errno, true);
    if (::fsync(fd) != 0) give_up("fsync of", errno, true);
    if (::close(fd) != 0) give_up("closing", errno, false);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        WEFT_FAIL(where, ": renaming ", tmp_name, " over the path failed: ", st::errno_str(err),
                  "; the temporary file was removed and any previous file at the path is unchanged");
    }
    // Make the rename itself durable; some file systems refuse fsync on a directory, which only
    // costs durability of the name on a power cut, never a half-written file.
    std::filesystem::path dir = path.parent_path();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace weft
