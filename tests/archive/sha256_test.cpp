// SHA-256 against the FIPS 180-4 example vectors, and the official-checkpoint check.
#include <catch2/catch.hpp>

#include <weft/io/official_checkpoints.hpp>
#include <weft/io/sha256.hpp>

#include <filesystem>
#include <fstream>
#include <string>

using namespace weft;
using Catch::Matchers::Contains;

TEST_CASE("sha256 of the standard test vectors", "[archive]") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    // 56 bytes: the padding needs a second block.
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256_file streams across its read blocks", "[archive]") {
    const auto dir = std::filesystem::temp_directory_path() / "weft_sha256_test";
    std::filesystem::create_directories(dir);
    std::string bytes;
    for (int i = 0; i < (1 << 20) + 77; ++i) bytes += char(i * 31 + (i >> 9));  // > one 1 MiB read
    std::ofstream(dir / "blob.bin", std::ios::binary | std::ios::trunc) << bytes;
    CHECK(sha256_file(dir / "blob.bin") == sha256_hex(bytes));
    CHECK_THROWS_WITH(sha256_file(dir / "missing.bin"), Contains("cannot open"));
}

TEST_CASE("official checkpoint names are verified by hash, other names are not", "[archive]") {
    const auto dir = std::filesystem::temp_directory_path() / "weft_sha256_test";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "ViT-B-16.pt", std::ios::binary | std::ios::trunc) << "not the released file";
    std::ofstream(dir / "my-model.pt", std::ios::binary | std::ios::trunc) << "anything";
    REQUIRE(official_sha256(dir / "RN50.pt").has_value());
    CHECK(*official_sha256("RN101.pt") == "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599");
    CHECK_THROWS_WITH(verify_official_checkpoint(dir / "ViT-B-16.pt"),
                      Contains("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f") &&
                          Contains(sha256_hex("not the released file")));
    CHECK_FALSE(verify_official_checkpoint(dir / "my-model.pt"));
}
