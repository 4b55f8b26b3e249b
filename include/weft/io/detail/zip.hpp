// weft/io/detail/zip.hpp: the central directory of a ZIP file and reads of its stored entries.
//
// What PyTorch writes (its miniz-based writer): entries stored uncompressed (method 0) for
// pickles and tensor data, some code entries deflated (method 8), ZIP64 records once the archive
// or an entry passes 4 GiB. This reader takes the central directory as the truth (local headers
// are read only to find where an entry's bytes start), checks every offset and size against the
// file before reading, and reads only stored entries: a deflated entry can be listed, and asking
// for its bytes is an error that says so. The file is untrusted input: any malformed or
// truncated structure is a weft::Error naming the file (and the entry), never a crash.
//
// POSIX only (open/pread); little-endian hosts only (ZIP integers are little-endian).
#pragma once

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/error.hpp"

namespace weft::detail::zip {

static_assert(std::endian::native == std::endian::little,
              "weft: the ZIP reader reads little-endian integers without byte swapping; a big-endian "
              "host is not supported");

// One central-directory record.
struct Entry {
    std::string name;
    std::uint16_t method = 0;          // 0 stored, 8 deflate, ...
    std::uint64_t compressed_size = 0;
    std::uint64_t size = 0;            // uncompressed
    std::uint64_t local_offset = 0;    // of the local file header
};

inline std::uint16_t u16(const unsigned char* p) { return std::uint16_t(p[0] | (p[1] << 8)); }
inline std::uint32_t u32(const unsigned char* p) {
    return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) |
           (std::uint32_t(p[3]) << 24);
}
inline std::uint64_t u64(const unsigned char* p) { return std::uint64_t(u32(p)) | (std::uint64_t(u32(p + 4)) << 32); }

inline constexpr std::uint32_t sig_local = 0x04034b50, sig_central = 0x02014b50, sig_eocd = 0x06054b50,
                               sig_zip64_locator = 0x07064b50, sig_zip64_eocd = 0x06064b50;

// An open ZIP file. Copies share the descriptor; reads use pread() and may run concurrently.
class Archive {
public:
    Archive() = default;  // no file; open() makes a usable one

    // Opens `path` and reads its central directory. `what` names the file in errors
    // ("PyTorch archive 'x.pt'").
    static Archive open(const std::filesystem::path& path, std::string what) {
        Archive a;
        a.where_ = std::move(what);
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            const int err = errno;
            WEFT_FAIL(a.where_, ": cannot open: ", std::strerror(err));
        }
        a.fd_ = std::shared_ptr<int>(new int(fd), [](int* f) {
            ::close(*f);
            delete f;
        });
        struct stat sb {};
        if (::fstat(fd, &sb) != 0) {
            const int err = errno;
            WEFT_FAIL(a.where_, ": cannot stat: ", std::strerror(err));
        }
        WEFT_CHECK(S_ISREG(sb.st_mode), a.where_, ": not a regular file");
        a.file_size_ = std::uint64_t(sb.st_size);
        a.read_directory();
        return a;
    }

    const std::string& where() const { return where_; }
    std::uint64_t file_size() const { return file_size_; }

    // Entry names in archive order.
    const std::vector<Entry>& entries() const { return entries_; }
    const Entry* find(std::string_view name) const {
        const auto it = index_.find(name);
        return it == index_.end() ? nullptr : &entries_[it->second];
    }

    // The file offset of a stored entry's first byte, after checking that all `e.size` bytes lie
    // inside the file. Compressed entries are refused: weft has no inflater, and PyTorch never
    // compresses pickles or tensor data.
    std::uint64_t data_offset(const Entry& e) const {
        WEFT_CHECK(e.method == 0, where_, ": entry '", e.name, "' is compressed (ZIP method ", e.method,
                   "); weft reads only stored entries, which is how PyTorch writes pickles and tensor "
                   "data (was the archive re-zipped by another tool?)");
        WEFT_CHECK(e.compressed_size == e.size, where_, ": stored entry '", e.name, "' has compressed size ",
                   e.compressed_size, " but size ", e.size);
        unsigned char h[30];
        WEFT_CHECK(e.local_offset <= file_size_ && file_size_ - e.local_offset >= 30, where_, ": entry '",
                   e.name, "': its local header at offset ", e.local_offset, " lies past the end of the file (",
                   file_size_, " bytes): truncated or corrupt archive");
        read(h, 30, e.local_offset, "the local header of '" + e.name + "'");
        WEFT_CHECK(u32(h) == sig_local, where_, ": entry '", e.name, "': no local file header at offset ",
                   e.local_offset, " (corrupt central directory)");
        const std::uint64_t start = e.local_offset + 30 + u16(h + 26) + u16(h + 28);
        WEFT_CHECK(start <= file_size_ && file_size_ - start >= e.size, where_, ": entry '", e.name, "' (",
                   e.size, " bytes at offset ", start, ") runs past the end of the file (", file_size_,
                   " bytes): truncated archive");
        return start;
    }

    // All bytes of a stored entry.
    std::string read_entry(const Entry& e) const {
        const std::uint64_t at = data_offset(e);
        std::string out(std::size_t(e.size), '\0');
        read(out.data(), e.size, at, "entry '" + e.name + "'");
        return out;
    }

    // Reads exactly n bytes at offset or throws naming `what`.
    void read(void* dst, std::uint64_t n, std::uint64_t offset, const std::string& what) const {
        auto* p = static_cast<unsigned char*>(dst);
        while (n > 0) {
            const std::size_t chunk = std::size_t(std::min<std::uint64_t>(n, std::uint64_t(1) << 30));
            const ssize_t got = ::pread(*fd_, p, chunk, off_t(offset));
            if (got < 0) {
                if (errno == EINTR) continue;
                const int err = errno;
                WEFT_FAIL(where_, ": cannot read ", what, ": ", std::strerror(err));
            }
            WEFT_CHECK(got > 0, where_, ": the file ended while reading ", what,
                       " (truncated, or changed since it was opened)");
            p += got;
            n -= std::uint64_t(got);
            offset += std::uint64_t(got);
        }
    }

private:
    void read_directory() {
        // The end-of-central-directory record (22 bytes + a comment of up to 65535) ends the file.
        WEFT_CHECK(file_size_ >= 22, where_, ": the file is ", file_size_,
                   " bytes, too short for a ZIP archive (truncated, or not a PyTorch archive)");
        const std::uint64_t tail_len = std::min<std::uint64_t>(file_size_, 22 + 65535);
        std::vector<unsigned char> tail(static_cast<std::size_t>(tail_len));
        read(tail.data(), tail_len, file_size_ - tail_len, "the end of the archive");
        std::int64_t at = -1;
        for (std::int64_t i = std::int64_t(tail_len) - 22; i >= 0; --i)
            if (u32(&tail[std::size_t(i)]) == sig_eocd &&
                std::uint64_t(i) + 22 + u16(&tail[std::size_t(i) + 20]) == tail_len) {
                at = i;
                break;
            }
        WEFT_CHECK(at >= 0, where_, ": no ZIP end-of-central-directory record (truncated, or not a ZIP "
                   "archive; PyTorch's archives are ZIP files since torch 1.6)");
        const unsigned char* eocd = &tail[std::size_t(at)];
        const std::uint64_t eocd_offset = file_size_ - tail_len + std::uint64_t(at);
        std::uint64_t count = u16(eocd + 10), cd_size = u32(eocd + 12), cd_offset = u32(eocd + 16);

        // ZIP64: a locator just before the record points at the 64-bit record. PyTorch writes it
        // whenever a count, size or offset overflows (and miniz sometimes always).
        if (eocd_offset >= 20) {
            unsigned char loc[20];
            read(loc, 20, eocd_offset - 20, "the ZIP64 locator");
            if (u32(loc) == sig_zip64_locator) {
                const std::uint64_t z = u64(loc + 8);
                WEFT_CHECK(z <= file_size_ && file_size_ - z >= 56, where_, ": the ZIP64 end record offset ", z,
                           " lies past the end of the file: truncated or corrupt archive");
                unsigned char r[56];
                read(r, 56, z, "the ZIP64 end record");
                WEFT_CHECK(u32(r) == sig_zip64_eocd, where_, ": no ZIP64 end record at offset ", z,
                           " (corrupt archive)");
                // A 32-bit field that is not saturated must agree with its 64-bit twin (PyTorch
                // writes both even for small archives): a mismatch means one of them is corrupt.
                const std::uint64_t count64 = u64(r + 32), size64 = u64(r + 40), offset64 = u64(r + 48);
                WEFT_CHECK((count == 0xFFFF || count == count64) && (cd_size == 0xFFFFFFFF || cd_size == size64) &&
                               (cd_offset == 0xFFFFFFFF || cd_offset == offset64),
                           where_, ": the end record (", count, " entries, central directory of ", cd_size,
                           " bytes at offset ", cd_offset, ") and the ZIP64 end record (", count64, ", ", size64,
                           ", ", offset64, ") disagree: corrupt central directory");
                count = count64;
                cd_size = size64;
                cd_offset = offset64;
            }
        }
        WEFT_CHECK(cd_offset <= file_size_ && file_size_ - cd_offset >= cd_size, where_,
                   ": the central directory (", cd_size, " bytes at offset ", cd_offset,
                   ") runs past the end of the file (", file_size_, " bytes): truncated or corrupt archive");
        // Each record is at least 46 bytes: a count the size cannot hold is a corrupt count.
        WEFT_CHECK(count <= cd_size / 46, where_, ": the end record claims ", count,
                   " entries, more than a central directory of ", cd_size, " bytes can hold (corrupt archive)");
        std::vector<unsigned char> cd(static_cast<std::size_t>(cd_size));
        read(cd.data(), cd_size, cd_offset, "the central directory");

        std::size_t p = 0;
        entries_.reserve(std::size_t(count));
        for (std::uint64_t i = 0; i < count; ++i) {
            WEFT_CHECK(cd.size() - p >= 46 && u32(&cd[p]) == sig_central, where_, ": central directory record ",
                       i, " (at offset ", cd_offset + p, ") is malformed: corrupt central directory");
            const unsigned char* r = &cd[p];
            Entry e;
            e.method = u16(r + 10);
            e.compressed_size = u32(r + 20);
            e.size = u32(r + 24);
            const std::size_t name_len = u16(r + 28), extra_len = u16(r + 30), comment_len = u16(r + 32);
            e.local_offset = u32(r + 42);
            WEFT_CHECK(cd.size() - p - 46 >= name_len + extra_len + comment_len, where_,
                       ": central directory record ", i, " runs past the directory's end: corrupt central directory");
            e.name.assign(reinterpret_cast<const char*>(r + 46), name_len);
            read_zip64_extra(e, r + 46 + name_len, extra_len);
            p += 46 + name_len + extra_len + comment_len;
            const auto [it, fresh] = index_.emplace(e.name, entries_.size());
            WEFT_CHECK(fresh, where_, ": entry '", e.name, "' appears twice in the central directory");
            entries_.push_back(std::move(e));
        }
    }

    // Fields set to 0xFFFFFFFF in the record are in the ZIP64 extra field (id 1), in the order
    // size, compressed size, local offset, each present only if its 32-bit field overflowed.
    void read_zip64_extra(Entry& e, const unsigned char* x, std::size_t len) const {
        constexpr std::uint64_t big = 0xFFFFFFFFu;
        const bool need = e.size == big || e.compressed_size == big || e.local_offset == big;
        std::size_t q = 0;
        while (len - q >= 4) {
            const std::uint16_t id = u16(x + q), n = u16(x + q + 2);
            WEFT_CHECK(len - q - 4 >= n, where_, ": entry '", e.name, "': an extra field runs past its record");
            if (id == 1) {
                std::size_t k = q + 4;
                const std::size_t end = k + n;
                for (std::uint64_t* f : {&e.size, &e.compressed_size, &e.local_offset}) {
                    if (*f != big) continue;
                    WEFT_CHECK(end - k >= 8, where_, ": entry '", e.name, "': ZIP64 extra field too short");
                    *f = u64(x + k);
                    k += 8;
                }
                return;
            }
            q += 4 + std::size_t(n);
        }
        WEFT_CHECK(!need, where_, ": entry '", e.name,
                   "' has a 32-bit size or offset of 0xFFFFFFFF but no ZIP64 extra field (corrupt archive)");
    }

    std::string where_;
    std::shared_ptr<int> fd_;
    std::uint64_t file_size_ = 0;
    std::vector<Entry> entries_;
    std::map<std::string, std::size_t, std::less<>> index_;
};

}  // namespace weft::detail::zip
