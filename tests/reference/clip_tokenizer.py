"""Expected token ids for weft's CLIP tokenizer (tests/tokenizer/), from a re-implementation of
OpenAI CLIP's clip/simple_tokenizer.py and clip.tokenize that follows them step by step, minus
ftfy.fix_text (not packaged in Debian bookworm; weft does not run it either, see
docs/clip-tokenizer.md). Needs python3-regex; no torch:

    /usr/bin/python3 tests/reference/clip_tokenizer.py

Writes tests/reference/data/clip_tokenizer.json: [{"text": ..., "ids": [...]}, ...] with the ids
of encode() wrapped in the start and end tokens (no padding), and checks the spec's test vectors.
"""
import gzip
import html
import json
import pathlib

import regex

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
VOCAB = SHARED / "data/clip/bpe_simple_vocab_16e6.txt.gz"
CLASSES = SHARED / "data/ade20k/classes.txt"
OUT = pathlib.Path(__file__).resolve().parent / "data/clip_tokenizer.json"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def pairs_of(word):
    return {(a, b) for a, b in zip(word, word[1:])}


class Tokenizer:
    def __init__(self, path):
        self.byte_encoder = bytes_to_unicode()
        merges = gzip.open(path).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in merges[1:49152 - 256 - 2 + 1]]
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
                                 r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = pairs_of(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = pairs_of(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text):
        text = html.unescape(html.unescape(text)).strip()  # basic_clean without ftfy
        text = regex.sub(r"\s+", " ", text).strip().lower()  # whitespace_clean, then lower
        ids = []
        for piece in regex.findall(self.pat, text):
            piece = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids += [self.encoder[t] for t in self.bpe(piece).split(" ")]
        return ids

    def wrapped(self, text):
        return [49406] + self.encode(text) + [49407]


TEXTS = [
    "a photo of a dog.", "a photo of a dog", "Hello World!", "it's 2022", "skyscraper",
    "a photo of a wall.", "a photo of a chest of drawers.", "A PHOTO OF A CAT",
    "I'm sure they'll say we'd've gone, isn't it? You're right; we've 'S 'T 'RE",
    "don't 'stop' \"quoted\" (parens) [brackets] {braces} ... !!! ?!? -- __ ** a+b=c",
    "3.14159 and 1,000,000 and 2nd 3rd 42nd ½ ² Ⅻ ٣",
    "café naïve résumé Ångström jalapeño façade über straße",
    "東京タワーの写真 사진 中文 日本語",
    "emoji 🐶🐱 👍🏽 ❤️ 🇫🇷 👨‍👩‍👧",
    "   leading\t\ttabs\n\nnewlines   and   spaces   ",
    "nbsp\u00a0thin\u2009ideographic\u3000space \u001cfile-sep\u001d \u001c",
    "fish &amp; chips &amp;amp; more &lt;b&gt; &quot;q&quot; &#39;s &#x41;&#65; &copy &notit; &amp",
    "&#0; &#128; &#150; &#x110000; &#xD800; &#1; &AMP; &nosuchentity; &;",
    "<|startoftext|>a photo<|endoftext|> <|ſtartoftext|> <|EndOfText|>",
    "ΟΔΟΣ Σ ΣΑΣ. İstanbul ǅemal Ǆ ΑΣ'",
    "it'\u017f ſome <|ſtartoftext|>",
    "dotted\u0345iota and \u0301combining e\u0301",
    "\u00adsoft hyphen zero\u200bwidth",
    "",
    "   ",
    "x" * 200,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    " ".join(["a photo of a wall"] * 20),
]


def main():
    tok = Tokenizer(VOCAB)
    vectors = {
        "a photo of a dog.": [49406, 320, 1125, 539, 320, 1929, 269, 49407],
        "Hello World!": [49406, 3306, 1002, 256, 49407],
        "it's 2022": [49406, 585, 568, 273, 271, 273, 273, 49407],
        "skyscraper": [49406, 3075, 11187, 1284, 49407],
    }
    for text, ids in vectors.items():
        assert tok.wrapped(text) == ids, (text, tok.wrapped(text))
    classes = CLASSES.read_text().splitlines()
    assert len(classes) == 150
    cases = [{"text": t, "ids": tok.wrapped(t)} for t in classes + TEXTS]
    cases += [{"text": f"a photo of a {c}.", "ids": tok.wrapped(f"a photo of a {c}.")}
              for c in classes[:20]]
    OUT.write_text(json.dumps(cases, ensure_ascii=True, indent=0) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
