// weft/data/image.hpp: JPEG, PNG and BMP decoding, PNG and JPEG encoding (through stb), as uint8 tensors.
//
//   Tensor<std::uint8_t, 3> rgb = weft::data::read_image("ADE_val_00000001.jpg");        // [H, W, 3]
//   Tensor<std::uint8_t, 2> cls = weft::data::read_label_png("ADE_val_00000001.png");    // [H, W]
//   weft::data::write_png("prediction.png", rgb);
//   weft::data::write_jpeg("scene.jpg", rgb);                                            // quality 95
//
// read_image / decode_image give RGB as PIL's Image.open(f).convert("RGB") does: grey is
// replicated, alpha is dropped (not composited), a palette is looked up, 16-bit samples keep
// their high byte. PNG and BMP decode exactly as PIL does, except 16-bit grey, which Pillow 9.4
// clips to 255 (a quirk weft does not copy). JPEG goes through stb's decoder, not libjpeg:
// values differ from PIL's by up to 3 levels on a few percent of the samples (docs/image.md
// has the measurements). EXIF orientation is not applied (PIL does not either).
//
// read_label_png / decode_label_png give the values a segmentation annotation stores: a
// palette PNG's indices (not its colours), a grey PNG's values (1-, 2- and 4-bit ones unscaled,
// 16-bit ones if they fit 8 bits). An RGB(A) PNG is accepted only if every pixel is grey.
//
// Bad input is a weft::Error naming the file and the reason (missing, unreadable, empty, not an
// image weft decodes, truncated, corrupt). Two checks stb lacks run first: every PNG chunk's
// CRC, and JPEG Huffman tables that would make Debian's stb 2.27 write out of bounds.
//
// stb: this header compiles stb_image and stb_image_write (Debian libstb-dev, <stb/...>) into
// each translation unit that includes it, with internal linkage (STB_IMAGE_STATIC and
// STB_IMAGE_WRITE_STATIC). weft is header-only, so there is no library to hold one shared copy;
// static copies let any number of translation units include this header without duplicate
// symbols at link time. (weft's inline functions call the copy of the translation unit the
// linker keeps them from; every copy is the same code, so which one runs makes no difference.)
// A translation unit that includes this header must not compile stb_image's implementation
// again; one that included <stb/stb_image.h> first uses those declarations, and the program
// must then provide stb_image's implementation itself (without weft's 4:2:2 fix below).
//
// POSIX only (open/read/rename), like weft's checkpoint files.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

// stb is C written for many compilers; its warnings under weft's -Wall -Wextra -Wpedantic are
// not weft's to fix, so they are silenced for the two headers only.
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#pragma clang diagnostic ignored "-Wcomma"
#endif
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#pragma GCC diagnostic ignored "-Wunused-variable"

#ifndef STBI_INCLUDE_STB_IMAGE_H
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO   // weft reads files itself (errno-based messages, std::filesystem paths)
#define STBI_NO_LINEAR  // no float (HDR) output
// JPEG, PNG and BMP only. TGA in particular has no signature: stb would "decode" random bytes.
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
// stb_image 2.27 (and earlier) mixes up the two inputs of the next-to-last output of its 4:2:2
// (h2v1) chroma upsampler, stbi__resample_row_h_2: that column's colour can be off by 100 levels.
// weft swaps in its own version, identical to libjpeg's h2v1 "fancy" upsampler (what PIL
// uses): the function-like macro renames stb's definition (its name is followed by '('), and
// leaves the one use, `r->resample = stbi__resample_row_h_2;`, naming the declaration below.
static unsigned char* stbi__resample_row_h_2(unsigned char* out, unsigned char* in_near, unsigned char* in_far,
                                             int w, int hs);
#define stbi__resample_row_h_2(...) weft_replaced_stbi__resample_row_h_2(__VA_ARGS__)
#include <stb/stb_image.h>
#undef stbi__resample_row_h_2
#undef STB_IMAGE_IMPLEMENTATION

// libjpeg's h2v1_fancy_upsample (jdsample.c): each output 3/4 of the nearer input and 1/4 of
// the other neighbour, rounding biases alternating 1 and 2; the first and last outputs copy
// their input; rows of at most 2 inputs are box-upsampled (libjpeg's condition for fancy).
static unsigned char* stbi__resample_row_h_2(unsigned char* out, unsigned char* in_near, unsigned char* in_far,
                                             int w, int hs) {
    (void)in_far;
    (void)hs;
    const unsigned char* in = in_near;
    if (w <= 2) {
        for (int i = 0; i < w; ++i) out[2 * i] = out[2 * i + 1] = in[i];
        return out;
    }
    out[0] = in[0];
    out[1] = static_cast<unsigned char>((in[0] * 3 + in[1] + 2) >> 2);
    for (int i = 1; i < w - 1; ++i) {
        const int v = in[i] * 3;
        out[2 * i] = static_cast<unsigned char>((v + in[i - 1] + 1) >> 2);
        out[2 * i + 1] = static_cast<unsigned char>((v + in[i + 1] + 2) >> 2);
    }
    out[2 * w - 2] = static_cast<unsigned char>((in[w - 1] * 3 + in[w - 2] + 1) >> 2);
    out[2 * w - 1] = in[w - 1];
    return out;
}
#endif

#ifndef INCLUDE_STB_IMAGE_WRITE_H
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#endif

#pragma GCC diagnostic pop

namespace weft::data {

namespace detail::image {

enum class Format { jpeg, png, bmp, empty, unsupported };

inline const char* format_name(Format f) {
    switch (f) {
        case Format::jpeg: return "JPEG";
        case Format::png: return "PNG";
        case Format::bmp: return "BMP";
        default: return "image";
    }
}

inline bool starts_with(std::span<const unsigned char> b, std::string_view magic, std::size_t at = 0) {
    if (b.size() < at + magic.size()) return false;
    return std::memcmp(b.data() + at, magic.data(), magic.size()) == 0;
}

inline constexpr std::string_view png_signature{"\x89PNG\r\n\x1a\n", 8};

inline Format sniff(std::span<const unsigned char> b) {
    if (b.empty()) return Format::empty;
    if (starts_with(b, "\xFF\xD8\xFF")) return Format::jpeg;
    if (starts_with(b, png_signature)) return Format::png;
    if (starts_with(b, "BM")) return Format::bmp;
    return Format::unsupported;
}

// For the "not an image weft decodes" message: what the bytes look like.
inline std::string describe_unsupported(std::span<const unsigned char> b) {
    if (starts_with(b, "GIF8")) return "a GIF image";
    if (starts_with(b, "RIFF") && starts_with(b, "WEBP", 8)) return "a WebP image";
    if (starts_with(b, std::string_view("II*\0", 4)) || starts_with(b, std::string_view("MM\0*", 4)))
        return "a TIFF image";
    if (starts_with(b, std::string_view("\0\0\0\x0cjP  ", 8))) return "a JPEG 2000 image";
    if (starts_with(b, "ftyp", 4)) return "an ISO media file (HEIF/AVIF?)";
    if (starts_with(b, "\x1f\x8b")) return "gzip data";
    if (starts_with(b, "PK\x03\x04")) return "a ZIP archive";
    std::string s = "no known signature; first bytes";
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < std::min<std::size_t>(b.size(), 8); ++i) {
        s += ' ';
        s += hex[b[i] >> 4];
        s += hex[b[i] & 15];
    }
    return s;
}

inline std::string in_quotes(std::string_view what) {
    std::string s = "'";
    s += what;
    s += "'";
    return s;
}

inline std::string errno_str(int err) { return std::strerror(err); }

// ---- files ------------------------------------------------------------------------------------

inline std::vector<unsigned char> read_file(const std::filesystem::path& path, const char* op) {
    const std::string name = in_quotes(path.string());
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT) WEFT_FAIL(op, ": no such file ", name);
        WEFT_FAIL(op, ": cannot open ", name, ": ", errno_str(err));
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat sb {};
    if (::fstat(fd, &sb) != 0) {
        const int err = errno;
        WEFT_FAIL(op, ": cannot stat ", name, ": ", errno_str(err));
    }
    WEFT_CHECK(!S_ISDIR(sb.st_mode), op, ": ", name, " is a directory, not an image file");
    std::vector<unsigned char> bytes;
    if (S_ISREG(sb.st_mode)) bytes.reserve(std::size_t(sb.st_size));
    unsigned char chunk[1 << 16];
    for (;;) {
        const ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            WEFT_FAIL(op, ": reading ", name, " failed: ", errno_str(err));
        }
        if (got == 0) break;
        bytes.insert(bytes.end(), chunk, chunk + got);
    }
    return bytes;
}

// Writes `bytes` to "<path>.tmp" and renames it over `path`: a crash never leaves half a file.
// (No fsync: images are many and can be written again; a checkpoint is what must survive a
// power cut.)
inline void write_file_atomically(const std::filesystem::path& path, std::span<const unsigned char> bytes,
                                  const char* op) {
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    const std::string name = in_quotes(path.string()), tmp_name = in_quotes(tmp.string());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        const int err = errno;
        WEFT_FAIL(op, ": cannot create the temporary file ", tmp_name, ": ", errno_str(err),
                  "; nothing was written");
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t put = ::write(fd, bytes.data() + done, std::min<std::size_t>(bytes.size() - done, 1u << 30));
        if (put < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            WEFT_FAIL(op, ": writing ", tmp_name, " failed: ", errno_str(err),
                      "; the temporary file was removed and ", name, " is unchanged");
        }
        done += std::size_t(put);
    }
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        WEFT_FAIL(op, ": closing ", tmp_name, " failed: ", errno_str(err),
                  "; the temporary file was removed and ", name, " is unchanged");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        WEFT_FAIL(op, ": renaming ", tmp_name, " to ", name, " failed: ", errno_str(err),
                  "; the temporary file was removed");
    }
}

// ---- PNG chunks -------------------------------------------------------------------------------

inline std::uint32_t crc32(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    static const std::array<std::uint32_t, 256> table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

inline std::uint32_t be32(const unsigned char* p) {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]);
}

inline void put_be32(std::vector<unsigned char>& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<unsigned char>(v >> s));
}

struct PngHeader {
    int depth = 0;        // bits per sample: 1, 2, 4, 8 or 16
    int colour_type = 0;  // 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA
};

// Walks the chunks from the signature to IEND and checks each one's length and CRC: stb skips
// CRCs (and zlib's Adler-32), so without this a flipped byte in IDAT decodes to a wrong image.
// Returns IHDR's depth and colour type; stb checks the rest of IHDR.
inline PngHeader check_png(std::span<const unsigned char> b, const char* op, std::string_view what) {
    PngHeader h;
    std::size_t at = png_signature.size();
    bool ihdr = false;
    for (;;) {
        WEFT_CHECK(b.size() - at >= 12, op, ": truncated PNG data in ", in_quotes(what), ": it ends at byte ",
                   b.size(), " without an IEND chunk");
        const std::uint32_t len = be32(b.data() + at);
        const std::string type(reinterpret_cast<const char*>(b.data() + at + 4), 4);
        WEFT_CHECK(len <= 0x7FFFFFFFu, op, ": corrupt PNG data in ", in_quotes(what), ": chunk at byte ", at,
                   " claims ", len, " bytes (more than PNG allows)");
        WEFT_CHECK(b.size() - at - 12 >= len, op, ": truncated PNG data in ", in_quotes(what), ": chunk ",
                   type, " at byte ", at, " needs ", len + 12, " bytes, ", b.size() - at, " remain");
        const std::uint32_t stored = be32(b.data() + at + 8 + len);
        WEFT_CHECK(crc32(0, b.data() + at + 4, len + 4) == stored, op, ": corrupt PNG data in ",
                   in_quotes(what), ": chunk ", type, " at byte ", at, " fails its CRC check");
        if (type == "IHDR" && len == 13) {
            h.depth = b[at + 16];
            h.colour_type = b[at + 17];
            ihdr = true;
        }
        at += 12 + std::size_t(len);
        if (type == "IEND") break;
    }
    WEFT_CHECK(ihdr, op, ": corrupt PNG data in ", in_quotes(what), ": no valid IHDR chunk");
    return h;
}

// A copy of a (checked) palette PNG whose PLTE holds 256 entries. For labels every entry i is
// grey i, so a pixel decodes to its index; for images the file's own entries come first and
// the rest are grey i, which is what PIL shows for an index past the palette (its palettes
// start as a grey ramp). stb alone would read such an index from uninitialised memory.
inline std::vector<unsigned char> with_full_palette(std::span<const unsigned char> b, bool index_ramp) {
    std::vector<unsigned char> out(b.begin(), b.begin() + std::ptrdiff_t(png_signature.size()));
    out.reserve(b.size() + 768);
    std::size_t at = png_signature.size();
    for (;;) {
        const std::uint32_t len = be32(b.data() + at);
        const bool plte = std::memcmp(b.data() + at + 4, "PLTE", 4) == 0;
        const bool end = std::memcmp(b.data() + at + 4, "IEND", 4) == 0;
        if (plte) {
            std::array<unsigned char, 4 + 768> chunk{'P', 'L', 'T', 'E'};
            for (int i = 0; i < 256; ++i)
                for (int c = 0; c < 3; ++c)
                    chunk[std::size_t(4 + 3 * i + c)] =
                        !index_ramp && std::uint32_t(3 * i + c) < len ? b[at + 8 + std::size_t(3 * i + c)]
                                                                      : static_cast<unsigned char>(i);
            put_be32(out, 768);
            out.insert(out.end(), chunk.begin(), chunk.end());
            put_be32(out, crc32(0, chunk.data(), chunk.size()));
        } else {
            out.insert(out.end(), b.begin() + std::ptrdiff_t(at), b.begin() + std::ptrdiff_t(at + 12 + len));
        }
        at += 12 + std::size_t(len);
        if (end) break;
    }
    return out;
}

// True if a JPEG's last marker (ignoring trailing padding) is EOI: used only to say "truncated"
// in an error message, never to refuse data stb accepts.
inline bool jpeg_has_end(std::span<const unsigned char> b) {
    std::size_t n = b.size();
    while (n > 0 && (b[n - 1] == 0 || b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' ')) --n;
    return n >= 2 && b[n - 2] == 0xFF && b[n - 1] == 0xD9;
}

// Refuses JPEG data that would make stb_image 2.27 write out of bounds: a DHT segment whose 16
// code-length counts add up to more than 256 symbols (stb's build_huffman then writes up to
// 4080 entries into a 257-byte table; newer stb checks this, Debian's does not). Walks the
// marker segments the way stb reads them, erring on the side of looking at more: bytes that
// are not a marker are skipped one at a time (stb resynchronises so before the frame header),
// entropy-coded data after SOS runs to the first 0xFF followed by neither 0x00, 0xFF nor RSTn
// (stb's bit reader cannot read past that), and a table is checked even where the segment
// length or the data ends inside it (stb reads the 17 bytes regardless, zeros past the end).
// Anything else malformed is left to stb, which reports it.
inline void check_jpeg_tables(std::span<const unsigned char> b, const char* op, std::string_view what) {
    const std::size_t n = b.size();
    std::size_t at = 2;  // past SOI
    while (at + 1 < n) {
        if (b[at] != 0xFF) {
            ++at;
            continue;
        }
        while (at + 1 < n && b[at + 1] == 0xFF) ++at;  // fill bytes
        if (at + 1 >= n) return;
        const unsigned char m = b[at + 1];
        at += 2;
        if (m == 0xD9) return;                                // EOI
        if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // markers without a length
        if (at + 2 > n) return;
        const std::size_t len = std::size_t(b[at]) << 8 | b[at + 1];
        if (len < 2) return;
        if (m == 0xC4) {
            for (std::size_t t = at + 2; t < at + len;) {
                std::size_t symbols = 0;
                for (std::size_t i = 1; i <= 16; ++i)
                    if (t + i < n) symbols += b[t + i];
                WEFT_CHECK(symbols <= 256, op, ": corrupt JPEG data in ", in_quotes(what),
                           ": the Huffman table at byte ", t, " declares ", symbols, " codes (at most 256)");
                t += 17 + symbols;
            }
        }
        if (at + len > n) return;
        at += len;
        if (m == 0xDA) {
            while (at + 1 < n) {
                const void* ff = std::memchr(b.data() + at, 0xFF, n - at - 1);
                if (!ff) return;
                at = std::size_t(static_cast<const unsigned char*>(ff) - b.data());
                const unsigned char next = b[at + 1];
                if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
                    at += 2;
                } else if (next == 0xFF) {
                    at += 1;
                } else {
                    break;  // a marker: the outer loop reads it
                }
            }
        }
    }
}

// ---- stb --------------------------------------------------------------------------------------

struct Pixels {
    std::shared_ptr<void> data;  // owned by stb (malloc); freed with the last tensor viewing it
    int width = 0, height = 0;
    int channels = 0;  // in the buffer (`want`, or the file's own count when want == 0)
};

// Decodes with stb; `wide` asks for 16-bit samples. Any failure throws with stb's reason.
inline Pixels stb_decode(std::span<const unsigned char> bytes, Format format, int want, bool wide,
                         const char* op, std::string_view what) {
    WEFT_CHECK(bytes.size() <= std::size_t(INT_MAX), op, ": ", in_quotes(what), " holds ", bytes.size(),
               " bytes; stb decodes at most 2 GiB");
    Pixels px;
    int file_channels = 0;
    void* p = wide ? static_cast<void*>(stbi_load_16_from_memory(bytes.data(), int(bytes.size()), &px.width,
                                                                 &px.height, &file_channels, want))
                   : static_cast<void*>(stbi_load_from_memory(bytes.data(), int(bytes.size()), &px.width,
                                                              &px.height, &file_channels, want));
    if (!p) {
        const char* reason = stbi_failure_reason();
        const bool truncated = format == Format::jpeg && !jpeg_has_end(bytes);
        WEFT_FAIL(op, ": ", truncated ? "truncated" : "corrupt or unsupported", " ", format_name(format),
                  " data in ", in_quotes(what), ": stb says \"", reason ? reason : "unknown error", "\"",
                  truncated ? " (the data does not end with JPEG's end-of-image marker)" : "");
    }
    px.data = std::shared_ptr<void>(p, [](void* q) { std::free(q); });  // stb allocates with malloc
    px.channels = want ? want : file_channels;
    return px;
}

inline Format checked_format(std::span<const unsigned char> bytes, const char* op, std::string_view what) {
    const Format f = sniff(bytes);
    WEFT_CHECK(f != Format::empty, op, ": ", in_quotes(what), " is empty (0 bytes)");
    WEFT_CHECK(f != Format::unsupported, op, ": ", in_quotes(what), " is not a JPEG, PNG or BMP image (",
               describe_unsupported(bytes), "); weft decodes those three formats");
    return f;
}

inline Tensor<std::uint8_t, 3> decode_rgb(std::span<const unsigned char> bytes, const char* op,
                                          std::string_view what) {
    const Format f = checked_format(bytes, op, what);
    if (f == Format::jpeg) check_jpeg_tables(bytes, op, what);
    std::vector<unsigned char> patched;
    if (f == Format::png && check_png(bytes, op, what).colour_type == 3) {
        patched = with_full_palette(bytes, false);
        bytes = patched;
    }
    Pixels px = stb_decode(bytes, f, 3, false, op, what);
    const index_t h = px.height, w = px.width;
    auto* data = static_cast<std::uint8_t*>(px.data.get());
    return Tensor<std::uint8_t, 3>::wrap(data, Shape<3>{h, w, index_t(3)}, std::move(px.data));
}

// One 8-bit value per pixel from a decoded buffer of `channels` samples of type S: the grey
// (or red) sample, after checking that the colour channels agree and that it fits 8 bits.
template <class S>
Tensor<std::uint8_t, 2> label_values(const S* p, int height, int width, int channels, int unscale,
                                     const char* op, std::string_view what) {
    auto out = Tensor<std::uint8_t, 2>::empty(Shape<2>{height, width});
    std::uint8_t* o = out.data();
    const bool colour = channels >= 3;
    const char* layout = channels == 4 ? "RGBA" : channels == 3 ? "RGB" : "grey";
    for (index_t y = 0; y < height; ++y)
        for (index_t x = 0; x < width; ++x) {
            const S* s = p + (y * width + x) * channels;
            if (colour && (s[0] != s[1] || s[0] != s[2]))
                WEFT_FAIL(op, ": ", in_quotes(what), " has ", channels, " channels (", layout,
                          ") with real colour, e.g. (", int(s[0]), ", ", int(s[1]), ", ", int(s[2]),
                          ") at row ", y, ", column ", x,
                          "; a label PNG holds one channel of class indices (grey or palette)");
            if constexpr (sizeof(S) > 1)
                WEFT_CHECK(s[0] <= 255, op, ": ", in_quotes(what), " holds the 16-bit value ", int(s[0]),
                           " at row ", y, ", column ", x, ", which does not fit the 8 bits of a label");
            o[y * width + x] = static_cast<std::uint8_t>(s[0] / unscale);
        }
    return out;
}

inline Tensor<std::uint8_t, 2> decode_label(std::span<const unsigned char> bytes, const char* op,
                                            std::string_view what) {
    const Format f = checked_format(bytes, op, what);
    WEFT_CHECK(f == Format::png, op, ": ", in_quotes(what), " is ", f == Format::jpeg ? "a JPEG" : "a BMP",
               " image; labels must be PNG (lossless; grey or palette)");
    const PngHeader h = check_png(bytes, op, what);
    std::vector<unsigned char> patched;
    if (h.colour_type == 3) {
        patched = with_full_palette(bytes, true);
        bytes = patched;
    }
    const bool wide = h.depth == 16;
    Pixels px = stb_decode(bytes, f, 0, wide, op, what);
    // stb scales 1-, 2- and 4-bit grey to 0..255; a label wants the stored value back.
    const int unscale = h.colour_type == 0 && h.depth < 8 ? 255 / ((1 << h.depth) - 1) : 1;
    if (wide)
        return label_values(static_cast<const std::uint16_t*>(px.data.get()), px.height, px.width, px.channels,
                            1, op, what);
    return label_values(static_cast<const std::uint8_t*>(px.data.get()), px.height, px.width, px.channels,
                        unscale, op, what);
}

template <int Rank>
std::vector<unsigned char> encode_png(const Tensor<std::uint8_t, Rank>& image, const char* op) {
    static_assert(Rank == 2 || Rank == 3, "weft: encode_png takes [H, W] grey or [H, W, C] images");
    WEFT_CHECK(image.defined(), op, ": the image tensor is undefined");
    const index_t h = image.size(0), w = image.size(1);
    const index_t c = Rank == 3 ? image.size(2) : 1;
    WEFT_CHECK(c >= 1 && c <= 4, op, ": an image of shape ", image.shape(),
               " has ", c, " channels; PNG holds 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)");
    WEFT_CHECK(h > 0 && w > 0, op, ": cannot encode an empty image of shape ", image.shape());
    WEFT_CHECK(h < (index_t(1) << 31) && w * c < (index_t(1) << 31), op, ": an image of shape ", image.shape(),
               " is too large for stb's PNG writer");
    const auto dense = image.contiguous();
    std::vector<unsigned char> out;
    const int ok = stbi_write_png_to_func(
        [](void* ctx, void* data, int size) {
            auto* v = static_cast<std::vector<unsigned char>*>(ctx);
            const auto* d = static_cast<const unsigned char*>(data);
            v->insert(v->end(), d, d + size);
        },
        &out, int(w), int(h), int(c), dense.data(), int(w * c));
    WEFT_CHECK(ok != 0, op, ": stb could not encode an image of shape ", image.shape(), " (out of memory?)");
    return out;
}

// JPEG bytes (baseline) of an [H, W, 1 or 3] image. stb subsamples chroma 4:2:0 at quality <= 90
// and keeps it full (4:4:4) above.
inline std::vector<unsigned char> encode_jpeg(const Tensor<std::uint8_t, 3>& image, int quality, const char* op) {
    WEFT_CHECK(image.defined(), op, ": the image tensor is undefined");
    const index_t h = image.size(0), w = image.size(1), c = image.size(2);
    WEFT_CHECK(c == 1 || c == 3, op, ": an image of shape ", image.shape(), " has ", c,
               " channels; JPEG holds 1 (grey) or 3 (RGB)");
    WEFT_CHECK(h > 0 && w > 0, op, ": cannot encode an empty image of shape ", image.shape());
    WEFT_CHECK(h <= 65535 && w <= 65535, op, ": an image of shape ", image.shape(),
               " is larger than JPEG's 65535 x 65535");
    WEFT_CHECK(quality >= 1 && quality <= 100, op, ": quality ", quality, " is outside [1, 100]");
    const auto dense = image.contiguous();
    std::vector<unsigned char> out;
    const int ok = stbi_write_jpg_to_func(
        [](void* ctx, void* data, int size) {
            auto* v = static_cast<std::vector<unsigned char>*>(ctx);
            const auto* d = static_cast<const unsigned char*>(data);
            v->insert(v->end(), d, d + size);
        },
        &out, int(w), int(h), int(c), dense.data(), quality);
    WEFT_CHECK(ok != 0, op, ": stb could not encode an image of shape ", image.shape(), " (out of memory?)");
    return out;
}

}  // namespace detail::image

// ---- decoding ---------------------------------------------------------------------------------

// [H, W, 3] RGB from JPEG, PNG or BMP bytes; `what` names the data in error messages.
inline Tensor<std::uint8_t, 3> decode_image(std::span<const unsigned char> bytes, std::string_view what = "buffer") {
    return detail::image::decode_rgb(bytes, "decode_image", what);
}

// [H, W] values stored in a label PNG (palette indices or grey values).
inline Tensor<std::uint8_t, 2> decode_label_png(std::span<const unsigned char> bytes,
                                                std::string_view what = "buffer") {
    return detail::image::decode_label(bytes, "decode_label_png", what);
}

// [H, W, 3] RGB from a JPEG, PNG or BMP file.
inline Tensor<std::uint8_t, 3> read_image(const std::filesystem::path& path) {
    const auto bytes = detail::image::read_file(path, "read_image");
    return detail::image::decode_rgb(bytes, "read_image", path.string());
}

// [H, W] values stored in a label PNG file (ADE20K annotations: grey class indices).
inline Tensor<std::uint8_t, 2> read_label_png(const std::filesystem::path& path) {
    const auto bytes = detail::image::read_file(path, "read_label_png");
    return detail::image::decode_label(bytes, "read_label_png", path.string());
}

// ---- encoding ---------------------------------------------------------------------------------

// PNG bytes of an [H, W, C] image (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA), any strides.
inline std::vector<unsigned char> encode_png(const Tensor<std::uint8_t, 3>& hwc) {
    return detail::image::encode_png(hwc, "encode_png");
}

// PNG bytes of an [H, W] grey image (a label map, a mask).
inline std::vector<unsigned char> encode_png(const Tensor<std::uint8_t, 2>& hw) {
    return detail::image::encode_png(hw, "encode_png");
}

// Writes an [H, W, C] image as PNG: to "<path>.tmp", then renamed over `path`.
inline void write_png(const std::filesystem::path& path, const Tensor<std::uint8_t, 3>& hwc) {
    const auto bytes = detail::image::encode_png(hwc, "write_png");
    detail::image::write_file_atomically(path, bytes, "write_png");
}

// Writes an [H, W] grey image as PNG: to "<path>.tmp", then renamed over `path`.
inline void write_png(const std::filesystem::path& path, const Tensor<std::uint8_t, 2>& hw) {
    const auto bytes = detail::image::encode_png(hw, "write_png");
    detail::image::write_file_atomically(path, bytes, "write_png");
}

// JPEG bytes of an [H, W, 3] RGB or [H, W, 1] grey image; quality 1..100 (stb's scale, as PIL's).
inline std::vector<unsigned char> encode_jpeg(const Tensor<std::uint8_t, 3>& hwc, int quality = 95) {
    return detail::image::encode_jpeg(hwc, quality, "encode_jpeg");
}

// Writes an [H, W, 3] RGB or [H, W, 1] grey image as JPEG: to "<path>.tmp", then renamed over `path`.
inline void write_jpeg(const std::filesystem::path& path, const Tensor<std::uint8_t, 3>& hwc, int quality = 95) {
    const auto bytes = detail::image::encode_jpeg(hwc, quality, "write_jpeg");
    detail::image::write_file_atomically(path, bytes, "write_jpeg");
}

}  // namespace weft::data
