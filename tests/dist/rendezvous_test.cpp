// dist/rendezvous.hpp: rank 0's blob reaches every rank through a file and through TCP, with ranks
// started as threads in any order; missing peers, foreign files and bad arguments give errors that
// say what was missing, within the timeout.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <weft/dist/rendezvous.hpp>

using namespace weft;
using Catch::Matchers::Contains;
using namespace std::chrono_literals;

namespace {

// A 128-byte blob with every byte value that matters (0, 0xff, '\n', ' ').
std::string test_blob(int salt) {
    std::string b(128, '\0');
    for (int i = 0; i < 128; ++i) b[std::size_t(i)] = char((i * 37 + salt) & 0xff);
    b[5] = '\n';
    b[6] = ' ';
    b[7] = '\0';
    return b;
}

std::filesystem::path fresh_dir(const std::string& name) {
    auto d = std::filesystem::temp_directory_path() / ("weft_rdv_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
}

// A free TCP port: bind port 0, read it back, close (the test then listens on it at once).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return ntohs(a.sin_port);
}

// Runs `world` ranks as threads, the peers started before rank 0 (the usual race on a cluster),
// and returns what each got (or its error text).
template <class F>
std::vector<std::string> run_ranks(int world, F f) {
    std::vector<std::string> got(static_cast<std::size_t>(world));
    std::vector<std::thread> threads;
    auto body = [&](int r) {
        try {
            got[std::size_t(r)] = f(r);
        } catch (const std::exception& e) {
            got[std::size_t(r)] = std::string("ERROR ") + e.what();
        }
    };
    for (int r = world - 1; r >= 1; --r) threads.emplace_back(body, r);
    std::this_thread::sleep_for(50ms);  // the peers poll / retry before rank 0 exists
    threads.emplace_back(body, 0);
    for (auto& t : threads) t.join();
    return got;
}

}  // namespace

TEST_CASE("rendezvous: a file hands rank 0's blob to every rank", "[dist]") {
    const auto dir = fresh_dir("file");
    const std::string path = (dir / "job.id").string();
    const std::string blob = test_blob(3);
    const auto got = run_ranks(6, [&](int r) {
        return dist::rendezvous_file(path, r, r == 0 ? std::string_view(blob) : std::string_view(), 128, 20s);
    });
    for (int r = 0; r < 6; ++r) {
        INFO("rank " << r << ": " << got[std::size_t(r)].substr(0, 200));
        REQUIRE(got[std::size_t(r)] == blob);
    }
    // Written by rename: no temporary is left next to it.
    const auto files = std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator());
    REQUIRE(files == 1);
    std::filesystem::remove_all(dir);
}

TEST_CASE("rendezvous: a file that never comes, or is not ours, is a clear error after the timeout", "[dist]") {
    const auto dir = fresh_dir("file_bad");
    const std::string path = (dir / "job.id").string();
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE_THROWS_WITH(dist::rendezvous_file(path, 2, {}, 128, 300ms),
                        Contains("rank 2") && Contains(path) && Contains("does not exist"));
    REQUIRE(std::chrono::steady_clock::now() - t0 < 5s);

    std::ofstream(path) << "hello\n";
    REQUIRE_THROWS_WITH(dist::rendezvous_file(path, 1, {}, 128, 300ms), Contains("not a weft rendezvous"));
    // The same file from a run with another blob size is not ours either.
    const std::string blob = test_blob(1);
    REQUIRE(dist::rendezvous_file(path, 0, blob.substr(0, 64), 64, 1s) == blob.substr(0, 64));
    REQUIRE_THROWS_WITH(dist::rendezvous_file(path, 1, {}, 128, 300ms), Contains("not a weft rendezvous"));
    REQUIRE(dist::rendezvous_file(path, 1, {}, 64, 1s) == blob.substr(0, 64));

    REQUIRE_THROWS_WITH(dist::rendezvous_file(path, 0, "short", 128, 1s), Contains("128-byte"));
    REQUIRE_THROWS_WITH(dist::rendezvous_file((dir / "no" / "such" / "dir" / "x").string(), 0, blob, 128, 1s),
                        Contains("cannot create"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("rendezvous: TCP from rank 0 reaches every rank", "[dist]") {
    const int port = free_port();
    const std::string blob = test_blob(9);
    const auto got = run_ranks(8, [&](int r) {
        return dist::rendezvous_tcp("127.0.0.1", port, r, 8, r == 0 ? std::string_view(blob) : std::string_view(), 128,
                                    20s);
    });
    for (int r = 0; r < 8; ++r) {
        INFO("rank " << r << ": " << got[std::size_t(r)].substr(0, 200));
        REQUIRE(got[std::size_t(r)] == blob);
    }
    // A world of one needs no socket at all.
    REQUIRE(dist::rendezvous_tcp("127.0.0.1", port, 0, 1, blob, 128, 1s) == blob);
    // "localhost" resolves (IPv6 or IPv4) to the dual-stack listener too.
    const int port2 = free_port();
    const auto again = run_ranks(2, [&](int r) {
        return dist::rendezvous_tcp("localhost", port2, r, 2, r == 0 ? std::string_view(blob) : std::string_view(), 128,
                                    20s);
    });
    REQUIRE(again[0] == blob);
    REQUIRE(again[1] == blob);
}

TEST_CASE("rendezvous: TCP names missing ranks, duplicate ranks and an absent rank 0", "[dist]") {
    const std::string blob = test_blob(5);
    {  // ranks 1 and 3 of 4 come, rank 2 does not
        const int port = free_port();
        const auto got = run_ranks(4, [&](int r) -> std::string {
            if (r == 2) return "absent";
            return dist::rendezvous_tcp("127.0.0.1", port, r, 4, r == 0 ? std::string_view(blob) : std::string_view(),
                                        128, 1500ms);
        });
        INFO(got[0]);
        REQUIRE_THAT(got[0], Contains("ERROR") && Contains("1 of 3 ranks never connected") && Contains("missing: 2"));
        REQUIRE(got[1] == blob);
        REQUIRE(got[3] == blob);
    }
    {  // two processes claim rank 1
        const int port = free_port();
        std::atomic<int> ones{0};
        const auto got = run_ranks(3, [&](int r) -> std::string {
            const int claimed = r == 0 ? 0 : 1;
            if (claimed == 1) ++ones;
            return dist::rendezvous_tcp("127.0.0.1", port, claimed, 3,
                                        claimed == 0 ? std::string_view(blob) : std::string_view(), 128, 1500ms);
        });
        INFO(got[0]);
        REQUIRE(ones == 2);
        REQUIRE_THAT(got[0], Contains("ERROR") && Contains("two processes say they are rank 1"));
    }
    {  // nobody listens
        const int port = free_port();
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE_THROWS_WITH(dist::rendezvous_tcp("127.0.0.1", port, 1, 2, {}, 128, 400ms),
                            Contains("rank 1") && Contains("127.0.0.1:" + std::to_string(port)) &&
                                Contains("connect"));
        REQUIRE(std::chrono::steady_clock::now() - t0 < 5s);
    }
    REQUIRE_THROWS_WITH(dist::rendezvous_tcp("127.0.0.1", 0, 1, 2, {}, 128, 1s), Contains("WEFT_MASTER_PORT"));
    REQUIRE_THROWS_WITH(dist::rendezvous_tcp("127.0.0.1", 1234, 2, 2, {}, 128, 1s), Contains("world of 2"));
}

TEST_CASE("rendezvous: WEFT_RENDEZVOUS_TIMEOUT sets the wait", "[dist]") {
    ::unsetenv("WEFT_RENDEZVOUS_TIMEOUT");
    REQUIRE(dist::rendezvous_timeout() == 300s);
    ::setenv("WEFT_RENDEZVOUS_TIMEOUT", "2.5", 1);
    REQUIRE(dist::rendezvous_timeout() == 2500ms);
    ::setenv("WEFT_RENDEZVOUS_TIMEOUT", "soon", 1);
    REQUIRE_THROWS_WITH(dist::rendezvous_timeout(), Contains("WEFT_RENDEZVOUS_TIMEOUT='soon'"));
    ::unsetenv("WEFT_RENDEZVOUS_TIMEOUT");
}
