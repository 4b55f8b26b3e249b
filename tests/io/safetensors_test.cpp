// safetensors reading and writing (weft/io/safetensors.hpp).
//
// The format is pinned by byte-exact files: four are the reference implementation's own test
// vectors (huggingface/safetensors, safetensors/src/tensor.rs: test_empty, test_serialization,
// test_serialization_forced_alignement), one is computed by hand here. Malformed files are
// written byte by byte into a temporary folder; each must fail with a message naming the file
// and the tensor.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <weft/io/safetensors.hpp>

using namespace weft;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system's temporary directory, removed with everything in it.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "weft-io-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    REQUIRE(in.good());
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, std::string_view bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    REQUIRE(out.good());
}

std::string le64(std::uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[std::size_t(i)] = char((n >> (8 * i)) & 0xff);
    return s;
}

std::string bytes(std::initializer_list<int> v) {
    std::string s;
    for (int b : v) s += char(b);
    return s;
}

// A file holding header `json` (its length as given, no padding) followed by `data`.
fs::path raw_file(const TempDir& dir, std::string_view json, std::string_view data = {},
                  const std::string& name = "bad.safetensors") {
    const fs::path p = dir / name;
    write_bytes(p, le64(json.size()) + std::string(json) + std::string(data));
    return p;
}

// Deterministic, varied values that exercise every bit of each type (negative numbers, high
// bytes, subnormal-free floats with full mantissas).
template <class T>
T value_at(std::size_t i) {
    if constexpr (std::same_as<T, bool>) return (i * 7 + 3) % 3 == 0;
    else if constexpr (std::same_as<T, std::uint8_t>) return T((i * 37 + 11) & 0xff);
    else if constexpr (std::same_as<T, std::int32_t>) return T(std::uint32_t(i * 2654435761u + 12345u));
    else if constexpr (std::same_as<T, std::int64_t>) return T(std::uint64_t(i + 1) * 0x9E3779B97F4A7C15ull);
    else if constexpr (std::same_as<T, double>) return double(i) * 0.3183098861837907 - 7.25;
    else return T(float(i) * 0.37f - 5.1f);  // float, bf16, half
}

template <class T, int R>
Tensor<T, R> make(const Shape<R>& shape, std::size_t seed = 0) {
    std::vector<T> v(std::size_t(shape.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = value_at<T>(i + seed);
    return Tensor<T, R>::from_vector(v, shape);
}

// The address of the i-th element of `t` in row-major order, found through shape and strides.
template <class T, int R>
const T* element(const Tensor<T, R>& t, index_t i) {
    index_t off = 0;
    for (int d = R - 1; d >= 0; --d) {
        off += (i % t.shape()[d]) * t.strides()[d];
        i /= t.shape()[d];
    }
    return t.data() + off;
}

// Bit-for-bit equality of the logical elements (so NaN payloads and -0 count too).
template <class T, int R>
bool same_bits(const Tensor<T, R>& a, const Tensor<T, R>& b) {
    if (!(a.shape() == b.shape())) return false;
    for (index_t i = 0, n = a.numel(); i < n; ++i)
        if (std::memcmp(element(a, i), element(b, i), sizeof(T)) != 0) return false;
    return true;
}

template <int R>
std::vector<index_t> dims(const Shape<R>& s) {
    return std::vector<index_t>(s.dims, s.dims + R);
}

}  // namespace

// ---- round trips -------------------------------------------------------------------------------

TEST_CASE("safetensors: every dtype and ranks 0 to 4 round-trip bit for bit", "[io]") {
    TempDir dir;
    auto check_type = [&]<class T>() {
        INFO("dtype " << dtype_name(dtype_of<T>));
        const auto t0 = make<T, 0>(Shape<0>{}, 1);
        const auto t1 = make<T, 1>({5}, 2);
        const auto t2 = make<T, 2>({2, 3}, 3);
        const auto t3 = make<T, 3>({2, 3, 4}, 4);
        const auto t4 = make<T, 4>({2, 1, 3, 2}, 5);
        const auto empty = Tensor<T, 2>::zeros({0, 3});
        const fs::path p = dir / (std::string(dtype_name(dtype_of<T>)) + ".safetensors");
        save_safetensors(p, {{"t0", t0}, {"t1", t1}, {"t2", t2}, {"t3", t3}, {"t4", t4}, {"empty", empty}});

        const auto f = SafetensorsFile::open(p);
        REQUIRE(f.names() == std::vector<std::string>{"empty", "t0", "t1", "t2", "t3", "t4"});
        REQUIRE(f.size() == 6);
        REQUIRE(f.metadata().empty());
        REQUIRE(f.data_offset() % 8 == 0);
        CHECK(f.info("t3").dtype == dtype_of<T>);
        CHECK(f.info("t3").dtype_code == detail::safetensors::code_of(dtype_of<T>).code);
        CHECK(f.info("t3").shape == dims(t3.shape()));
        CHECK(f.info("t0").shape.empty());
        CHECK(f.info("t0").nbytes() == sizeof(T));
        CHECK(f.info("empty").nbytes() == 0);

        CHECK(same_bits(f.get<T, 0>("t0"), t0));
        CHECK(same_bits(f.get<T, 1>("t1"), t1));
        CHECK(same_bits(f.get<T, 2>("t2"), t2));
        CHECK(same_bits(f.get<T, 3>("t3"), t3));
        CHECK(same_bits(f.get<T, 4>("t4"), t4));
        CHECK(f.get<T, 2>("empty").shape() == Shape<2>{0, 3});

        // get_into: into a fresh tensor and into a strided view of a larger one.
        auto into = Tensor<T, 3>::zeros({2, 3, 4});
        f.get_into("t3", into);
        CHECK(same_bits(into, t3));
        auto big = Tensor<T, 2>::zeros({3, 5});
        auto view = big.slice(1, 0, 5, 2).narrow(0, 1, 2);  // [2, 3], strides [5, 2]
        f.get_into("t2", view);
        CHECK(same_bits(view, t2));
        CHECK(big(0, 0) == T(0));
        CHECK(big(1, 1) == T(0));
    };
    check_type.operator()<float>();
    check_type.operator()<double>();
    check_type.operator()<bf16>();
    check_type.operator()<half>();
    check_type.operator()<std::int32_t>();
    check_type.operator()<std::int64_t>();
    check_type.operator()<std::uint8_t>();
    check_type.operator()<bool>();
}

TEST_CASE("safetensors: non-contiguous sources are written dense", "[io]") {
    TempDir dir;
    const auto x = make<float, 3>({3, 4, 5});
    const auto ids = make<std::int64_t, 2>({4, 6});
    const auto mask = make<bool, 2>({3, 4});
    const auto row = make<half, 2>({1, 5});

    const auto permuted = x.permute(2, 0, 1);     // [5, 3, 4]
    const auto stepped = x.slice(1, 0, 4, 2);     // [3, 2, 5]
    const auto selected = x.select(2, 1);         // [3, 4]
    const auto expanded = row.expand(3, 5);       // [3, 5], stride 0
    const auto transposed = ids.t();              // [6, 4]
    const auto mask_t = mask.t();                 // [4, 3]
    REQUIRE(!permuted.is_contiguous());
    REQUIRE(!expanded.is_contiguous());

    const fs::path p = dir / "views.safetensors";
    {
        // The refs outlive every tensor they were made from: each keeps its elements alive.
        std::vector<SafetensorsEntry> refs;
        {
            auto tmp = make<float, 2>({2, 2}, 9);
            refs.emplace_back("tmp_t", tmp.t());
            refs.emplace_back("tmp", tmp);
        }
        refs.emplace_back("permuted", permuted);
        refs.emplace_back("stepped", stepped);
        refs.emplace_back("selected", selected);
        refs.emplace_back("expanded", expanded);
        refs.emplace_back("transposed", transposed);
        refs.emplace_back("mask_t", mask_t);
        save_safetensors(p, refs);
    }
    const auto f = SafetensorsFile::open(p);
    CHECK(same_bits(f.get<float, 3>("permuted"), permuted));
    CHECK(same_bits(f.get<float, 3>("stepped"), stepped));
    CHECK(same_bits(f.get<float, 2>("selected"), selected));
    CHECK(same_bits(f.get<half, 2>("expanded"), expanded));
    CHECK(same_bits(f.get<std::int64_t, 2>("transposed"), transposed));
    CHECK(same_bits(f.get<bool, 2>("mask_t"), mask_t));
    const auto tmp = make<float, 2>({2, 2}, 9);
    CHECK(same_bits(f.get<float, 2>("tmp"), tmp));
    CHECK(same_bits(f.get<float, 2>("tmp_t"), tmp.t()));
}

TEST_CASE("safetensors: metadata and unusual names round-trip", "[io]") {
    TempDir dir;
    const std::map<std::string, std::string> meta = {
        {"format", "pt"},
        {"step", "12345"},
        {"", "empty key"},
        {"empty value", ""},
        {"escapes", "quote\" backslash\\ slash/ newline\n tab\t cr\r ctrl\x01\x1f del\x7f"},
        {"unicode \xc3\xbc", "\xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad"},  // ü, € 😀 中
    };
    const auto a = make<float, 1>({3});
    const std::vector<std::string> names = {"encoder.layers.0.attn.in_proj_weight", "with \"quotes\"",
                                            "back\\slash", "sp ace", "\xc3\xbcnicode", ""};
    std::vector<SafetensorsEntry> refs;
    for (const auto& n : names) refs.emplace_back(n, a);
    const fs::path p = dir / "meta.safetensors";
    save_safetensors(p, refs, meta);

    const auto f = SafetensorsFile::open(p);
    CHECK(f.metadata() == meta);
    auto sorted = names;
    std::sort(sorted.begin(), sorted.end());
    CHECK(f.names() == sorted);
    for (const auto& n : names) CHECK(same_bits(f.get<float, 1>(n), a));
}

TEST_CASE("safetensors: large tensors and many small ones", "[io]") {
    TempDir dir;
    const auto big = make<float, 2>({1024, 1100});  // > 4 MiB: written past the buffer
    std::vector<SafetensorsEntry> refs{{"big", big}};
    std::vector<Tensor<std::int32_t, 1>> small;
    for (int i = 0; i < 300; ++i) small.push_back(make<std::int32_t, 1>({i % 7 + 1}, std::size_t(i)));
    for (int i = 0; i < 300; ++i) refs.emplace_back("small." + std::to_string(i), small[std::size_t(i)]);
    const fs::path p = dir / "big.safetensors";
    save_safetensors(p, refs);
    const auto f = SafetensorsFile::open(p);
    CHECK(f.size() == 301);
    CHECK(same_bits(f.get<float, 2>("big"), big));
    for (int i = 0; i < 300; ++i)
        CHECK(same_bits(f.get<std::int32_t, 1>("small." + std::to_string(i)), small[std::size_t(i)]));
}

// ---- the format, byte for byte -----------------------------------------------------------------

TEST_CASE("safetensors: the reference implementation's test vectors, written and read", "[io]") {
    TempDir dir;
    const fs::path p = dir / "ref.safetensors";
    const std::string floats_0_to_5 =  // 0.0f .. 5.0f, little-endian
        bytes({0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40,           // 0, 1, 2
               0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40});  // 3, 4, 5
    const auto values = Tensor<float, 1>::arange(6);

    SECTION("no tensors: '{}' padded with six spaces") {
        save_safetensors(p, {});
        CHECK(read_bytes(p) == le64(8) + "{}      ");
        CHECK(SafetensorsFile::open(p).size() == 0);
    }
    SECTION("metadata only") {
        save_safetensors(p, {}, {{"framework", "pt"}});
        CHECK(read_bytes(p) == le64(40) + "{\"__metadata__\":{\"framework\":\"pt\"}}     ");
        CHECK(SafetensorsFile::open(p).metadata().at("framework") == "pt");
    }
    SECTION("one F32 tensor whose header needs no padding") {
        save_safetensors(p, {{"attn.0", values.reshape(1, 2, 3)}});
        const std::string expected =
            bytes({64, 0, 0, 0, 0, 0, 0, 0}) +
            "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}" + floats_0_to_5;
        CHECK(read_bytes(p) == expected);
        write_bytes(p, expected);  // and read what the reference writes
        CHECK(same_bits(SafetensorsFile::open(p).get<float, 3>("attn.0"), values.reshape(1, 2, 3)));
    }
    SECTION("one F32 tensor whose header is padded with seven spaces") {
        save_safetensors(p, {{"attn0", values.reshape(1, 1, 2, 3)}});
        const std::string expected =
            bytes({72, 0, 0, 0, 0, 0, 0, 0}) +
            "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       " +
            floats_0_to_5;
        CHECK(read_bytes(p) == expected);
        CHECK(same_bits(SafetensorsFile::open(p).get<float, 4>("attn0"), values.reshape(1, 1, 2, 3)));
    }
}

TEST_CASE("safetensors: a file of every dtype matches hand-computed bytes", "[io]") {
    TempDir dir;
    const fs::path p = dir / "all.safetensors";
    // Written in name order; the file orders them by descending alignment (I64, F64, F32, I32,
    // BF16, F16, U8, BOOL), then by name, exactly as the reference writer does.
    const auto b = Tensor<bf16, 0>::full({}, bf16(1.5f));
    const auto h = Tensor<half, 1>::from({half(1.0f), half(-2.0f)});
    const auto ids = Tensor<std::int64_t, 1>::from({-1});
    const auto mask = Tensor<bool, 1>::from({true, false, true});
    const auto n = Tensor<std::int32_t, 1>::from({258});
    const auto u = Tensor<std::uint8_t, 1>::from({7, 255});
    const auto w = Tensor<float, 2>::from({{0.5f}, {2.0f}});
    const auto x = Tensor<double, 2>::zeros({0, 2});
    save_safetensors(
        p, {{"b", b}, {"h", h}, {"ids", ids}, {"mask", mask}, {"n", n}, {"u", u}, {"w", w}, {"x", x}},
        {{"note", "a\"b!"}, {"epoch", "3"}});

    const std::string header =  // 489 bytes, padded with 7 spaces to 496 = 0x1f0
        "{\"__metadata__\":{\"epoch\":\"3\",\"note\":\"a\\\"b!\"},"
        "\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
        "\"x\":{\"dtype\":\"F64\",\"shape\":[0,2],\"data_offsets\":[8,8]},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[8,16]},"
        "\"n\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[16,20]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[20,22]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[22,26]},"
        "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[26,28]},"
        "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[28,31]}}"
        "       ";
    REQUIRE(header.size() == 496);
    const std::string data = bytes({
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // ids: int64 -1
                                                          // x: no bytes
        0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00, 0x40,  // w: 0.5f, 2.0f
        0x02, 0x01, 0x00, 0x00,                          // n: 258
        0xc0, 0x3f,                                      // b: bf16 1.5 = 0x3fc0
        0x00, 0x3c, 0x00, 0xc0,                          // h: half 1.0 = 0x3c00, -2.0 = 0xc000
        0x07, 0xff,                                      // u
        0x01, 0x00, 0x01,                                // mask
    });
    CHECK(read_bytes(p) == bytes({0xf0, 0x01, 0, 0, 0, 0, 0, 0}) + header + data);

    const auto f = SafetensorsFile::open(p);
    CHECK(f.data_offset() == 8 + 496);
    CHECK(f.info("b").begin == 20);
    CHECK(f.info("b").end == 22);
    CHECK(f.get<bf16, 0>("b").item().bits == 0x3fc0);
    CHECK(f.get<std::int64_t, 1>("ids")(0) == -1);
    CHECK(f.get<bool, 1>("mask")(2) == true);
    CHECK(f.metadata().at("note") == "a\"b!");
}

TEST_CASE("safetensors: reads headers other writers produce", "[io]") {
    TempDir dir;
    const std::string four = bytes({0, 0, 0x80, 0x3f});  // 1.0f
    SECTION("whitespace, any key order, tensors listed out of offset order, escapes in names") {
        const auto p =
            raw_file(dir,
                     "{ \"b\" : { \"data_offsets\" : [4, 8], \"shape\" : [ 1 ], \"dtype\" : \"F32\" } ,\n"
                     "  \"\\u0061\\/x\": {\"shape\": [], \"dtype\": \"F32\", \"data_offsets\": [0, 4]},\n"
                     "  \"__metadata__\": {\"k\": \"\\ud83d\\ude00\"} }\t\r\n",
                     four + four);
        const auto f = SafetensorsFile::open(p);
        CHECK(f.names() == std::vector<std::string>{"a/x", "b"});
        CHECK(f.get<float, 0>("a/x").item() == 1.0f);
        CHECK(f.get<float, 1>("b")(0) == 1.0f);
        CHECK(f.metadata().at("k") == "\xf0\x9f\x98\x80");
    }
    SECTION("dtypes weft has no element type for still open; only get() refuses them") {
        const auto p = raw_file(dir,
                                "{\"q\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                                "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                                four + "\x01\x02");
        const auto f = SafetensorsFile::open(p);
        CHECK(f.info("q").dtype_code == "I8");
        CHECK(!f.info("q").dtype.has_value());
        CHECK(f.get<float, 0>("s").item() == 1.0f);
        REQUIRE_THROWS_WITH(
            (f.get<std::uint8_t, 1>("q")),
            Contains(p.string()) && Contains("tensor 'q' has dtype I8, which weft has no element type"));
    }
    SECTION("empty tensors may sit anywhere in the tiling") {
        const auto p = raw_file(dir,
                                "{\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                "\"e2\":{\"dtype\":\"F64\",\"shape\":[3,0],\"data_offsets\":[4,4]}}",
                                four);
        const auto f = SafetensorsFile::open(p);
        CHECK(f.size() == 3);
        CHECK(f.get<double, 2>("e2").shape() == Shape<2>{3, 0});
    }
}

// ---- malformed files ---------------------------------------------------------------------------

TEST_CASE("safetensors: truncated and mis-sized files are refused", "[io]") {
    TempDir dir;
    SECTION("missing file") {
        const auto p = dir / "nope.safetensors";
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p), Contains(p.string()) && Contains("cannot open") &&
                                                          Contains("No such file"));
    }
    SECTION("a directory") {
        REQUIRE_THROWS_WITH(SafetensorsFile::open(dir.path),
                            Contains(dir.path.string()) && Contains("not a regular file"));
    }
    SECTION("a FIFO is refused without waiting for a writer") {
        const auto p = dir / "fifo";
        REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p), Contains(p.string()) && Contains("not a regular file"));
    }
    SECTION("shorter than the length field") {
        const auto p = dir / "short.safetensors";
        write_bytes(p, std::string_view("\x05\x00\x00", 3));
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p),
                            Contains(p.string()) && Contains("the file is 3 bytes, too short"));
    }
    SECTION("header length past the end of the file") {
        const auto p = dir / "past.safetensors";
        write_bytes(p, le64(20) + "{}");
        REQUIRE_THROWS_WITH(
            SafetensorsFile::open(p),
            Contains(p.string()) && Contains("header length 20 runs past the end of the file (10 bytes"));
    }
    SECTION("a length near 2^64 neither overflows nor allocates") {
        const auto p = dir / "huge.safetensors";
        write_bytes(p, le64(~std::uint64_t(0)) + "{}");
        REQUIRE_THROWS_WITH(
            SafetensorsFile::open(p),
            Contains(p.string()) &&
                Contains("header length 18446744073709551615 exceeds the 100000000-byte limit"));
        write_bytes(p, le64(~std::uint64_t(0) - 7) + "{}");
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p), Contains("exceeds the 100000000-byte limit"));
    }
    SECTION("data cut short: the tensor that runs past the end is named") {
        const auto p = dir / "cut.safetensors";
        save_safetensors(p, {{"first", make<float, 1>({4})}, {"second", make<double, 2>({3, 3})}});
        fs::resize_file(p, fs::file_size(p) - 5);
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p), Contains(p.string()) && Contains("tensor 'first'") &&
                                                          Contains("run past the end of the data buffer") &&
                                                          Contains("truncated file"));
    }
    SECTION("cut inside the header") {
        const auto p = dir / "cut-header.safetensors";
        save_safetensors(p, {{"w", make<float, 1>({4})}});
        fs::resize_file(p, 30);
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p),
                            Contains(p.string()) && Contains("runs past the end of the file"));
    }
    SECTION("a file truncated after open: get() says so and names the tensor") {
        const auto p = dir / "shrinks.safetensors";
        save_safetensors(p, {{"w", make<float, 1>({64})}});
        const auto f = SafetensorsFile::open(p);
        fs::resize_file(p, fs::file_size(p) - 16);
        REQUIRE_THROWS_WITH((f.get<float, 1>("w")), Contains(p.string()) && Contains("tensor 'w'") &&
                                                         Contains("the file ended while reading"));
        auto dst = Tensor<float, 1>::full({64}, 7.0f);
        REQUIRE_THROWS(f.get_into("w", dst));
        CHECK(dst(63) == 7.0f);  // untouched
    }
    SECTION("bytes after the last tensor") {
        const auto p = raw_file(dir, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                                std::string(12, '\0'));
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p),
                            Contains(p.string()) && Contains("8 bytes follow the last tensor's data"));
    }
}

TEST_CASE("safetensors: malformed JSON headers are refused with the byte offset", "[io]") {
    TempDir dir;
    auto refuse = [&](std::string_view json, const std::string& what) {
        INFO("header: " << json);
        const auto p = raw_file(dir, json);
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p), Contains(p.string()) && Contains(what));
    };
    refuse("[1, 2, 3]", "the header does not start with '{'");
    refuse(" {}", "the header does not start with '{'");
    refuse(
        "{ ",
        "JSON syntax error at byte 2 of the header: expected a string key in an object, found end of header");
    refuse("{", "a header of 1 bytes cannot hold a JSON object");
    refuse("{\"a\"}", "JSON syntax error at byte 4 of the header: expected ':'");
    refuse("{\"a\":{\"dtype\":\"F32\",}}", "expected a string key in an object, found character '}'");
    refuse("{\"a\":[1 2]}", "expected ',' or ']' in an array, found character '2'");
    refuse("{}x", "JSON syntax error at byte 2 of the header: unexpected character 'x' after the end");
    refuse(std::string_view("{}\0\0", 4), "unexpected byte 0x00 after the end");
    refuse("{\"a\":tru}", "invalid literal");
    refuse("{\"a\":01}", "leading zeros");
    refuse("{\"a\":-}", "expected a digit");
    refuse("{\"a\":1.}", "expected a digit after the decimal point");
    refuse("{\"a", "unterminated string");
    refuse("{\"a\tb\":1}", "raw control character byte 0x09 in a string");
    refuse("{\"a\\x\":1}", "invalid escape '\\x'");
    refuse("{\"\\u12G4\":1}", "invalid hex digit");
    refuse("{\"\\ud800\":1}", "lone high surrogate");
    refuse("{\"\\udc00x\":1}", "lone low surrogate");
    refuse("{\"\xff\":1}", "invalid UTF-8 (byte 0xff) in a string");
    refuse("{\"\xc0\xaf\":1}", "invalid UTF-8");          // overlong '/'
    refuse("{\"\xed\xa0\x80\":1}", "invalid UTF-8");      // a surrogate encoded directly
    refuse("{\"\xf4\x90\x80\x80\":1}", "invalid UTF-8");  // above U+10FFFF
    refuse("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", "nesting deeper than 64 levels");
}

TEST_CASE("safetensors: malformed tensor entries are refused naming the tensor", "[io]") {
    TempDir dir;
    auto refuse = [&](std::string_view json, const std::string& what, std::string_view data = {}) {
        INFO("header: " << json);
        const auto p = raw_file(dir, json, data);
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p), Contains(p.string()) && Contains(what));
    };
    const std::string six_floats(24, '\0');

    // Duplicate keys: JSON parsers usually keep the last; safetensors forbids them.
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
           "\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
           "duplicate key 'w' at byte");
    refuse("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[0,0]}}",
           "duplicate key 'dtype' in the entry of 'w'");
    refuse("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}",
           "duplicate key 'k' in the entry of '__metadata__'");

    refuse("{\"w\":[1]}", "tensor 'w': its entry is an array, not an object");
    refuse("{\"w\":{\"dtype\":\"F33\",\"shape\":[0],\"data_offsets\":[0,0]}}",
           "tensor 'w': unknown dtype 'F33'");
    refuse("{\"w\":{\"dtype\":\"f32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
           "tensor 'w': unknown dtype 'f32'");
    refuse("{\"w\":{\"dtype\":4,\"shape\":[0],\"data_offsets\":[0,0]}}", "tensor 'w': \"dtype\" is a number");
    refuse("{\"w\":{\"shape\":[0],\"data_offsets\":[0,0]}}", "tensor 'w': missing \"dtype\"");
    refuse("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}", "tensor 'w': missing \"shape\"");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0]}}", "tensor 'w': missing \"data_offsets\"");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"offsets\":[0,0]}}",
           "tensor 'w': unknown field 'offsets'");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,0]}}",
           "tensor 'w': \"shape\" is a number");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}",
           "tensor 'w': shape entry -1 is not an extent");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}",
           "tensor 'w': shape entry 1.5 is not");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e2],\"data_offsets\":[0,0]}}",
           "tensor 'w': shape entry 1e2 is not");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,0]}}",
           "tensor 'w': shape entry a string");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,0]}}",
           "tensor 'w': shape entry 9223372036854775808 is not an extent");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0]}}",
           "tensor 'w': \"data_offsets\" must be an array [begin, end]");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0,0]}}",
           "\"data_offsets\" must be an array");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,-4]}}",
           "tensor 'w': data_offsets entry -4 is not a byte offset");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,18446744073709551616]}}",
           "tensor 'w': data_offsets entry 18446744073709551616 is not a byte offset");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
           "tensor 'w': data_offsets [8, 4] end before");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
           "tensor 'w': data_offsets [0, 20] span 20 bytes, but dtype F32 and shape [2, 3] need 24",
           six_floats);
    refuse("{\"w\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
           "tensor 'w': data_offsets [0, 24] span 24 bytes, but dtype F64 and shape [2, 3] need 48",
           six_floats);
    // Offsets near 2^64 must not wrap around into the file.
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],"
           "\"data_offsets\":[18446744073709551615,18446744073709551615]}}",
           "tensor 'w': data_offsets [18446744073709551615, 18446744073709551615] run past the end");
    // Shapes whose element or byte counts overflow 64 bits.
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
           "tensor 'w': shape [4294967296, 4294967296] with dtype F32 overflows 64-bit sizes");
    refuse("{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
           "overflows 64-bit sizes");
    refuse("{\"w\":{\"dtype\":\"F32\",\"shape\":[3037000500,3037000500,0],\"data_offsets\":[0,0]}}",
           "tensor 'w': shape [3037000500, 3037000500, 0] with dtype F32 overflows 64-bit sizes");

    refuse("{\"__metadata__\":[],\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
           "\"__metadata__\" is an array, not an object of strings");
    refuse("{\"__metadata__\":{\"epoch\":3}}", "metadata key 'epoch' has a number as its value");
}

TEST_CASE("safetensors: overlapping and gapped tensors are refused naming both", "[io]") {
    TempDir dir;
    auto refuse = [&](std::string_view json, std::string_view data, const std::string& what) {
        const auto p = raw_file(dir, json, data);
        REQUIRE_THROWS_WITH(SafetensorsFile::open(p), Contains(p.string()) && Contains(what));
    };
    const std::string twelve(12, '\0');
    refuse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
           twelve, "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
    refuse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
           std::string(8, '\0'), "tensors 'a' [0, 8) and 'b' [0, 8) overlap");
    refuse(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
        twelve,
        "bytes [4, 8) of the data buffer belong to no tensor (a gap after tensor 'a', before tensor 'b')");
    refuse("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", twelve,
           "bytes [0, 8) of the data buffer belong to no tensor (a gap at the start, before tensor 'b')");
    // An empty tensor inside another's bytes is no overlap in bytes, but breaks the tiling.
    refuse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
           std::string(8, '\0'), "tensors 'a' [0, 8) and 'e' [4, 4) overlap");
}

TEST_CASE("safetensors: get refuses the wrong dtype, rank, shape or key and says what it found", "[io]") {
    TempDir dir;
    const fs::path p = dir / "m.safetensors";
    save_safetensors(p, {{"w", make<float, 2>({2, 3})}, {"b", make<float, 1>({3})}});
    const auto f = SafetensorsFile::open(p);

    REQUIRE_THROWS_WITH(f.info("nope"), Contains(p.string()) && Contains("no tensor 'nope'") &&
                                            Contains("the file holds 2 tensors: 'b', 'w'"));
    REQUIRE_THROWS_WITH((f.get<float, 2>("nope")), Contains(p.string()) && Contains("no tensor 'nope'"));
    REQUIRE_THROWS_WITH(
        (f.get<double, 2>("w")),
        Contains(p.string()) &&
            Contains("tensor 'w' is F32 (float32) with shape [2, 3], but get<float64, 2> asks for float64"));
    REQUIRE_THROWS_WITH(
        (f.get<float, 3>("w")),
        Contains(p.string()) &&
            Contains("tensor 'w' has shape [2, 3] (rank 2), but get<float32, 3> asks for rank 3"));

    auto wrong = Tensor<float, 2>::full({3, 2}, 9.0f);
    REQUIRE_THROWS_WITH(f.get_into("w", wrong),
                        Contains(p.string()) &&
                            Contains("tensor 'w' has shape [2, 3], but the destination has shape [3, 2]"));
    CHECK(wrong(2, 1) == 9.0f);
    auto wrong_type = Tensor<half, 2>::zeros({2, 3});
    REQUIRE_THROWS_WITH(f.get_into("w", wrong_type), Contains("tensor 'w' is F32 (float32)") &&
                                                         Contains("get_into asks for float16"));
    Tensor<float, 1> undefined;
    REQUIRE_THROWS_WITH(f.get_into("b", undefined),
                        Contains("get_into(\"b\"): the destination tensor is undefined"));
}

TEST_CASE("safetensors: a BOOL tensor holding a byte other than 0 or 1 is refused", "[io]") {
    TempDir dir;
    const auto p = raw_file(dir, "{\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}",
                            bytes({1, 2, 0}));
    const auto f = SafetensorsFile::open(p);
    REQUIRE_THROWS_WITH((f.get<bool, 1>("mask")),
                        Contains(p.string()) && Contains("BOOL tensor 'mask' holds byte 2 at element 1"));
}

// ---- writing: validation and atomicity ---------------------------------------------------------

TEST_CASE("safetensors: save refuses bad entries and writes nothing", "[io]") {
    TempDir dir;
    const fs::path p = dir / "out.safetensors";
    const auto a = make<float, 1>({2});
    REQUIRE_THROWS_WITH(save_safetensors(p, {{"a", a}, {"b", a}, {"a", make<double, 1>({1})}}),
                        Contains(p.string()) && Contains("duplicate tensor 'a'"));
    REQUIRE_THROWS_WITH(save_safetensors(p, {{"__metadata__", a}}),
                        Contains(p.string()) && Contains("tensor '__metadata__': the name is reserved"));
    REQUIRE_THROWS_WITH(save_safetensors(p, {{"bad\xff", a}}),
                        Contains(p.string()) && Contains("not valid UTF-8"));
    REQUIRE_THROWS_WITH(save_safetensors(p, {}, {{"k", "\xc3"}}),
                        Contains(p.string()) && Contains("metadata key 'k' or its value is not valid UTF-8"));
    const float raw[3] = {1, 2, 3};
    REQUIRE_THROWS_WITH(save_safetensors(p, {SafetensorsEntry("raw", DType::f32, {2, 2}, raw, sizeof raw)}),
                        Contains(p.string()) &&
                            Contains("tensor 'raw': 12 bytes given, but shape [2, 2] of float32 needs 16"));
    REQUIRE_THROWS_WITH(save_safetensors(p, {SafetensorsEntry("neg", DType::f32, {-1, 2}, raw, 0)}),
                        Contains("tensor 'neg': negative extent in shape [-1, 2]"));
    REQUIRE_THROWS_WITH(save_safetensors(p, {SafetensorsEntry("big", DType::f64, {index_t(1) << 62, 8}, raw, 0)}),
                        Contains("tensor 'big': 0 bytes given") && Contains("needs more than 2^64"));
    Tensor<float, 2> undefined;
    REQUIRE_THROWS_WITH(save_safetensors(p, {{"u", undefined}}),
                        Contains(p.string()) && Contains("tensor 'u' is undefined"));
    CHECK(!fs::exists(p));
    CHECK(!fs::exists(dir / "out.safetensors.tmp"));

    // Raw bytes that are right are written as given.
    save_safetensors(p, {SafetensorsEntry("raw", DType::f32, {3}, raw, sizeof raw)});
    CHECK(SafetensorsFile::open(p).get<float, 1>("raw")(2) == 3.0f);
}

TEST_CASE("safetensors: a failed save leaves the previous file intact", "[io]") {
    TempDir dir;
    const fs::path p = dir / "ckpt.safetensors";
    const fs::path tmp = dir / "ckpt.safetensors.tmp";
    const auto old_w = make<float, 2>({4, 4}, 1);
    save_safetensors(p, {{"w", old_w}}, {{"step", "1"}});
    const std::string old_bytes = read_bytes(p);
    CHECK(!fs::exists(tmp));  // nothing left behind by a successful save
    const auto new_w = make<float, 2>({512, 512}, 2);  // 1 MiB

    SECTION("the temporary path is a directory") {
        fs::create_directory(tmp);
        REQUIRE_THROWS_WITH(save_safetensors(p, {{"w", new_w}}, {{"step", "2"}}),
                            Contains(p.string()) && Contains(tmp.string()) && Contains("is a directory"));
        CHECK(fs::is_directory(tmp));  // not ours to remove
    }
    SECTION("the disk fills up while writing (simulated with RLIMIT_FSIZE)") {
        struct rlimit saved {};
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
        auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of a signal
        struct rlimit limited = saved;
        limited.rlim_cur = 64 * 1024;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
        bool threw = false;
        std::string message;
        try {
            save_safetensors(p, {{"w", new_w}}, {{"step", "2"}});
        } catch (const Error& e) {
            threw = true;
            message = e.what();
        }
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, old_handler);
        REQUIRE(threw);
        CHECK_THAT(message, Contains(p.string()) && Contains("writing") && Contains("File too large") &&
                                Contains("previous file at the path is unchanged"));
        CHECK(!fs::exists(tmp));  // the partial temporary file was removed
    }
    SECTION("the folder does not exist") {
        const fs::path elsewhere = dir / "missing" / "ckpt.safetensors";
        REQUIRE_THROWS_WITH(save_safetensors(elsewhere, {{"w", new_w}}),
                            Contains(elsewhere.string()) && Contains("cannot create the temporary file") &&
                                Contains("No such file or directory"));
    }
    SECTION("the folder is not writable") {
        if (::geteuid() == 0) {
            WARN("running as root: permissions do not stop writes, skipping");
        } else {
            fs::permissions(dir.path,
                            fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                            fs::perm_options::remove);
            REQUIRE_THROWS_WITH(save_safetensors(p, {{"w", new_w}}),
                                Contains(p.string()) && Contains("Permission denied"));
            fs::permissions(dir.path, fs::perms::owner_write, fs::perm_options::add);
        }
    }
    SECTION("the target is a directory: the rename fails and the temporary file is removed") {
        const fs::path d = dir / "adir";
        fs::create_directory(d);
        fs::path dtmp = d;
        dtmp += ".tmp";
        REQUIRE_THROWS_WITH(save_safetensors(d, {{"w", new_w}}),
                            Contains(d.string()) && Contains("renaming") &&
                                Contains("previous file at the path is unchanged"));
        CHECK(!fs::exists(dtmp));
        CHECK(fs::is_directory(d));
    }
    CHECK(read_bytes(p) == old_bytes);
    const auto f = SafetensorsFile::open(p);
    CHECK(f.metadata().at("step") == "1");
    CHECK(same_bits(f.get<float, 2>("w"), old_w));
}

TEST_CASE("safetensors: a stale temporary file from a crash is replaced", "[io]") {
    TempDir dir;
    const fs::path p = dir / "ckpt.safetensors";
    const fs::path tmp = dir / "ckpt.safetensors.tmp";
    write_bytes(tmp, "half a checkpoint");
    const auto w = make<float, 1>({8});
    save_safetensors(p, {{"w", w}});
    CHECK(!fs::exists(tmp));
    CHECK(same_bits(SafetensorsFile::open(p).get<float, 1>("w"), w));

    // A symlink there is replaced too, never written through.
    const fs::path target = dir / "target";
    write_bytes(target, "keep me");
    fs::create_symlink(target, tmp);
    save_safetensors(p, {{"w", w}});
    CHECK(read_bytes(target) == "keep me");
    CHECK(!fs::exists(fs::symlink_status(tmp)));
}

TEST_CASE("safetensors: an open file keeps reading the version it checked after an atomic save", "[io]") {
    TempDir dir;
    const fs::path p = dir / "ckpt.safetensors";
    const auto v1 = make<float, 1>({16}, 1);
    save_safetensors(p, {{"w", v1}});
    const auto f = SafetensorsFile::open(p);
    save_safetensors(p, {{"w", make<float, 1>({16}, 2)}, {"extra", make<float, 1>({1000})}});
    CHECK(same_bits(f.get<float, 1>("w"), v1));
    CHECK(!f.contains("extra"));
    CHECK(SafetensorsFile::open(p).contains("extra"));
}

// The example in docs/io.md.
TEST_CASE("safetensors: docs example", "[io][docs]") {
    TempDir dir;
    const fs::path path = dir / "model.safetensors";
    auto w = Tensor<float, 2>::randn({4, 3});
    auto b = Tensor<float, 1>::zeros({4});
    // [snippet:safetensors]
    save_safetensors(path, {{"fc.weight", w}, {"fc.bias", b}}, {{"step", "1000"}});

    auto file = SafetensorsFile::open(path);               // validates the header
    auto w2 = file.get<float, 2>("fc.weight");             // [4, 3], a new tensor
    file.get_into("fc.bias", b);                           // into an existing tensor
    std::string step = file.metadata().at("step");         // "1000"
    const SafetensorsInfo& info = file.info("fc.weight");  // dtype, shape, byte range
    // [/snippet]
    CHECK(same_bits(w2, w));
    CHECK(step == "1000");
    CHECK(info.dtype == DType::f32);
    CHECK(info.shape == std::vector<index_t>{4, 3});

    // docs/io.md shows exactly the lines between the snippet markers above.
    const fs::path root = WEFT_SOURCE_DIR;
    const std::string source = read_bytes(root / "tests/io/safetensors_test.cpp");
    const std::string open_mark = std::string("// [snippet:") + "safetensors]\n";
    const std::string close_mark = std::string("// [/") + "snippet]";
    const auto begin = source.find(open_mark);
    REQUIRE(begin != std::string::npos);
    const auto close = source.find(close_mark, begin);
    REQUIRE(close != std::string::npos);
    const auto end = source.rfind('\n', close) + 1;  // the start of the closing marker's line
    std::string shown;
    std::istringstream lines(source.substr(begin + open_mark.size(), end - begin - open_mark.size()));
    for (std::string line; std::getline(lines, line);)
        shown += (line.size() > 4 ? line.substr(4) : std::string()) + "\n";
    CHECK_THAT(read_bytes(root / "docs/io.md"), Contains("```cpp\n" + shown + "```"));
}

// Random damage to a valid file: every variant must open (and read) cleanly or throw
// weft::Error; under the asan preset this also shows that nothing is read out of bounds.
TEST_CASE("safetensors: randomly damaged files fail cleanly", "[io]") {
    TempDir dir;
    const fs::path good = dir / "good.safetensors";
    save_safetensors(good,
                     {{"w", make<float, 2>({3, 4})},
                      {"ids", make<std::int64_t, 1>({5})},
                      {"mask", make<bool, 1>({6})},
                      {"h", make<half, 3>({1, 2, 2})},
                      {"s", make<double, 0>({})}},
                     {{"step", "7"}});
    const std::string original = read_bytes(good);
    const fs::path p = dir / "damaged.safetensors";
    std::uint64_t state = 0x2545F4914F6CDD1Dull;
    auto next = [&] {  // xorshift64*: the same damage on every run
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1Dull;
    };
    int opened = 0, refused = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        std::string damaged = original;
        switch (next() % 4) {
            case 0: damaged.resize(std::size_t(next() % original.size())); break;  // truncate
            case 1:
                damaged[std::size_t(next() % damaged.size())] ^= char(1 << (next() % 8));
                break;                                                       // flip a bit
            case 2: damaged[std::size_t(next() % 8)] = char(next()); break;  // the length field
            default: {  // a byte of the header replaced by a JSON-significant character
                constexpr std::string_view significant = "{}[]\",:0-9e. \\";
                damaged[8 + std::size_t(next() % (damaged.size() - 8 - 64))] =
                    significant[std::size_t(next() % significant.size())];
            }
        }
        write_bytes(p, damaged);
        try {
            const auto f = SafetensorsFile::open(p);
            for (const auto& name : f.names()) {
                const auto& info = f.info(name);
                if (info.dtype == DType::f32 && info.rank() == 2) (void)f.get<float, 2>(name);
                if (info.dtype == DType::b8 && info.rank() == 1) (void)f.get<bool, 1>(name);
            }
            ++opened;
        } catch (const Error&) {
            ++refused;
        }
    }
    CHECK(refused > 2000);
    CHECK(opened > 0);  // some damage (in tensor data) leaves a valid file
}
