// weft/io/detail/json.hpp: the small, strict JSON reader and writer behind safetensors headers.
//
// Not a general JSON library: it parses RFC 8259 JSON into a plain tree, keeps object members
// in file order, and rejects what a checkpoint header must never contain: duplicate keys (JSON
// parsers usually keep the last one silently, which lets two readers see different tensors),
// invalid UTF-8, lone surrogates, raw control characters in strings, nesting deeper than
// `max_depth`, and anything after the value but whitespace. Numbers are kept as their literal
// text; `to_u64` turns the plain non-negative integer form into a value, checking overflow.
// weft carries its own reader so that weft::weft needs no JSON package (see docs/io.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../core/error.hpp"

namespace weft::detail::json {

// Length of the well-formed UTF-8 sequence starting at s[at] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 if there is none.
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t at) {
    auto byte = [&](std::size_t i) -> unsigned {
        return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u;
    };
    auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xbf) {
        return i < s.size() && byte(i) >= lo && byte(i) <= hi;
    };
    if (at >= s.size()) return 0;
    const unsigned b0 = byte(at);
    if (b0 < 0x80) return 1;
    if (b0 >= 0xc2 && b0 <= 0xdf) return cont(at + 1) ? 2 : 0;
    if (b0 == 0xe0) return cont(at + 1, 0xa0) && cont(at + 2) ? 3 : 0;
    if (b0 == 0xed) return cont(at + 1, 0x80, 0x9f) && cont(at + 2) ? 3 : 0;  // U+D800..DFFF excluded
    if (b0 >= 0xe1 && b0 <= 0xef) return cont(at + 1) && cont(at + 2) ? 3 : 0;
    if (b0 == 0xf0) return cont(at + 1, 0x90) && cont(at + 2) && cont(at + 3) ? 4 : 0;
    if (b0 >= 0xf1 && b0 <= 0xf3) return cont(at + 1) && cont(at + 2) && cont(at + 3) ? 4 : 0;
    if (b0 == 0xf4) return cont(at + 1, 0x80, 0x8f) && cont(at + 2) && cont(at + 3) ? 4 : 0;
    return 0;
}

struct Member;

struct Value {
    enum class Kind : std::uint8_t { null, boolean, number, string, array, object };
    Kind kind = Kind::null;
    bool flag = false;                                   // boolean
    std::string text;                                    // string (decoded UTF-8) or number literal
    std::vector<Value> items;                            // array
    std::vector<Member> members;                         // object, in file order
    std::size_t pos = 0;                                 // byte offset of the value in the input

    const char* kind_name() const {
        switch (kind) {
            case Kind::null: return "null";
            case Kind::boolean: return "a boolean";
            case Kind::number: return "a number";
            case Kind::string: return "a string";
            case Kind::array: return "an array";
            case Kind::object: return "an object";
        }
        return "?";
    }
};

struct Member {
    std::string key;
    Value value;
};

inline constexpr int max_depth = 64;

// Parses `in` as exactly one JSON value surrounded by optional whitespace. Errors throw
// weft::Error starting with `context` and naming the byte offset.
class Parser {
public:
    Parser(std::string_view in, std::string context) : in_(in), context_(std::move(context)) {}

    Value parse_document() {
        skip_ws();
        Value v = parse_value(0, {});
        skip_ws();
        if (p_ != in_.size()) fail("unexpected ", describe(p_), " after the end of the JSON value");
        return v;
    }

private:
    template <class... Parts>
    [[noreturn]] void fail_at(std::size_t at, const Parts&... parts) const {
        WEFT_FAIL(context_, ": JSON syntax error at byte ", at, " of the header: ", parts...);
    }
    template <class... Parts>
    [[noreturn]] void fail(const Parts&... parts) const {
        fail_at(p_, parts...);
    }

    std::string describe(std::size_t at) const {
        if (at >= in_.size()) return "end of header";
        const unsigned char c = static_cast<unsigned char>(in_[at]);
        if (c >= 0x20 && c < 0x7f) return std::string("character '") + char(c) + "'";
        static const char* hex = "0123456789abcdef";
        return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
    }

    void skip_ws() {
        while (p_ < in_.size() && (in_[p_] == ' ' || in_[p_] == '\t' || in_[p_] == '\n' || in_[p_] == '\r'))
            ++p_;
    }

    void expect(char c, const char* what) {
        skip_ws();
        if (p_ >= in_.size() || in_[p_] != c) fail("expected ", what, ", found ", describe(p_));
        ++p_;
    }

    // `owner` is the key whose value this is ("" at the top), for error messages.
    Value parse_value(int depth, std::string_view owner) {
        if (p_ >= in_.size()) fail("expected a value, found end of header");
        const char c = in_[p_];
        switch (c) {
            case '{': return parse_object(depth, owner);
            case '[': return parse_array(depth, owner);
            case '"': {
                Value v;
                v.kind = Value::Kind::string;
                v.pos = p_;
                v.text = parse_string();
                return v;
            }
            case 't': return parse_literal("true", Value::Kind::boolean, true);
            case 'f': return parse_literal("false", Value::Kind::boolean, false);
            case 'n': return parse_literal("null", Value::Kind::null, false);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
                fail("expected a value, found ", describe(p_));
        }
    }

    Value parse_literal(std::string_view word, Value::Kind kind, bool flag) {
        if (in_.substr(p_, word.size()) != word) fail("invalid literal starting with ", describe(p_));
        Value v;
        v.kind = kind;
        v.flag = flag;
        v.pos = p_;
        p_ += word.size();
        return v;
    }

    // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    Value parse_number() {
        Value v;
        v.kind = Value::Kind::number;
        v.pos = p_;
        const std::size_t start = p_;
        auto digit = [&] { return p_ < in_.size() && in_[p_] >= '0' && in_[p_] <= '9'; };
        if (in_[p_] == '-') ++p_;
        if (!digit()) fail("expected a digit in a number, found ", describe(p_));
        if (in_[p_] == '0') {
            ++p_;
            if (digit()) fail("numbers must not have leading zeros");
        } else {
            while (digit()) ++p_;
        }
        if (p_ < in_.size() && in_[p_] == '.') {
            ++p_;
            if (!digit()) fail("expected a digit after the decimal point, found ", describe(p_));
            while (digit()) ++p_;
        }
        if (p_ < in_.size() && (in_[p_] == 'e' || in_[p_] == 'E')) {
            ++p_;
            if (p_ < in_.size() && (in_[p_] == '+' || in_[p_] == '-')) ++p_;
            if (!digit()) fail("expected a digit in the exponent, found ", describe(p_));
            while (digit()) ++p_;
        }
        v.text = std::string(in_.substr(start, p_ - start));
        return v;
    }

    unsigned hex4() {
        if (p_ + 4 > in_.size()) fail("truncated \\u escape");
        unsigned u = 0;
        for (int i = 0; i < 4; ++i) {
            const char h = in_[p_++];
            u <<= 4;
            if (h >= '0' && h <= '9') u |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f') u |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') u |= unsigned(h - 'A' + 10);
            else fail_at(p_ - 1, "invalid hex digit in \\u escape: ", describe(p_ - 1));
        }
        return u;
    }

    static void append_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xc0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out += char(0xe0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3f));
            out += char(0x80 | (cp & 0x3f));
        } else {
            out += char(0xf0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3f));
            out += char(0x80 | ((cp >> 6) & 0x3f));
            out += char(0x80 | (cp & 0x3f));
        }
    }

    std::string parse_string() {
        const std::size_t open = p_;
        ++p_;  // the opening quote
        std::string out;
        for (;;) {
            if (p_ >= in_.size()) fail_at(open, "unterminated string");
            const unsigned char c = static_cast<unsigned char>(in_[p_]);
            if (c == '"') {
                ++p_;
                return out;
            }
            if (c < 0x20) fail("raw control character ", describe(p_), " in a string (must be escaped)");
            if (c == '\\') {
                ++p_;
                if (p_ >= in_.size()) fail_at(open, "unterminated string");
                const char e = in_[p_++];
                switch (e) {
                    case '"': out += '"'; break;
                    case '\\': out += '\\'; break;
                    case '/': out += '/'; break;
                    case 'b': out += '\b'; break;
                    case 'f': out += '\f'; break;
                    case 'n': out += '\n'; break;
                    case 'r': out += '\r'; break;
                    case 't': out += '\t'; break;
                    case 'u': {
                        const std::size_t at = p_ - 2;
                        unsigned cp = hex4();
                        if (cp >= 0xdc00 && cp <= 0xdfff) fail_at(at, "lone low surrogate in \\u escape");
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                            if (in_.substr(p_, 2) != "\\u") fail_at(at, "lone high surrogate in \\u escape");
                            p_ += 2;
                            const unsigned lo = hex4();
                            if (lo < 0xdc00 || lo > 0xdfff) fail_at(at, "lone high surrogate in \\u escape");
                            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        }
                        append_utf8(out, cp);
                        break;
                    }
                    default: fail_at(p_ - 1, "invalid escape '\\", e, "' in a string");
                }
                continue;
            }
            if (c < 0x80) {
                out += char(c);
                ++p_;
                continue;
            }
            const std::size_t n = utf8_sequence_length(in_, p_);
            if (n == 0) fail("invalid UTF-8 (", describe(p_), ") in a string");
            out.append(in_.substr(p_, n));
            p_ += n;
        }
    }

    Value parse_array(int depth, std::string_view owner) {
        if (depth >= max_depth) fail("nesting deeper than ", max_depth, " levels");
        Value v;
        v.kind = Value::Kind::array;
        v.pos = p_;
        ++p_;
        skip_ws();
        if (p_ < in_.size() && in_[p_] == ']') {
            ++p_;
            return v;
        }
        for (;;) {
            skip_ws();
            v.items.push_back(parse_value(depth + 1, owner));
            skip_ws();
            if (p_ < in_.size() && in_[p_] == ']') {
                ++p_;
                return v;
            }
            expect(',', "',' or ']' in an array");
        }
    }

    Value parse_object(int depth, std::string_view owner) {
        if (depth >= max_depth) fail("nesting deeper than ", max_depth, " levels");
        Value v;
        v.kind = Value::Kind::object;
        v.pos = p_;
        ++p_;
        skip_ws();
        if (p_ < in_.size() && in_[p_] == '}') {
            ++p_;
            return v;
        }
        std::set<std::string, std::less<>> seen;
        for (;;) {
            skip_ws();
            if (p_ >= in_.size() || in_[p_] != '"')
                fail("expected a string key in an object, found ", describe(p_));
            const std::size_t key_pos = p_;
            std::string key = parse_string();
            if (!seen.insert(key).second)
                WEFT_FAIL(context_, ": duplicate key '", key, "'",
                          owner.empty() ? std::string() : " in the entry of '" + std::string(owner) + "'",
                          " at byte ", key_pos, " of the header (safetensors forbids duplicate keys)");
            expect(':', "':' after an object key");
            skip_ws();
            Value item = parse_value(depth + 1, key);
            v.members.push_back(Member{std::move(key), std::move(item)});
            skip_ws();
            if (p_ < in_.size() && in_[p_] == '}') {
                ++p_;
                return v;
            }
            expect(',', "',' or '}' in an object");
        }
    }

    std::string_view in_;
    std::string context_;
    std::size_t p_ = 0;
};

// The value of a number written as a plain non-negative integer ("0", "42"); false for
// fractions, exponents, signs, or values above 2^64 - 1.
inline bool to_u64(const Value& v, std::uint64_t& out) {
    if (v.kind != Value::Kind::number || v.text.empty()) return false;
    std::uint64_t x = 0;
    for (const char c : v.text) {
        if (c < '0' || c > '9') return false;
        const std::uint64_t d = std::uint64_t(c - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    out = x;
    return true;
}

// Appends `s` as a JSON string literal, escaped as serde_json (the reference safetensors
// writer) escapes: '"', '\\' and control characters; other UTF-8 is written as is.
inline void write_string(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

// True when `s` is well-formed UTF-8 (what a header must be, so every name weft writes can be
// read back by any reader).
inline bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

}  // namespace weft::detail::json
