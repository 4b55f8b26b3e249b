// weft::clip::Tokenizer against ids from tests/reference/clip_tokenizer.py (a step-by-step
// re-implementation of OpenAI's simple_tokenizer with Python's html, str and regex modules).
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/models/clip/tokenizer.hpp>

namespace {

const std::string kVocab = WEFT_SHARED_DIR "/data/clip/bpe_simple_vocab_16e6.txt.gz";

const weft::clip::Tokenizer& tokenizer() {
    static const weft::clip::Tokenizer tok(kVocab);
    return tok;
}

struct Case {
    std::string text;
    std::vector<std::int32_t> ids;  // with start and end tokens, unpadded
};

const std::vector<Case>& cases() {
    static const std::vector<Case> all = [] {
        std::ifstream f(std::string(WEFT_SOURCE_DIR) + "/tests/reference/data/clip_tokenizer.json");
        REQUIRE(f);
        const auto j = nlohmann::json::parse(f);
        std::vector<Case> out;
        for (const auto& c : j) out.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<std::int32_t>>()});
        return out;
    }();
    return all;
}

std::vector<std::int64_t> row(const weft::Tensor<std::int64_t, 2>& t, weft::index_t i) {
    return {t.data() + i * t.size(1), t.data() + (i + 1) * t.size(1)};
}

std::string error_of(auto&& f) {
    try {
        f();
    } catch (const weft::Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("clip tokenizer vocabulary layout and special tokens", "[tokenizer]") {
    const auto& tok = tokenizer();
    CHECK(tok.token(0) == "!");
    CHECK(tok.token(64) == "a");
    CHECK(tok.token(188) == "\xC4\x80");  // byte 0 -> U+0100, first of the remapped bytes
    CHECK(tok.token(320) == "a</w>");
    CHECK(tok.token(49406) == "<|startoftext|>");
    CHECK(tok.token(49407) == "<|endoftext|>");
    CHECK(tok.token(512) == "in");  // the first merge, "i n", concatenated
    CHECK(error_of([&] { (void)tok.token(49408); }).find("id 49408 is outside [0, 49408)") != std::string::npos);
}

TEST_CASE("clip tokenizer encode matches the reference ids", "[tokenizer]") {
    const auto& tok = tokenizer();
    REQUIRE(cases().size() > 150);
    for (const Case& c : cases()) {
        INFO("text: " << c.text);
        const std::vector<std::int32_t> expected(c.ids.begin() + 1, c.ids.end() - 1);
        CHECK(tok.encode(c.text) == expected);
    }
}

TEST_CASE("clip tokenize pads with zeros and errors on long texts", "[tokenizer]") {
    const auto& tok = tokenizer();
    for (const Case& c : cases()) {
        INFO("text: " << c.text);
        if (c.ids.size() <= 77) {
            const auto t = tok.tokenize({c.text});
            REQUIRE(t.shape() == weft::Shape<2>{1, 77});
            std::vector<std::int64_t> expected(c.ids.begin(), c.ids.end());
            expected.resize(77, 0);
            CHECK(row(t, 0) == expected);
        } else {
            const std::string msg = error_of([&] { (void)tok.tokenize({c.text}); });
            CHECK(msg.find("is " + std::to_string(c.ids.size()) + " tokens long") != std::string::npos);
            CHECK(msg.find("too long for context length 77") != std::string::npos);
        }
    }
}

TEST_CASE("clip tokenize truncate keeps the first tokens and ends with the end token", "[tokenizer]") {
    const auto& tok = tokenizer();
    int long_ones = 0;
    for (const Case& c : cases()) {
        INFO("text: " << c.text);
        for (weft::index_t len : {77, 5, 2}) {
            const auto t = tok.tokenize({c.text, "a dog"}, len, /*truncate=*/true);
            std::vector<std::int64_t> expected(c.ids.begin(), c.ids.end());
            if (weft::index_t(expected.size()) > len) {
                expected.resize(std::size_t(len));
                expected.back() = 49407;
                ++long_ones;
            }
            expected.resize(std::size_t(len), 0);
            CHECK(row(t, 0) == expected);
            std::vector<std::int64_t> dog{49406, 320, 1929, 49407};
            if (len < 4) dog = {49406, 49407};
            dog.resize(std::size_t(len), 0);
            CHECK(row(t, 1) == dog);
        }
    }
    CHECK(long_ones > 100);
}

TEST_CASE("clip tokenize of the ADE20K class names with context length 5", "[tokenizer]") {
    // Spec appendix A: every name fits in 5 tokens; spot-check a few rows of it.
    std::vector<std::string> names;
    for (std::size_t i = 0; i < 150; ++i) names.push_back(cases()[i].text);
    const auto t = tokenizer().tokenize(names, 5);
    REQUIRE(t.shape() == weft::Shape<2>{150, 5});
    CHECK(names[0] == "wall");
    CHECK(row(t, 0) == std::vector<std::int64_t>{49406, 2569, 49407, 0, 0});
    CHECK(row(t, 78) == std::vector<std::int64_t>{49406, 13331, 4169, 49407, 0});  // arcade machine
    CHECK(row(t, 95) == std::vector<std::int64_t>{49406, 1159, 36640, 49407, 0});   // bannister
    for (weft::index_t i = 0; i < 150; ++i) {
        std::vector<std::int64_t> expected(cases()[std::size_t(i)].ids.begin(), cases()[std::size_t(i)].ids.end());
        expected.resize(5, 0);
        CHECK(row(t, i) == expected);
    }
}

TEST_CASE("clip tokenizer errors name the problem", "[tokenizer]") {
    const auto& tok = tokenizer();
    CHECK(error_of([&] { (void)tok.encode("bad \xC3 utf8"); }).find("invalid UTF-8 at byte 4") != std::string::npos);
    CHECK(error_of([&] { (void)tok.encode("\xED\xA0\x80"); }).find("invalid UTF-8") != std::string::npos);
    CHECK(error_of([&] { (void)tok.tokenize({"a"}, 0); }).find("context_length must be at least 1") != std::string::npos);
    CHECK(error_of([&] { weft::clip::Tokenizer t("/nonexistent/vocab.txt.gz"); }).find("cannot open '/nonexistent/vocab.txt.gz'") !=
          std::string::npos);
    CHECK(error_of([] { weft::clip::Tokenizer t("#version: 0.2\ni n\nt h\n", "tiny.txt"); })
              .find("tiny.txt has 2 merges; CLIP uses the first 48894") != std::string::npos);
    CHECK(error_of([] { weft::clip::Tokenizer t("#version: 0.2\nin\n", "bad.txt"); })
              .find("bad.txt line 1 is not a merge 'A B': 'in'") != std::string::npos);
}

TEST_CASE("gunzip rejects malformed gzip data", "[tokenizer]") {
    std::ifstream f(kVocab, std::ios::binary);
    const std::string gz((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    REQUIRE(gz.size() == 1356917);
    const std::string text = weft::clip::gunzip(gz);
    CHECK(text.size() > 1000000);
    CHECK(text.rfind("\"bpe_simple_vocab_16e6.txt#version: 0.2\n", 0) == 0);
    using weft::clip::gunzip;
    CHECK(error_of([&] { (void)gunzip("plain text, not gzip at all"); }).find("is not a gzip file") != std::string::npos);
    CHECK(error_of([&] { (void)gunzip(gz.substr(0, gz.size() / 2)); }).find("truncated") != std::string::npos);
    std::string corrupt = gz;
    corrupt[corrupt.size() - 6] ^= 1;  // inside the stored CRC-32
    CHECK(error_of([&] { (void)gunzip(corrupt); }).find("CRC-32 mismatch") != std::string::npos);
}
