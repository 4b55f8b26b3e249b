// Reading image-caption pairs (TSV, JSONL, folder) and labelled folders, and their errors.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "../../examples/clip_pretrain/pairs.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace clip_pretrain;
using clip_pretrain_test::TempDir;

namespace {

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

// read_pairs(list) fails with a message containing each of `parts`.
void check_error(const fs::path& list, const std::string& text, std::initializer_list<std::string> parts) {
    write(list, text);
    INFO(text);
    try {
        read_pairs(list);
        FAIL("no error");
    } catch (const std::exception& e) {
        for (const auto& part : parts) CHECK_THAT(e.what(), Catch::Contains(part));
    }
}

}  // namespace

TEST_CASE("read_pairs: TSV with paths relative to the list's folder") {
    TempDir tmp("tsv");
    const fs::path root = tmp.path / "set";
    write(root / "img" / "a.png", "x");
    write(root / "img" / "b.jpg", "x");
    write(tmp.path / "abs.png", "x");
    const std::string abs = (tmp.path / "abs.png").string();
    write(root / "list.tsv", "img/a.png\ta red circle\r\n\nimg/b.jpg\tcaption with\ta tab\n" + abs + "\tabsolute\n");
    const auto pairs = read_pairs(root / "list.tsv");
    REQUIRE(pairs.size() == 3);
    CHECK(pairs[0].image == root / "img" / "a.png");
    CHECK(pairs[0].caption == "a red circle");  // '\r' dropped
    CHECK(pairs[1].image == root / "img" / "b.jpg");
    CHECK(pairs[1].caption == "caption with\ta tab");  // everything after the first tab
    CHECK(pairs[2].image == tmp.path / "abs.png");
    CHECK(pairs[2].caption == "absolute");
}

TEST_CASE("read_pairs: TSV errors name the file and line") {
    TempDir tmp("tsv_errors");
    write(tmp.path / "a.png", "x");
    const fs::path list = tmp.path / "list.tsv";
    check_error(list, "a.png\tok\na.png no tab\n", {"list.tsv\" line 2", "no tab"});
    check_error(list, "a.png\tok\n\na.png\t  \n", {"line 3", "empty caption"});
    check_error(list, "a.png\tok\nmissing.png\tcap\n", {"line 2", "missing.png", "does not exist"});
    check_error(list, "\tcap\n", {"line 1", "empty image path"});
    check_error(list, "\n\n", {"lists no pairs"});
    CHECK_THROWS_WITH(read_pairs(tmp.path / "nope.tsv"), Catch::Contains("does not exist"));
    write(tmp.path / "list.csv", "a.png,cap\n");
    CHECK_THROWS_WITH(read_pairs(tmp.path / "list.csv"), Catch::Contains("neither a .tsv"));
}

TEST_CASE("read_pairs: JSONL") {
    TempDir tmp("jsonl");
    write(tmp.path / "d" / "a.png", "x");
    write(tmp.path / "d" / "b.png", "x");
    const fs::path list = tmp.path / "d" / "pairs.jsonl";
    write(list, "{\"image\": \"a.png\", \"caption\": \"a red circle\", \"id\": 3}\n"
                "\n"
                "{\"caption\": \"caf\\u00e9 \\\"quoted\\\"\", \"image\": \"b.png\"}\n");
    const auto pairs = read_pairs(list);
    REQUIRE(pairs.size() == 2);
    CHECK(pairs[0].image == tmp.path / "d" / "a.png");
    CHECK(pairs[0].caption == "a red circle");
    CHECK(pairs[1].image == tmp.path / "d" / "b.png");
    CHECK(pairs[1].caption == "caf\xc3\xa9 \"quoted\"");

    check_error(list, "{\"image\": \"a.png\", \"caption\": \"ok\"}\n{\"image\": \"a.png\", \"caption\": \n",
                {"pairs.jsonl\" line 2", "bad JSON"});
    check_error(list, "[1, 2]\n", {"line 1", "JSON object"});
    check_error(list, "{\"image\": \"a.png\"}\n", {"line 1", "no \"caption\""});
    check_error(list, "{\"image\": 5, \"caption\": \"x\"}\n", {"line 1", "\"image\" must be a string"});
    check_error(list, "{\"image\": \"a.png\", \"caption\": \"\"}\n", {"line 1", "empty caption"});
    check_error(list, "{\"image\": \"zz.png\", \"caption\": \"c\"}\n", {"line 1", "zz.png", "does not exist"});
}

TEST_CASE("read_pairs: a folder of images with same-stem captions") {
    TempDir tmp("folder");
    const fs::path d = tmp.path / "imgs";
    write(d / "b.png", "x");
    write(d / "b.txt", "  a blue star\r\n");
    write(d / "a.JPG", "x");
    write(d / "a.txt", "two\nlines\n");
    write(d / "sub" / "c.jpeg", "x");
    write(d / "sub" / "c.txt", "nested");
    write(d / "notes.txt", "not a caption of any image");
    const auto pairs = read_pairs(d);
    REQUIRE(pairs.size() == 3);
    CHECK(pairs[0].image == d / "a.JPG");
    CHECK(pairs[0].caption == "two lines");
    CHECK(pairs[1].image == d / "b.png");
    CHECK(pairs[1].caption == "a blue star");
    CHECK(pairs[2].image == d / "sub" / "c.jpeg");
    CHECK(pairs[2].caption == "nested");

    write(d / "d.bmp", "x");
    CHECK_THROWS_WITH(read_pairs(d), Catch::Contains("d.bmp\" has no caption file"));
    write(d / "d.txt", " \n");
    CHECK_THROWS_WITH(read_pairs(d), Catch::Contains("d.txt\" is empty"));
    fs::create_directories(tmp.path / "empty");
    CHECK_THROWS_WITH(read_pairs(tmp.path / "empty"), Catch::Contains("holds no images"));
}

TEST_CASE("read_labelled_folder: classes from folder names, sorted; or mapped onto candidates") {
    TempDir tmp("labelled");
    const fs::path d = tmp.path / "heldout";
    write(d / "red_square" / "00001.png", "x");
    write(d / "red_square" / "00000.png", "x");
    write(d / "red_square" / "readme.txt", "ignored");
    write(d / "blue_circle" / "00000.jpg", "x");
    write(d / "notes.txt", "ignored");

    const auto plain = read_labelled_folder(d);
    REQUIRE(plain.class_names == std::vector<std::string>{"blue circle", "red square"});
    REQUIRE(plain.images.size() == 3);
    CHECK(plain.images[0] == std::pair{d / "blue_circle" / "00000.jpg", 0});
    CHECK(plain.images[1] == std::pair{d / "red_square" / "00000.png", 1});
    CHECK(plain.images[2] == std::pair{d / "red_square" / "00001.png", 1});

    write(tmp.path / "classes.txt", "red circle\r\nred square\n\n  blue circle \ngreen star\n");
    const auto candidates = read_class_list(tmp.path / "classes.txt");
    REQUIRE(candidates == std::vector<std::string>{"red circle", "red square", "blue circle", "green star"});
    const auto mapped = read_labelled_folder(d, candidates);
    CHECK(mapped.class_names == candidates);
    REQUIRE(mapped.images.size() == 3);
    CHECK(mapped.images[0].second == 2);
    CHECK(mapped.images[1].second == 1);
    CHECK(mapped.images[2].second == 1);

    CHECK_THROWS_WITH(read_labelled_folder(d, {"red square"}),
                      Catch::Contains("blue_circle\" (class \"blue circle\") is not among the 1 candidate"));
    write(tmp.path / "dup.txt", "a\nb\na\n");
    CHECK_THROWS_WITH(read_class_list(tmp.path / "dup.txt"), Catch::Contains("line 3: \"a\" repeats line 1"));
    fs::create_directories(d / "yellow_ring");
    CHECK_THROWS_WITH(read_labelled_folder(d), Catch::Contains("yellow_ring\" holds no images"));
    fs::remove(d / "yellow_ring");
    write(d / "red square" / "x.png", "x");
    CHECK_THROWS_WITH(read_labelled_folder(d), Catch::Contains("both name the class \"red square\""));
    CHECK_THROWS_WITH(read_labelled_folder(tmp.path / "nope"), Catch::Contains("is not a folder"));
}
