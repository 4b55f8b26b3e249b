"""Generates include/weft/models/clip/unicode_tables.hpp and html_entities.hpp, the character data
weft's CLIP tokenizer needs to reproduce OpenAI's simple_tokenizer exactly.

Run with Debian's interpreter after `apt-get install unicode-data python3-regex`:

    /usr/bin/python3 scripts/gen-unicode-tables.py

Sources, and why each one:
  * letters (L*), numbers (N*): /usr/share/unicode/UnicodeData.txt (Debian unicode-data 15.0.0),
    White_Space: /usr/share/unicode/PropList.txt. OpenAI's pattern runs on the `regex` module,
    whose \\p{L}, \\p{N} and \\s are these properties; the script checks that against the
    installed `regex` for every code point (with IGNORECASE, as OpenAI compiles it) and stops on
    any difference. The one IGNORECASE quirk (U+0345 matches no alternative) is emitted.
  * Python's str.isspace (used by str.strip) and str.lower: enumerated from this interpreter
    (Python 3.11, unicodedata 14.0.0), because the reference calls them and they differ from the
    above (strip also removes U+001C..U+001F; lower has its own Unicode version).
  * Cased and Case_Ignorable (for the final-sigma rule of str.lower): DerivedCoreProperties.txt.
  * HTML5 named character references and the numeric-reference fixups: Python's html module.
"""
import html
import html.entities
import pathlib
import sys
import unicodedata

import regex

UCD = pathlib.Path("/usr/share/unicode")
OUT = pathlib.Path(__file__).resolve().parent.parent / "include/weft/models/clip"


def categories():
    cats = {}
    rows = [line.split(";") for line in (UCD / "UnicodeData.txt").read_text().splitlines()]
    for i, f in enumerate(rows):
        cats[int(f[0], 16)] = f[2]
        if f[1].endswith("First>"):
            for c in range(int(f[0], 16), int(rows[i + 1][0], 16) + 1):
                cats[c] = f[2]
    return cats


def prop(file, name):
    out = set()
    for line in (UCD / file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        r, p = [x.strip() for x in line.split(";")[:2]]
        if p == name:
            a, _, b = r.partition("..")
            out.update(range(int(a, 16), int(b or a, 16) + 1))
    return out


def ranges(cps):
    cps = sorted(cps)
    out = []
    for c in cps:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def emit_ranges(name, cps, comment):
    rs = ranges(cps)
    items = [f"{{0x{a:X}, 0x{b:X}}}" for a, b in rs]
    body = ",\n".join("    " + ", ".join(items[i:i + 6]) for i in range(0, len(items), 6))
    return f"// {comment} ({len(rs)} ranges)\ninline constexpr CodeRange {name}[] = {{\n{body}}};\n"


def lower_runs():
    # Runs of code points whose single-code-point lowercase is c + delta, with a stride of 1 or 2
    # (Latin Extended and Cyrillic alternate upper/lower).
    pairs = []
    for c in range(0x110000):
        if c == 0x3A3 or c == 0x130:
            continue  # handled in code: final sigma, and the one multi-code-point mapping
        lo = chr(c).lower()
        if lo != chr(c):
            assert len(lo) == 1, hex(c)
            pairs.append((c, ord(lo) - c))
    assert chr(0x130).lower() == "i\u0307"
    runs = []
    for c, d in pairs:
        if runs:
            first, last, delta, stride = runs[-1]
            if delta == d and (c - last == stride or (first == last and c - last in (1, 2))):
                runs[-1] = [first, c, d, c - last]
                continue
        runs.append([c, c, d, 1])
    items = [f"{{0x{a:X}, 0x{b:X}, {d}, {s}}}" for a, b, d, s in runs]
    body = ",\n".join("    " + ", ".join(items[i:i + 4]) for i in range(0, len(items), 4))
    return (f"// Python str.lower, one code point to one: {{first, last, delta, stride}} "
            f"({len(pairs)} code points in {len(runs)} runs)\n"
            f"inline constexpr LowerRun kLowerRuns[] = {{\n{body}}};\n")


def main():
    cats = categories()
    ws = prop("PropList.txt", "White_Space")
    letters = {c for c, k in cats.items() if k.startswith("L")}
    numbers = {c for c, k in cats.items() if k.startswith("N")}
    pat_l = regex.compile(r"[\p{L}]", regex.IGNORECASE)
    pat_n = regex.compile(r"[\p{N}]", regex.IGNORECASE)
    pat_o = regex.compile(r"[^\s\p{L}\p{N}]", regex.IGNORECASE)
    pat_s = regex.compile(r"\s")
    neither = []
    for c in range(0x110000):
        ch = chr(c)
        assert bool(pat_l.match(ch)) == (c in letters), hex(c)
        assert bool(pat_n.match(ch)) == (c in numbers), hex(c)
        assert bool(pat_s.match(ch)) == (c in ws), hex(c)
        other = c not in letters and c not in numbers and c not in ws
        if bool(pat_o.match(ch)) != other:
            assert other, hex(c)
            neither.append(c)
    assert neither == [0x345], neither
    pyspace = {c for c in range(0x110000) if chr(c).isspace()}
    cased = prop("DerivedCoreProperties.txt", "Cased")
    ignorable = prop("DerivedCoreProperties.txt", "Case_Ignorable")

    head = ("// GENERATED by scripts/gen-unicode-tables.py — do not edit; rerun the script.\n"
            f"// Unicode {unicodedata.unidata_version} for Python's str.lower/str.isspace (Python "
            f"{sys.version.split()[0]}); Unicode 15.0.0 (Debian unicode-data) for the rest,\n"
            f"// checked against python3-regex {regex.__version__} code point by code point.\n")
    text = head + """// Character classes of OpenAI CLIP's pre-tokenization pattern and of its text cleaning.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

namespace weft::clip::unicode {

struct CodeRange {
    char32_t first, last;
};
struct LowerRun {
    char32_t first, last;
    std::int32_t delta, stride;
};

"""
    text += emit_ranges("kLetter", letters, "\\p{L}: general category L*") + "\n"
    text += emit_ranges("kNumber", numbers, "\\p{N}: general category N*") + "\n"
    text += emit_ranges("kWhiteSpace", ws, "\\s of the regex module: White_Space") + "\n"
    text += emit_ranges("kPythonSpace", pyspace, "Python str.isspace (str.strip)") + "\n"
    text += emit_ranges("kCased", cased, "Cased (final sigma rule)") + "\n"
    text += emit_ranges("kCaseIgnorable", ignorable, "Case_Ignorable (final sigma rule)") + "\n"
    text += lower_runs() + "\n"
    text += """// U+0345 (a combining mark that case-folds to a letter) is matched by no alternative of the
// pattern when it is compiled with IGNORECASE, as OpenAI's is: such a code point is dropped.
inline constexpr char32_t kMatchesNoAlternative = 0x345;

inline bool in_ranges(std::span<const CodeRange> table, char32_t c) {
    auto it = std::upper_bound(table.begin(), table.end(), c,
                               [](char32_t v, const CodeRange& r) { return v < r.first; });
    return it != table.begin() && c <= std::prev(it)->last;
}

inline bool is_letter(char32_t c) { return in_ranges(kLetter, c); }
inline bool is_number(char32_t c) { return in_ranges(kNumber, c); }
inline bool is_white_space(char32_t c) { return in_ranges(kWhiteSpace, c); }
inline bool is_python_space(char32_t c) { return in_ranges(kPythonSpace, c); }
inline bool is_cased(char32_t c) { return in_ranges(kCased, c); }
inline bool is_case_ignorable(char32_t c) { return in_ranges(kCaseIgnorable, c); }

// Python's one-to-one lowercase mapping (U+0130 and U+03A3 are handled by the caller).
inline char32_t simple_lower(char32_t c) {
    auto it = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                               [](char32_t v, const LowerRun& r) { return v < r.first; });
    if (it == std::begin(kLowerRuns)) return c;
    const LowerRun& r = *std::prev(it);
    if (c > r.last || (c - r.first) % r.stride != 0) return c;
    return char32_t(std::int64_t(c) + r.delta);
}

}  // namespace weft::clip::unicode
"""
    (OUT / "unicode_tables.hpp").write_text(text)

    def lit(s):
        return '"' + "".join(chr(b) if (b < 128 and chr(b).isalnum()) or chr(b) == ";" else f"\\{b:03o}"
                             for b in s.encode("utf-8")) + '"'

    ents = sorted(html.entities.html5.items())
    rows = ",\n".join(f"    {{{lit(k)}, {lit(v)}}}" for k, v in ents)
    inv = sorted(html._invalid_charrefs.items())
    inv_rows = ", ".join(f"{{0x{k:X}, 0x{ord(v):X}}}" for k, v in inv)
    bad = sorted(html._invalid_codepoints)
    bad_rows = ", ".join(f"0x{c:X}" for c in bad)
    text = ("// GENERATED by scripts/gen-unicode-tables.py — do not edit; rerun the script.\n"
            f"// From Python {sys.version.split()[0]}'s html module (html.entities.html5 and the fixups "
            "of html.unescape).\n" + """#pragma once

#include <string_view>

namespace weft::clip::html_tables {

struct Entity {
    std::string_view name;   // without '&'; some legacy names also exist without ';'
    std::string_view value;  // UTF-8
};
struct CharrefFix {
    char32_t number, replacement;
};

// Sorted by name (byte order).
inline constexpr Entity kEntities[] = {
""" + rows + """};

// Numeric references that HTML5 maps to another character (Windows-1252 and NUL).
inline constexpr CharrefFix kInvalidCharrefs[] = {""" + inv_rows + """};

// Numeric references that html.unescape turns into nothing. Sorted.
inline constexpr char32_t kInvalidCodepoints[] = {""" + bad_rows + """};

}  // namespace weft::clip::html_tables
""")
    (OUT / "html_entities.hpp").write_text(text)


if __name__ == "__main__":
    main()
