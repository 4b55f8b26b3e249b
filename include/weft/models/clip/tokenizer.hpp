// weft/models/clip/tokenizer.hpp: OpenAI CLIP's byte-level BPE tokenizer, id for id.
//
//   weft::clip::Tokenizer tok("bpe_simple_vocab_16e6.txt.gz");
//   std::vector<std::int32_t> ids = tok.encode("a photo of a dog.");   // 320 1125 539 320 1929 269
//   Tensor<std::int64_t, 2> t = tok.tokenize({"a dog", "a cat"});        // [2, 77], 0-padded
//
// Follows clip/simple_tokenizer.py and clip.tokenize step by step (docs/clip-tokenizer.md):
//   1. cleaning: html.unescape twice, strip, every run of White_Space -> one ' ', strip, then
//      Python's str.lower (full mapping: U+0130 -> "i\u0307", final sigma). OpenAI first runs
//      ftfy.fix_text; weft does not: ids differ for text that ftfy would change (mojibake, but
//      also curly quotes, ligatures, fullwidth forms, non-NFC text; docs/clip-tokenizer.md).
//   2. pre-tokenization with OpenAI's pattern, compiled with IGNORECASE,
//        <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//      matched by hand over code points (unicode_tables.hpp is generated from Unicode data).
//   3. each piece: UTF-8 bytes -> the bytes_to_unicode characters -> BPE with the first 48,894
//      merges of the vocabulary file, "</w>" marking the end of the word; results are cached.
// Token ids: 256 byte characters, the same with "</w>", one per merge, then <|startoftext|> =
// 49406 and <|endoftext|> = 49407.
//
// A Tokenizer is immutable after construction except for its cache (mutex-guarded): it can be
// shared between threads.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "gunzip.hpp"
#include "html_entities.hpp"
#include "unicode_tables.hpp"

namespace weft::clip {

namespace detail::text {

inline void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out.push_back(char(c));
    } else if (c < 0x800) {
        out.push_back(char(0xC0 | (c >> 6)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(char(0xE0 | (c >> 12)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    } else {
        out.push_back(char(0xF0 | (c >> 18)));
        out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(char(0x80 | (c & 0x3F)));
    }
}

inline std::string to_utf8(std::u32string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s) append_utf8(out, c);
    return out;
}

// Strict UTF-8 decoding (no overlongs, no surrogates): a Python str never holds invalid text.
inline std::u32string from_utf8(std::string_view s) {
    std::u32string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto b = std::uint8_t(s[i]);
        int n = b < 0x80 ? 0 : (b & 0xE0) == 0xC0 ? 1 : (b & 0xF0) == 0xE0 ? 2 : (b & 0xF8) == 0xF0 ? 3 : -1;
        WEFT_CHECK(n >= 0 && i + n < s.size(), "clip tokenizer: invalid UTF-8 at byte ", i, " of the text");
        char32_t c = n == 0 ? b : (b & (0x3F >> n));
        for (int k = 1; k <= n; ++k) {
            const auto cont = std::uint8_t(s[i + k]);
            WEFT_CHECK((cont & 0xC0) == 0x80, "clip tokenizer: invalid UTF-8 at byte ", i, " of the text");
            c = (c << 6) | (cont & 0x3F);
        }
        static constexpr char32_t min_of[] = {0, 0x80, 0x800, 0x10000};
        WEFT_CHECK(c >= min_of[n] && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF),
                   "clip tokenizer: invalid UTF-8 at byte ", i, " of the text");
        out.push_back(c);
        i += std::size_t(n) + 1;
    }
    return out;
}

inline const std::string_view* find_entity(std::string_view name) {
    using html_tables::kEntities;
    auto it = std::lower_bound(std::begin(kEntities), std::end(kEntities), name,
                               [](const html_tables::Entity& e, std::string_view n) { return e.name < n; });
    return it != std::end(kEntities) && it->name == name ? &it->value : nullptr;
}

// Python's html.unescape: numeric references with HTML5's fixups, named references from the
// HTML5 list, including the longest-known-prefix rule for names without ';' ("&notit;" -> "¬it;").
inline std::u32string html_unescape(const std::u32string& s) {
    if (s.find(U'&') == std::u32string::npos) return s;
    const auto is_digit = [](char32_t c) { return c >= U'0' && c <= U'9'; };
    const auto is_hex = [&](char32_t c) { return is_digit(c) || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F'); };
    std::u32string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        if (s[i] != U'&') {
            out.push_back(s[i++]);
            continue;
        }
        std::size_t j = i + 1;
        if (j < s.size() && s[j] == U'#') {
            const bool hex = j + 1 < s.size() && (s[j + 1] == U'x' || s[j + 1] == U'X');
            std::size_t k = j + (hex ? 2 : 1);
            const std::size_t digits_begin = k;
            while (k < s.size() && (hex ? is_hex(s[k]) : is_digit(s[k]))) ++k;
            if (k == digits_begin) {  // "&#" or "&#x" without digits: not a reference
                out.push_back(s[i++]);
                continue;
            }
            std::uint64_t num = 0;  // saturates: anything above 0x10FFFF behaves the same
            for (std::size_t d = digits_begin; d < k; ++d) {
                const char32_t c = s[d];
                const unsigned v = is_digit(c) ? c - U'0' : (c | 0x20) - U'a' + 10;
                num = std::min<std::uint64_t>(num * (hex ? 16 : 10) + v, 0x7FFFFFFF);
            }
            if (k < s.size() && s[k] == U';') ++k;
            i = k;
            const auto& fixes = html_tables::kInvalidCharrefs;
            auto fix = std::find_if(std::begin(fixes), std::end(fixes), [&](auto& f) { return f.number == num; });
            if (fix != std::end(fixes)) {
                out.push_back(fix->replacement);
            } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
                out.push_back(U'\uFFFD');
            } else if (!std::binary_search(std::begin(html_tables::kInvalidCodepoints),
                                           std::end(html_tables::kInvalidCodepoints), char32_t(num))) {
                out.push_back(char32_t(num));
            }
            continue;
        }
        // Named: [^\t\n\f <&#;]{1,32};?
        std::size_t k = j;
        while (k < s.size() && k - j < 32 && s[k] != U'\t' && s[k] != U'\n' && s[k] != U'\f' && s[k] != U' ' &&
               s[k] != U'<' && s[k] != U'&' && s[k] != U'#' && s[k] != U';')
            ++k;
        if (k == j) {
            out.push_back(s[i++]);
            continue;
        }
        if (k < s.size() && s[k] == U';') ++k;
        const std::u32string_view name(s.data() + j, k - j);
        i = k;
        // Only ASCII names exist; the longest prefix of at least 2 characters that is a name wins.
        std::size_t ascii = 0;
        while (ascii < name.size() && name[ascii] < 0x80) ++ascii;
        const std::string narrow = to_utf8(name.substr(0, ascii));
        const std::string_view* value = ascii == name.size() ? find_entity(narrow) : nullptr;
        std::size_t used = name.size();
        for (std::size_t x = std::min(name.size() - 1, ascii); !value && x >= 2; --x) {
            value = find_entity(std::string_view(narrow).substr(0, x));
            used = x;
        }
        if (value) {
            const std::u32string v = from_utf8(*value);
            out += v;
            out += name.substr(used);
        } else {
            out.push_back(U'&');
            out += name;
        }
    }
    return out;
}

// Python's str.lower on the whole text (the final-sigma rule looks at the neighbours).
inline std::u32string python_lower(const std::u32string& s) {
    std::u32string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char32_t c = s[i];
        if (c == 0x130) {
            out += U"i\u0307";
        } else if (c == 0x3A3) {
            std::size_t j = i;
            while (j > 0 && unicode::is_case_ignorable(s[j - 1])) --j;
            bool final_sigma = j > 0 && unicode::is_cased(s[j - 1]);
            if (final_sigma) {
                std::size_t k = i + 1;
                while (k < s.size() && unicode::is_case_ignorable(s[k])) ++k;
                final_sigma = k == s.size() || !unicode::is_cased(s[k]);
            }
            out.push_back(final_sigma ? 0x3C2 : 0x3C3);
        } else {
            out.push_back(unicode::simple_lower(c));
        }
    }
    return out;
}

// OpenAI's basic_clean (minus ftfy) and whitespace_clean, then lower().
inline std::u32string clean(std::string_view utf8) {
    const std::u32string unescaped = html_unescape(html_unescape(from_utf8(utf8)));
    std::u32string collapsed;
    collapsed.reserve(unescaped.size());
    // str.strip() removes Python-isspace characters (which include U+001C..U+001F); \s+ is
    // White_Space (which does not): both are reproduced.
    std::size_t b = 0, e = unescaped.size();
    while (b < e && unicode::is_python_space(unescaped[b])) ++b;
    while (e > b && unicode::is_python_space(unescaped[e - 1])) --e;
    for (std::size_t i = b; i < e;) {
        if (unicode::is_white_space(unescaped[i])) {
            collapsed.push_back(U' ');
            while (i < e && unicode::is_white_space(unescaped[i])) ++i;
        } else {
            collapsed.push_back(unescaped[i++]);
        }
    }
    b = 0;
    e = collapsed.size();
    while (b < e && unicode::is_python_space(collapsed[b])) ++b;
    while (e > b && unicode::is_python_space(collapsed[e - 1])) --e;
    return python_lower(collapsed.substr(b, e - b));
}

// Does s[i..] start with the ASCII literal, compared as the IGNORECASE pattern does on
// lowercased text? Simple case folding maps U+017F (long s) to 's' and nothing else onto the
// lowercase letters of the pattern's literals.
inline bool starts_with_folded(std::u32string_view s, std::size_t i, std::string_view lit) {
    if (s.size() - i < lit.size()) return false;
    for (std::size_t k = 0; k < lit.size(); ++k)
        if (s[i + k] != char32_t(lit[k]) && !(lit[k] == 's' && s[i + k] == 0x17F)) return false;
    return true;
}

// findall of OpenAI's pattern, as (begin, length) pairs into s.
inline std::vector<std::u32string_view> pre_tokenize(std::u32string_view s) {
    using namespace unicode;
    std::vector<std::u32string_view> pieces;
    const auto is_other = [](char32_t c) {
        return !is_white_space(c) && !is_letter(c) && !is_number(c) && c != kMatchesNoAlternative;
    };
    for (std::size_t i = 0; i < s.size();) {
        std::size_t len = 0;
        for (std::string_view lit : {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
            if (starts_with_folded(s, i, lit)) {
                len = lit.size();
                break;
            }
        if (len == 0) {
            if (is_letter(s[i])) {
                while (i + len < s.size() && is_letter(s[i + len])) ++len;
            } else if (is_number(s[i])) {
                len = 1;
            } else if (is_other(s[i])) {
                while (i + len < s.size() && is_other(s[i + len])) ++len;
            }
        }
        if (len == 0) {  // white space, or U+0345: not part of any piece
            ++i;
            continue;
        }
        pieces.push_back(s.substr(i, len));
        i += len;
    }
    return pieces;
}

}  // namespace detail::text

class Tokenizer {
public:
    static constexpr std::int32_t kStartToken = 49406;  // <|startoftext|>
    static constexpr std::int32_t kEndToken = 49407;    // <|endoftext|>
    static constexpr std::int32_t kVocabSize = 49408;
    static constexpr std::size_t kMerges = 49152 - 256 - 2;  // merges[1 : 49152-256-2+1]: 48,894

    // Reads OpenAI's bpe_simple_vocab_16e6.txt.gz (gzip-compressed).
    explicit Tokenizer(const std::string& vocab_path) : Tokenizer(gunzip_file(vocab_path), vocab_path) {}

    // From the decompressed text of the vocabulary file; `what` names it in errors.
    Tokenizer(std::string_view merges_text, const std::string& what) {
        const auto bytes = byte_table();
        std::vector<std::string> vocab;
        vocab.reserve(kVocabSize);
        for (int b : table_order()) vocab.push_back(bytes[b]);
        for (int b : table_order()) vocab.push_back(bytes[b] + "</w>");
        // Line 0 is a header ("#version: 0.2"); lines 1..48894 are the merges "A B".
        std::size_t pos = merges_text.find('\n');
        WEFT_CHECK(pos != std::string_view::npos, "clip tokenizer: ", what, " has no merge lines");
        ++pos;
        for (std::size_t rank = 0; rank < kMerges; ++rank) {
            std::size_t end = merges_text.find('\n', pos);
            WEFT_CHECK(end != std::string_view::npos, "clip tokenizer: ", what, " has ", rank,
                       " merges; CLIP uses the first ", kMerges, " (is this bpe_simple_vocab_16e6?)");
            const std::string_view line = merges_text.substr(pos, end - pos);
            const std::size_t space = line.find(' ');
            WEFT_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                           line.find(' ', space + 1) == std::string_view::npos,
                       "clip tokenizer: ", what, " line ", rank + 1, " is not a merge 'A B': '", line, "'");
            ranks_[std::string(line)] = std::int32_t(rank);
            vocab.push_back(std::string(line.substr(0, space)) + std::string(line.substr(space + 1)));
            pos = end + 1;
        }
        vocab.push_back("<|startoftext|>");
        vocab.push_back("<|endoftext|>");
        for (std::size_t id = 0; id < vocab.size(); ++id) encoder_[vocab[id]] = std::int32_t(id);  // dict(): last wins
        decoder_ = std::move(vocab);
        byte_strings_ = bytes;
        cache_->ids.emplace("<|startoftext|>", std::vector<std::int32_t>{kStartToken});
        cache_->ids.emplace("<|endoftext|>", std::vector<std::int32_t>{kEndToken});
    }

    // The ids of `text` without start/end tokens (OpenAI's SimpleTokenizer.encode).
    std::vector<std::int32_t> encode(std::string_view text) const {
        const std::u32string cleaned = detail::text::clean(text);
        std::vector<std::int32_t> ids;
        for (std::u32string_view piece : detail::text::pre_tokenize(cleaned)) {
            std::string mapped;
            for (unsigned char b : detail::text::to_utf8(piece)) mapped += byte_strings_[b];
            const std::vector<std::int32_t> piece_ids = bpe_ids(mapped);
            ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
        }
        return ids;
    }

    // clip.tokenize: [n, context_length] ids, each row start + ids + end, padded with 0. A text
    // that does not fit is an error, or with `truncate` keeps its first context_length ids with
    // the last one replaced by the end token.
    Tensor<std::int64_t, 2> tokenize(const std::vector<std::string>& texts, index_t context_length = 77,
                                     bool truncate = false) const {
        WEFT_CHECK(context_length >= 1, "clip tokenize: context_length must be at least 1, got ", context_length);
        auto out = Tensor<std::int64_t, 2>::zeros({index_t(texts.size()), context_length});  // [n, L]
        std::int64_t* row = out.data();
        for (const std::string& text : texts) {
            std::vector<std::int32_t> ids = encode(text);
            ids.insert(ids.begin(), kStartToken);
            ids.push_back(kEndToken);
            if (index_t(ids.size()) > context_length) {
                WEFT_CHECK(truncate, "clip tokenize: input '", text, "' is ", ids.size(),
                           " tokens long with start and end tokens, too long for context length ",
                           context_length, " (pass truncate = true to cut it)");
                ids.resize(std::size_t(context_length));
                ids.back() = kEndToken;
            }
            std::copy(ids.begin(), ids.end(), row);
            row += context_length;
        }
        return out;
    }

    // The vocabulary entry of an id (byte characters, "</w>" suffixes), for debugging and tests.
    const std::string& token(std::int32_t id) const {
        WEFT_CHECK(id >= 0 && id < kVocabSize, "clip tokenizer: id ", id, " is outside [0, ", kVocabSize, ")");
        return decoder_[std::size_t(id)];
    }

private:
    // bytes_to_unicode: printable bytes keep their code point; the other 68, in increasing
    // order, become U+0100, U+0101, ... (so that no vocabulary entry holds a space or control).
    static bool printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

    static std::array<std::string, 256> byte_table() {
        std::array<std::string, 256> t;
        char32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            t[b].clear();
            detail::text::append_utf8(t[b], printable(b) ? char32_t(b) : next++);
        }
        return t;
    }

    // The vocabulary's order of the byte characters: the printable bytes, then the others.
    static std::array<int, 256> table_order() {
        std::array<int, 256> order{};
        int k = 0;
        for (int b = 0; b < 256; ++b)
            if (printable(b)) order[k++] = b;
        for (int b = 0; b < 256; ++b)
            if (!printable(b)) order[k++] = b;
        return order;
    }

    std::vector<std::int32_t> bpe_ids(const std::string& piece) const {
        {
            std::lock_guard lock(cache_->mutex);
            if (auto it = cache_->ids.find(piece); it != cache_->ids.end()) return it->second;
        }
        // Symbols: one per code point of the byte-mapped piece, the last one with "</w>".
        std::vector<std::string> word;
        for (std::size_t i = 0; i < piece.size();) {
            std::size_t n = 1;
            while (i + n < piece.size() && (std::uint8_t(piece[i + n]) & 0xC0) == 0x80) ++n;
            word.emplace_back(piece.substr(i, n));
            i += n;
        }
        word.back() += "</w>";
        std::string key;
        while (word.size() > 1) {
            // The adjacent pair with the lowest merge rank ...
            std::int32_t best = std::numeric_limits<std::int32_t>::max();
            std::size_t best_at = 0;
            for (std::size_t i = 0; i + 1 < word.size(); ++i) {
                key.assign(word[i]).append(" ").append(word[i + 1]);
                if (auto it = ranks_.find(key); it != ranks_.end() && it->second < best) {
                    best = it->second;
                    best_at = i;
                }
            }
            if (best == std::numeric_limits<std::int32_t>::max()) break;
            // ... merged everywhere it occurs, left to right, without overlaps.
            const std::string first = word[best_at], second = word[best_at + 1];
            std::vector<std::string> merged;
            merged.reserve(word.size());
            for (std::size_t i = 0; i < word.size();) {
                if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
                    merged.push_back(first + second);
                    i += 2;
                } else {
                    merged.push_back(std::move(word[i++]));
                }
            }
            word = std::move(merged);
        }
        std::vector<std::int32_t> ids;
        ids.reserve(word.size());
        for (const std::string& symbol : word) {
            auto it = encoder_.find(symbol);
            WEFT_CHECK(it != encoder_.end(), "clip tokenizer: BPE symbol '", symbol, "' is not in the vocabulary");
            ids.push_back(it->second);
        }
        std::lock_guard lock(cache_->mutex);
        cache_->ids.emplace(piece, ids);
        return ids;
    }

    std::unordered_map<std::string, std::int32_t> ranks_;    // "A B" -> merge rank
    std::unordered_map<std::string, std::int32_t> encoder_;  // vocabulary entry -> id
    std::vector<std::string> decoder_;                       // id -> vocabulary entry
    std::array<std::string, 256> byte_strings_;              // byte -> UTF-8 of its character
    struct Cache {                                           // piece -> ids; behind a pointer so
        std::mutex mutex;                                    // that a Tokenizer stays movable
        std::unordered_map<std::string, std::vector<std::int32_t>> ids;
    };
    std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace weft::clip
