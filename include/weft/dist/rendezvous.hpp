// weft/dist/rendezvous.hpp: hands a small blob from rank 0 to every rank before any communicator exists.
//
//   // rank 0 makes the blob (NCCL's 128-byte unique id), every rank gets the same bytes back:
//   std::string id = rank == 0 ? make_id() : std::string();
//   id = dist::rendezvous_file("/shared/job42.id", rank, id, 128, std::chrono::seconds(300));
//   id = dist::rendezvous_tcp("node017", 29500, rank, size, id, 128, std::chrono::seconds(300));
//
// NCCL needs every process of a world to start from the same `ncclUniqueId`, made by one of them.
// With MPI around, MPI broadcasts it (NcclCommunicator::create(bootstrap, ...)); without it these
// two ways need nothing but POSIX:
//   - a file on a filesystem all ranks see (WEFT_RENDEZVOUS=<path>): rank 0 writes "<path>.tmp.<pid>"
//     and renames it over <path>, so a reader sees the whole blob or nothing; the others poll for it.
//     A file left by a crashed run would hand out a stale id: use a fresh path per run (put the job
//     id in it) or delete the file; the NCCL factory removes it itself once every rank has joined.
//   - a TCP socket (WEFT_MASTER_ADDR / WEFT_MASTER_PORT): rank 0 listens, each other rank connects
//     (retrying until rank 0 is up), says which rank it is, and receives the blob.
// Both give up after `timeout` with an error that names the path or address and what was missing.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../core/error.hpp"

namespace weft::dist {

namespace detail {

// Guards against reading something that is not ours (another service on the port, a stray file).
inline constexpr std::string_view rendezvous_magic = "weft-rdv1";

inline std::string errno_text() { return std::strerror(errno); }

using Clock = std::chrono::steady_clock;

inline std::string hex_encode(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

// Empty optional-like result on malformed input: the caller decides whether that means "not yet".
inline bool hex_decode(std::string_view hex, std::string& out) {
    if (hex.size() % 2) return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    out.assign(hex.size() / 2, '\0');
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = char(hi * 16 + lo);
    }
    return true;
}

inline void check_rendezvous_args(const char* how, int rank, std::string_view payload, std::size_t size) {
    WEFT_CHECK(rank >= 0, "dist::", how, ": rank ", rank, " is negative");
    if (rank == 0)
        WEFT_CHECK(payload.size() == size, "dist::", how, ": rank 0 must pass the ", size, "-byte blob, not ",
                   payload.size(), " bytes");
}

// Reads the whole of `path` into `out`; false if it does not exist (yet) or cannot be read.
inline bool read_small_file(const std::string& path, std::string& out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    out.clear();
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, std::size_t(n));
    }
    ::close(fd);
    return true;
}

// A socket closed when it leaves scope, so every error path below can simply throw.
class Socket {
public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Socket& operator=(Socket&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = o.fd_;
            o.fd_ = -1;
        }
        return *this;
    }
    ~Socket() { reset(); }
    int fd() const { return fd_; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

inline int ms_left(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : int(std::min<long long>(left, 1 << 30));
}

// Sends or receives exactly n bytes before the deadline; false on timeout, peer close or error.
inline bool send_all(int fd, const void* data, std::size_t n, Clock::time_point deadline) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        pollfd pfd{fd, POLLOUT, 0};
        const int r = ::poll(&pfd, 1, ms_left(deadline));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return false;
        p += k;
        n -= std::size_t(k);
    }
    return true;
}
inline bool recv_all(int fd, void* data, std::size_t n, Clock::time_point deadline) {
    char* p = static_cast<char*>(data);
    while (n > 0) {
        pollfd pfd{fd, POLLIN, 0};
        const int r = ::poll(&pfd, 1, ms_left(deadline));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        const ssize_t k = ::recv(fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return false;
        p += k;
        n -= std::size_t(k);
    }
    return true;
}

}  // namespace detail

// Rank 0 passes `payload` (exactly `size` bytes) and gets it back; every other rank passes anything
// (ignored) and gets rank 0's payload once the file at `path` appears, or an error after `timeout`.
inline std::string rendezvous_file(const std::string& path, int rank, std::string_view payload, std::size_t size,
                                   std::chrono::milliseconds timeout) {
    using namespace detail;
    check_rendezvous_args("rendezvous_file", rank, payload, size);
    WEFT_CHECK(!path.empty(), "dist::rendezvous_file: empty path (set WEFT_RENDEZVOUS to a file on a filesystem "
                              "every rank sees)");
    // One text line: magic, size, hex bytes. Text survives any filesystem and is easy to inspect.
    const auto encode = [&](std::string_view bytes) {
        return std::string(rendezvous_magic) + " " + std::to_string(bytes.size()) + " " + hex_encode(bytes) + "\n";
    };
    if (rank == 0) {
        const std::string tmp = path + ".tmp." + std::to_string(::getpid());
        const std::string text = encode(payload);
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        WEFT_CHECK(fd >= 0, "dist::rendezvous_file: cannot create '", tmp, "': ", errno_text(),
                   " (WEFT_RENDEZVOUS must name a file in a writable folder that every rank sees)");
        std::size_t done = 0;
        while (done < text.size()) {
            const ssize_t k = ::write(fd, text.data() + done, text.size() - done);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                const std::string why = errno_text();
                ::close(fd);
                ::unlink(tmp.c_str());
                WEFT_FAIL("dist::rendezvous_file: writing '", tmp, "' failed: ", why);
            }
            done += std::size_t(k);
        }
        // fsync: on a network filesystem the rename must not become visible before the bytes.
        const bool synced = ::fsync(fd) == 0;
        ::close(fd);
        if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
            const std::string why = errno_text();
            ::unlink(tmp.c_str());
            WEFT_FAIL("dist::rendezvous_file: cannot publish '", path, "': ", why);
        }
        return std::string(payload);
    }
    const auto deadline = Clock::now() + timeout;
    auto pause = std::chrono::milliseconds(10);
    std::string text, bytes, last_problem = "the file does not exist";
    for (;;) {
        if (read_small_file(path, text)) {
            // "<magic> <size> <hex>\n"; anything else is a foreign or damaged file, not a partial one
            // (the rename is atomic), but an NFS client may briefly show an old version: retry.
            const std::string head = std::string(rendezvous_magic) + " " + std::to_string(size) + " ";
            if (text.size() == head.size() + 2 * size + 1 && text.compare(0, head.size(), head) == 0 &&
                text.back() == '\n' && hex_decode(std::string_view(text).substr(head.size(), 2 * size), bytes))
                return bytes;
            last_problem = "it holds " + std::to_string(text.size()) + " bytes that are not a weft rendezvous of " +
                           std::to_string(size) + " bytes";
        }
        if (Clock::now() >= deadline)
            WEFT_FAIL("dist::rendezvous_file: rank ", rank, " waited ", timeout.count(), " ms for rank 0 to write '",
                      path, "', but ", last_problem,
                      " (is rank 0 running, and does every rank see the same filesystem at that path?)");
        std::this_thread::sleep_for(std::min(pause, std::chrono::milliseconds(ms_left(deadline)) + std::chrono::milliseconds(1)));
        pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
}

// Rank 0 listens on `port` (all interfaces) and serves `payload` to each of the other `world_size - 1`
// ranks, returning when all of them have it; the others connect to `host`:`port`, retrying until rank 0
// listens. Errors after `timeout` name the address and, on rank 0, the ranks that never came.
inline std::string rendezvous_tcp(const std::string& host, int port, int rank, int world_size, std::string_view payload,
                                  std::size_t size, std::chrono::milliseconds timeout) {
    using namespace detail;
    check_rendezvous_args("rendezvous_tcp", rank, payload, size);
    WEFT_CHECK(world_size >= 1 && rank < world_size, "dist::rendezvous_tcp: rank ", rank, " is not a rank of a world of ",
               world_size);
    WEFT_CHECK(port > 0 && port < 65536, "dist::rendezvous_tcp: port ", port,
               " is not a TCP port (set WEFT_MASTER_PORT to 1..65535)");
    const auto deadline = Clock::now() + timeout;
    const std::string where = host + ":" + std::to_string(port);
    const std::uint32_t size32 = std::uint32_t(size);

    if (rank == 0) {
        if (world_size == 1) return std::string(payload);
        Socket listener(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        bool v6 = listener.fd() >= 0;
        if (!v6) listener = Socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        WEFT_CHECK(listener.fd() >= 0, "dist::rendezvous_tcp: socket() failed: ", errno_text());
        int one = 1, zero = 0;
        ::setsockopt(listener.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restart right after a crash
        int rc;
        if (v6) {
            ::setsockopt(listener.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 peers too
            sockaddr_in6 a{};
            a.sin6_family = AF_INET6;
            a.sin6_addr = in6addr_any;
            a.sin6_port = htons(std::uint16_t(port));
            rc = ::bind(listener.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a);
        } else {
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_ANY);
            a.sin_port = htons(std::uint16_t(port));
            rc = ::bind(listener.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a);
        }
        WEFT_CHECK(rc == 0, "dist::rendezvous_tcp: rank 0 cannot listen on port ", port, ": ", errno_text(),
                   " (another job on this node using WEFT_MASTER_PORT=", port, "? pick another port)");
        WEFT_CHECK(::listen(listener.fd(), std::min(world_size, 4096)) == 0, "dist::rendezvous_tcp: listen() on port ",
                   port, " failed: ", errno_text());
        std::vector<bool> served(std::size_t(world_size), false);
        served[0] = true;
        int left = world_size - 1;
        while (left > 0) {
            pollfd pfd{listener.fd(), POLLIN, 0};
            const int r = ::poll(&pfd, 1, ms_left(deadline));
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) {
                std::string missing;
                int shown = 0;
                for (int i = 1; i < world_size && shown < 16; ++i)
                    if (!served[std::size_t(i)]) missing += (shown++ ? ", " : "") + std::to_string(i);
                WEFT_FAIL("dist::rendezvous_tcp: rank 0 waited ", timeout.count(), " ms on port ", port, " but ", left,
                          " of ", world_size - 1, " ranks never connected (first missing: ", missing,
                          "); do they use WEFT_MASTER_ADDR=<this node> and the same WEFT_MASTER_PORT, and is the "
                          "port open between the nodes?");
            }
            WEFT_CHECK(r > 0, "dist::rendezvous_tcp: poll() failed: ", errno_text());
            Socket peer(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
            if (peer.fd() < 0) continue;  // the peer gave up in between: it retries
            // Hello: magic, the peer's rank and the size it expects. Anything else is a stray client.
            char hello[rendezvous_magic.size() + 8];
            if (!recv_all(peer.fd(), hello, sizeof hello, std::min(deadline, Clock::now() + std::chrono::seconds(10))) ||
                std::string_view(hello, rendezvous_magic.size()) != rendezvous_magic)
                continue;
            std::uint32_t peer_rank = 0, peer_size = 0;
            std::memcpy(&peer_rank, hello + rendezvous_magic.size(), 4);
            std::memcpy(&peer_size, hello + rendezvous_magic.size() + 4, 4);
            peer_rank = ntohl(peer_rank);
            peer_size = ntohl(peer_size);
            WEFT_CHECK(peer_size == size32, "dist::rendezvous_tcp: rank ", peer_rank, " expects a ", peer_size,
                       "-byte blob, rank 0 serves ", size, " bytes (different weft builds?)");
            WEFT_CHECK(peer_rank >= 1 && int(peer_rank) < world_size, "dist::rendezvous_tcp: a peer says it is rank ",
                       peer_rank, ", not a rank of a world of ", world_size, " (WEFT_WORLD_SIZE differs between ranks?)");
            WEFT_CHECK(!served[peer_rank], "dist::rendezvous_tcp: two processes say they are rank ", peer_rank,
                       " (the launcher gave the same rank twice, or two jobs share WEFT_MASTER_PORT=", port, ")");
            std::string reply(rendezvous_magic);
            reply.append(payload);
            if (!send_all(peer.fd(), reply.data(), reply.size(), deadline)) continue;  // it retries
            served[peer_rank] = true;
            --left;
        }
        return std::string(payload);
    }

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    std::string last_problem = "no attempt";
    auto pause = std::chrono::milliseconds(20);
    for (;;) {
        addrinfo* found = nullptr;
        const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
        if (gai != 0) {
            last_problem = std::string("cannot resolve the host: ") + ::gai_strerror(gai);
        } else {
            for (addrinfo* a = found; a; a = a->ai_next) {
                Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
                if (s.fd() < 0) continue;
                if (::connect(s.fd(), a->ai_addr, a->ai_addrlen) != 0) {
                    last_problem = "connect: " + errno_text();
                    continue;
                }
                char hello[rendezvous_magic.size() + 8];
                std::memcpy(hello, rendezvous_magic.data(), rendezvous_magic.size());
                const std::uint32_t r = htonl(std::uint32_t(rank)), n = htonl(size32);
                std::memcpy(hello + rendezvous_magic.size(), &r, 4);
                std::memcpy(hello + rendezvous_magic.size() + 4, &n, 4);
                std::string reply(rendezvous_magic.size() + size, '\0');
                if (send_all(s.fd(), hello, sizeof hello, deadline) &&
                    recv_all(s.fd(), reply.data(), reply.size(), deadline)) {
                    ::freeaddrinfo(found);
                    WEFT_CHECK(std::string_view(reply).substr(0, rendezvous_magic.size()) == rendezvous_magic,
                               "dist::rendezvous_tcp: ", where, " answered, but is not a weft rank 0");
                    return reply.substr(rendezvous_magic.size());
                }
                last_problem = "rank 0 closed the connection before sending the blob";
            }
            ::freeaddrinfo(found);
        }
        if (Clock::now() >= deadline)
            WEFT_FAIL("dist::rendezvous_tcp: rank ", rank, " could not get the blob from rank 0 at ", where, " within ",
                      timeout.count(), " ms (last problem: ", last_problem,
                      "); is rank 0 running, does WEFT_MASTER_ADDR name its node, and is the port reachable?");
        std::this_thread::sleep_for(std::min(pause, std::chrono::milliseconds(ms_left(deadline)) + std::chrono::milliseconds(1)));
        pause = std::min(pause * 2, std::chrono::milliseconds(500));
    }
}

// The rendezvous timeout: WEFT_RENDEZVOUS_TIMEOUT seconds, 300 when unset (a job's ranks may start
// minutes apart on a busy cluster).
inline std::chrono::milliseconds rendezvous_timeout() {
    const char* s = std::getenv("WEFT_RENDEZVOUS_TIMEOUT");
    if (!s || !*s) return std::chrono::seconds(300);
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    WEFT_CHECK(end && *end == '\0' && v > 0, "dist: WEFT_RENDEZVOUS_TIMEOUT='", s, "' is not a positive number of seconds");
    return std::chrono::milliseconds(static_cast<long long>(v * 1000.0));
}

}  // namespace weft::dist
