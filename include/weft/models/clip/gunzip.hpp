// weft/models/clip/gunzip.hpp: decompresses a gzip file (RFC 1952 around RFC 1951 deflate).
//
//   std::string text = weft::clip::gunzip_file("bpe_simple_vocab_16e6.txt.gz");
//
// Why not zlib: weft is header-only and its CMake targets link no zlib, so a header that called
// zlib would break every consumer that does not add -lz. The CLIP vocabulary is the only gzip
// file weft reads, once per process (1.3 MB), so a small, plain inflater is enough. It checks
// the CRC-32 and the length of every member, and each malformed input is a weft::Error.
#pragma once

#include <array>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "../../core/error.hpp"

namespace weft::clip {

namespace detail::inflate {

struct BitReader {
    std::string_view in;
    std::size_t pos = 0;  // next byte
    std::uint32_t bits = 0;
    int count = 0;

    std::uint32_t take(int n) {  // n <= 24 bits, least significant first (deflate order)
        while (count < n) {
            WEFT_CHECK(pos < in.size(), "gunzip: deflate stream ends early (truncated file?)");
            bits |= std::uint32_t(std::uint8_t(in[pos++])) << count;
            count += 8;
        }
        const std::uint32_t v = bits & ((1u << n) - 1);
        bits >>= n;
        count -= n;
        return v;
    }
};

// Canonical Huffman code: counts of codes per length, symbols ordered by code.
struct Huffman {
    std::array<std::uint16_t, 16> count{};
    std::array<std::uint16_t, 320> symbol{};

    void build(const std::uint8_t* lengths, int n) {
        count.fill(0);
        for (int i = 0; i < n; ++i) ++count[lengths[i]];
        count[0] = 0;
        std::array<std::uint16_t, 16> offs{};
        for (int len = 1; len < 15; ++len) offs[len + 1] = std::uint16_t(offs[len] + count[len]);
        for (int i = 0; i < n; ++i)
            if (lengths[i] != 0) symbol[offs[lengths[i]]++] = std::uint16_t(i);
    }

    int decode(BitReader& br) const {
        int code = 0, first = 0, index = 0;
        for (int len = 1; len < 16; ++len) {
            code |= int(br.take(1));
            const int c = count[len];
            if (code - c < first) return symbol[index + (code - first)];
            index += c;
            first = (first + c) << 1;
            code <<= 1;
        }
        WEFT_FAIL("gunzip: invalid Huffman code in deflate stream");
    }
};

inline constexpr std::uint16_t kLenBase[] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                             31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
inline constexpr std::uint8_t kLenExtra[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                             2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
inline constexpr std::uint16_t kDistBase[] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,
                                              33,  49,  65,  97,  129, 193,  257,  385,  513,  769,
                                              1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
inline constexpr std::uint8_t kDistExtra[] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                              6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

inline void inflate_block(BitReader& br, std::string& out, const Huffman& lit, const Huffman& dist) {
    for (;;) {
        const int sym = lit.decode(br);
        if (sym < 256) {
            out.push_back(char(sym));
        } else if (sym == 256) {
            return;
        } else {
            WEFT_CHECK(sym - 257 < 29, "gunzip: invalid length symbol ", sym);
            const std::size_t len = kLenBase[sym - 257] + br.take(kLenExtra[sym - 257]);
            const int d = dist.decode(br);
            WEFT_CHECK(d < 30, "gunzip: invalid distance symbol ", d);
            const std::size_t back = kDistBase[d] + br.take(kDistExtra[d]);
            WEFT_CHECK(back <= out.size(), "gunzip: distance ", back, " reaches before the start of the data");
            const std::size_t from = out.size() - back;
            for (std::size_t i = 0; i < len; ++i) out.push_back(out[from + i]);  // may overlap
        }
    }
}

inline void inflate(BitReader& br, std::string& out) {
    int last = 0;
    do {
        last = int(br.take(1));
        const int type = int(br.take(2));
        if (type == 0) {  // stored
            br.bits = 0;
            br.count = 0;
            WEFT_CHECK(br.pos + 4 <= br.in.size(), "gunzip: stored block header truncated");
            const auto* p = reinterpret_cast<const std::uint8_t*>(br.in.data() + br.pos);
            const unsigned len = p[0] | (p[1] << 8), nlen = p[2] | (p[3] << 8);
            WEFT_CHECK(len == (~nlen & 0xFFFFu), "gunzip: stored block length check failed");
            br.pos += 4;
            WEFT_CHECK(br.pos + len <= br.in.size(), "gunzip: stored block truncated");
            out.append(br.in.substr(br.pos, len));
            br.pos += len;
        } else if (type == 1) {  // fixed codes
            static const auto fixed = [] {
                std::array<std::uint8_t, 288> l{};
                for (int i = 0; i < 288; ++i) l[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
                std::array<std::uint8_t, 30> d{};
                d.fill(5);
                std::pair<Huffman, Huffman> h;
                h.first.build(l.data(), 288);
                h.second.build(d.data(), 30);
                return h;
            }();
            inflate_block(br, out, fixed.first, fixed.second);
        } else if (type == 2) {  // dynamic codes
            const int nlit = int(br.take(5)) + 257, ndist = int(br.take(5)) + 1, ncode = int(br.take(4)) + 4;
            WEFT_CHECK(nlit <= 286 && ndist <= 30, "gunzip: bad dynamic block header");
            static constexpr std::uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
            std::array<std::uint8_t, 320> lengths{};
            for (int i = 0; i < ncode; ++i) lengths[order[i]] = std::uint8_t(br.take(3));
            Huffman lencode;
            lencode.build(lengths.data(), 19);
            lengths.fill(0);
            for (int i = 0; i < nlit + ndist;) {
                int sym = lencode.decode(br);
                if (sym < 16) {
                    lengths[i++] = std::uint8_t(sym);
                    continue;
                }
                std::uint8_t value = 0;
                int repeat = 0;
                if (sym == 16) {
                    WEFT_CHECK(i > 0, "gunzip: repeat with no previous length");
                    value = lengths[i - 1];
                    repeat = 3 + int(br.take(2));
                } else if (sym == 17) {
                    repeat = 3 + int(br.take(3));
                } else {
                    repeat = 11 + int(br.take(7));
                }
                WEFT_CHECK(i + repeat <= nlit + ndist, "gunzip: too many code lengths");
                while (repeat--) lengths[i++] = value;
            }
            Huffman lit, dist;
            lit.build(lengths.data(), nlit);
            dist.build(lengths.data() + nlit, ndist);
            inflate_block(br, out, lit, dist);
        } else {
            WEFT_FAIL("gunzip: invalid deflate block type 3");
        }
    } while (!last);
}

inline std::uint32_t crc32(std::string_view data) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }();
    std::uint32_t c = 0xFFFFFFFFu;
    for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

}  // namespace detail::inflate

// Decompresses gzip data (all members, concatenated). `what` names the source in errors.
inline std::string gunzip(std::string_view in, const std::string& what = "gzip data") {
    using namespace detail::inflate;
    std::string out;
    std::size_t pos = 0;
    do {
        const auto byte = [&](std::size_t i) { return std::uint8_t(in[pos + i]); };
        WEFT_CHECK(in.size() - pos >= 18 && byte(0) == 0x1F && byte(1) == 0x8B && byte(2) == 8,
                   "gunzip: ", what, " is not a gzip file (no gzip header with deflate)");
        const std::uint8_t flags = byte(3);
        pos += 10;
        auto need = [&](std::size_t n) { WEFT_CHECK(pos + n <= in.size(), "gunzip: ", what, ": header truncated"); };
        if (flags & 4) {  // FEXTRA
            need(2);
            pos += 2 + (byte(0) | (byte(1) << 8));
        }
        for (int f : {8, 16}) {  // FNAME, FCOMMENT: zero-terminated
            if (flags & f) {
                while (need(1), in[pos] != 0) ++pos;
                ++pos;
            }
        }
        if (flags & 2) pos += 2;  // FHCRC
        need(0);
        BitReader br{in, pos};
        const std::size_t start = out.size();
        inflate(br, out);
        pos = br.pos;
        WEFT_CHECK(pos + 8 <= in.size(), "gunzip: ", what, ": trailer truncated");
        const auto u32 = [&](std::size_t at) {
            return std::uint32_t(byte(at)) | std::uint32_t(byte(at + 1)) << 8 | std::uint32_t(byte(at + 2)) << 16 |
                   std::uint32_t(byte(at + 3)) << 24;
        };
        const std::string_view member(out.data() + start, out.size() - start);
        WEFT_CHECK(u32(0) == crc32(member), "gunzip: ", what, ": CRC-32 mismatch (corrupt file)");
        WEFT_CHECK(u32(4) == std::uint32_t(member.size()), "gunzip: ", what, ": length mismatch (corrupt file)");
        pos += 8;
    } while (pos < in.size());
    return out;
}

inline std::string gunzip_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    WEFT_CHECK(f, "gunzip: cannot open '", path, "'");
    const std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return gunzip(data, "'" + path + "'");
}

}  // namespace weft::clip
