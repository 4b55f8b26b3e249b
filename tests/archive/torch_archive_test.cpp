// TorchArchive against archives written by PyTorch (tests/reference/torch_archive.py) and
// malformed archives: every tensor must read exactly as torch.load / torch.jit.load see it, and
// every malformed input must give a weft::Error naming the problem.
#include <support/fixture.hpp>

#include <weft/io/torch_archive.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

using namespace weft;
using Catch::Matchers::Contains;

namespace {

std::filesystem::path archive_path(const std::string& name) {
    return std::filesystem::path(WEFT_SOURCE_DIR) / "tests/reference/data/torch_archive" / name;
}

template <class T, int R>
void compare_rank(const TorchArchive& a, const SafetensorsFile& fx, const std::string& name, const std::string& key) {
    const auto got = a.get<T, R>(name);
    const auto want = fx.get<T, R>(key);
    if constexpr (std::same_as<T, bool>) {
        REQUIRE(got.shape() == want.shape());
        for (index_t i = 0; i < got.numel(); ++i) CHECK(got.data()[i] == want.data()[i]);
    } else {
        weft::test::check_close(got, want, 0, 0, key);  // exact: the bytes are copied, not computed
    }
}

template <class T>
void compare(const TorchArchive& a, const SafetensorsFile& fx, const std::string& name, const std::string& key) {
    switch (a.info(name).rank()) {
        case 0: return compare_rank<T, 0>(a, fx, name, key);
        case 1: return compare_rank<T, 1>(a, fx, name, key);
        case 2: return compare_rank<T, 2>(a, fx, name, key);
        case 3: return compare_rank<T, 3>(a, fx, name, key);
        default: FAIL("rank " << a.info(name).rank() << " not covered by the test");
    }
}

// Every tensor of `file` matches "<prefix>/<name>" in the fixture, and the names are exactly the
// fixture's names for that prefix.
void check_archive(const std::string& file, const std::string& prefix) {
    const auto a = TorchArchive::open(archive_path(file));
    const auto fx = weft::test::fixture("torch_archive");
    std::set<std::string> want;
    for (const auto& k : fx.names())
        if (k.starts_with(prefix + "/")) want.insert(k.substr(prefix.size() + 1));
    REQUIRE(!want.empty());
    const std::set<std::string> got(a.names().begin(), a.names().end());
    CHECK(got == want);
    for (const auto& name : a.names()) {
        INFO(file << ": " << name);
        const std::string key = prefix + "/" + name;
        REQUIRE(fx.contains(key));
        const auto& info = a.info(name);
        CHECK(info.dtype == *fx.info(key).dtype);
        CHECK(info.shape == fx.info(key).shape);
        switch (info.dtype) {
            case DType::f32: compare<float>(a, fx, name, key); break;
            case DType::f64: compare<double>(a, fx, name, key); break;
            case DType::f16: compare<half>(a, fx, name, key); break;
            case DType::bf16: compare<bf16>(a, fx, name, key); break;
            case DType::i64: compare<std::int64_t>(a, fx, name, key); break;
            case DType::i32: compare<std::int32_t>(a, fx, name, key); break;
            case DType::u8: compare<std::uint8_t>(a, fx, name, key); break;
            case DType::b8: compare<bool>(a, fx, name, key); break;
        }
    }
}

std::string read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Writes `bytes` to a file in the temporary directory and returns its path.
std::filesystem::path write_temp(const std::string& name, const std::string& bytes) {
    const auto p = std::filesystem::temp_directory_path() / ("weft_archive_test_" + name);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    return p;
}

}  // namespace

TEST_CASE("torch archive state dict of torch.save reads every dtype and view exactly", "[archive]") {
    check_archive("state.pt", "state");
    const auto a = TorchArchive::open(archive_path("state.pt"));
    CHECK(a.kind() == TorchArchive::Kind::state_dict);
    CHECK_FALSE(a.info("transposed").contiguous());
    CHECK(a.info("transposed").strides == std::vector<index_t>{1, 3});
    CHECK(a.info("shared_b").offset == 5);
    CHECK(a.info("shared_a").storage_entry == a.info("shared_b").storage_entry);
}

TEST_CASE("torch archive TorchScript module names tensors as state_dict does", "[archive]") {
    check_archive("script.pt", "script");
    CHECK(TorchArchive::open(archive_path("script.pt")).kind() == TorchArchive::Kind::torchscript);
}

TEST_CASE("torch archive fp16 TorchScript module reads as fp16 and converts to float", "[archive]") {
    check_archive("script_fp16.pt", "script_fp16");
    const auto a = TorchArchive::open(archive_path("script_fp16.pt"));
    const auto fx = weft::test::fixture("torch_archive");
    const auto w = a.get<float, 2>("block.lin.weight");
    const auto w16 = fx.get<half, 2>("script_fp16/block.lin.weight");
    REQUIRE(w.shape() == w16.shape());
    for (index_t i = 0; i < w.numel(); ++i) CHECK(w.data()[i] == float(w16.data()[i]));
    CHECK_THROWS_WITH((a.get<std::int64_t, 2>("block.lin.weight")), Contains("would truncate"));
    CHECK_THROWS_WITH((a.get<float, 3>("block.lin.weight")), Contains("asks for rank 3"));
    CHECK_THROWS_WITH((a.get<float, 1>("no.such")), Contains("no tensor 'no.such'"));
}

TEST_CASE("torch archive ZIP64 records and entries in reverse order", "[archive]") {
    // The same entries as state.pt, with every size and offset in ZIP64 extra fields.
    check_archive("zip64.pt", "state");
}

TEST_CASE("torch archive truncated file is an error", "[archive]") {
    const std::string good = read_bytes(archive_path("state.pt"));
    REQUIRE(good.size() > 1000);
    const auto half_file = write_temp("truncated.pt", good.substr(0, good.size() / 2));
    REQUIRE_THROWS_WITH(TorchArchive::open(half_file), Contains("end-of-central-directory") && Contains("truncated"));
    const auto tiny = write_temp("tiny.pt", good.substr(0, 10));
    REQUIRE_THROWS_WITH(TorchArchive::open(tiny), Contains("too short for a ZIP archive"));
    // Data cut away from the middle: the central directory now points past the end.
    const std::string tail = good.substr(good.size() - 600);
    const auto cut = write_temp("cut.pt", good.substr(0, 400) + tail);
    REQUIRE_THROWS_AS(TorchArchive::open(cut), weft::Error);
}

TEST_CASE("torch archive corrupted central directory is an error", "[archive]") {
    std::string bytes = read_bytes(archive_path("state.pt"));
    // Bytes 16-19 of the end record hold the central directory's offset.
    const std::size_t eocd = bytes.rfind(std::string("PK\x05\x06", 4));
    REQUIRE(eocd != std::string::npos);
    std::string bad_offset = bytes;
    bad_offset[eocd + 16] = char(0xF0);  // directory offset now far off
    bad_offset[eocd + 19] = char(0x7F);
    // PyTorch also writes a ZIP64 end record, whose offset now disagrees with the plain one.
    REQUIRE(bytes.find(std::string("PK\x06\x06", 4)) != std::string::npos);
    REQUIRE_THROWS_WITH(TorchArchive::open(write_temp("cd_offset.pt", bad_offset)),
                        Contains("disagree") && Contains("corrupt central directory"));
    // With the ZIP64 end record and locator cut out, the bad offset points past the end of the file.
    std::string plain = bytes.substr(0, bytes.find(std::string("PK\x06\x06", 4))) + bytes.substr(eocd);
    const std::size_t peocd = plain.rfind(std::string("PK\x05\x06", 4));
    plain[peocd + 16] = char(0xF0);
    plain[peocd + 19] = char(0x7F);
    REQUIRE_THROWS_WITH(TorchArchive::open(write_temp("cd_offset_plain.pt", plain)),
                        Contains("central directory") && Contains("runs past the end of the file"));
    std::string bad_record = bytes;
    const std::size_t cd = bytes.find(std::string("PK\x01\x02", 4));
    REQUIRE(cd != std::string::npos);
    bad_record[cd + 1] = 'X';  // first record's signature broken
    REQUIRE_THROWS_WITH(TorchArchive::open(write_temp("cd_record.pt", bad_record)),
                        Contains("corrupt central directory"));
}

TEST_CASE("torch archive unknown pickle opcode is an error", "[archive]") {
    REQUIRE_THROWS_WITH(TorchArchive::open(archive_path("bad_opcode.pt")),
                        Contains("unsupported pickle opcode 0x49") && Contains("archive/data.pkl") &&
                            Contains("bad_opcode.pt"));
}

TEST_CASE("torch archive disallowed global is an error", "[archive]") {
    REQUIRE_THROWS_WITH(TorchArchive::open(archive_path("bad_global.pt")),
                        Contains("os.system") && Contains("does not allow"));
}

TEST_CASE("torch archive wrong storage size is an error", "[archive]") {
    REQUIRE_THROWS_WITH(TorchArchive::open(archive_path("wrong_size.pt")),
                        Contains("wrong storage size") && Contains("/data/"));
}

TEST_CASE("torch archive compressed pickle is an error", "[archive]") {
    REQUIRE_THROWS_WITH(TorchArchive::open(archive_path("deflated_pkl.pt")),
                        Contains("is compressed") && Contains("data.pkl"));
}

TEST_CASE("torch archive every truncation of a pickle is an error, never a crash", "[archive]") {
    // Every prefix of a real TorchScript data.pkl, fed to the unpickler directly.
    const auto a = detail::zip::Archive::open(archive_path("script.pt"), "script.pt");
    const detail::zip::Entry* pkl = nullptr;
    for (const auto& e : a.entries())
        if (e.name.ends_with("/data.pkl")) pkl = &e;
    REQUIRE(pkl);
    const std::string bytes = a.read_entry(*pkl);
    for (std::size_t n = 0; n < bytes.size(); ++n)
        CHECK_THROWS_AS(detail::pickle::Unpickler(std::string_view(bytes).substr(0, n), "prefix").load(), weft::Error);
    CHECK(detail::pickle::Unpickler(bytes, "whole").load()->kind == detail::pickle::Value::Kind::object);
}

TEST_CASE("torch archive any single corrupted byte is read or reported, never a crash", "[archive]") {
    // Each byte of state.pt inverted in turn: open and read every tensor; only weft::Error may
    // come out (an inverted data byte just changes a value).
    const std::string good = read_bytes(archive_path("state.pt"));
    const auto path = std::filesystem::temp_directory_path() / "weft_archive_test_flip.pt";
    index_t errors = 0, opened = 0;
    for (std::size_t i = 0; i < good.size(); ++i) {
        std::string bytes = good;
        bytes[i] = char(~bytes[i]);
        std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
        try {
            const auto a = TorchArchive::open(path);
            for (const auto& name : a.names())
                if (a.info(name).dtype == DType::b8) {
                    if (a.info(name).rank() == 1) (void)a.get<bool, 1>(name);
                } else {
                    switch (a.info(name).rank()) {
                        case 0: (void)a.get<double, 0>(name); break;
                        case 1: (void)a.get<double, 1>(name); break;
                        case 2: (void)a.get<double, 2>(name); break;
                        default: break;
                    }
                }
            ++opened;
        } catch (const weft::Error&) {
            ++errors;
        }
    }
    CHECK(errors > 0);
    CHECK(opened > 0);
}

TEST_CASE("torch archive pickle graph with exponentially many paths is an error", "[archive]") {
    REQUIRE_THROWS_WITH(TorchArchive::open(archive_path("graph_bomb.pt")), Contains("more than 2^20 paths"));
}
