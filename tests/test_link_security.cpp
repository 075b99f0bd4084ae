// Keys and encryption on TCP links between nodes: TLS 1.3 keyed by the authkey (what crosses
// the wire is unreadable and cannot be changed unnoticed), and the plaintext handshake where
// a listener allows it. A tap between two nodes records their bytes as an observer on the
// network would. Certificates: test_link_certificates.cpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "mproc/runtime/internal/handshake.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/frame.hpp"
#include "support.hpp"
#include "tcp_peers.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::closed_by_other_side;
using test::code_of;
using test::raw_connect;
using test::start_other_node;
using test::tls_by_hand;
namespace hs = mproc::detail::handshake;
using security = mproc::node::link_security;

namespace {

// Stands between a client and a node's port as an observer on the network would: forwards
// both ways and records every byte. corrupt_next flips a bit in the next bytes a client sends.
class tap {
public:
  explicit tap(std::uint16_t to) : to_(to) {
    listen_fd_ = test::loopback_listener(port_);
    thread_ = std::thread{[this] { run(); }};
  }
  ~tap() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  tap(const tap&) = delete;
  tap& operator=(const tap&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string seen() const {
    std::lock_guard guard{mtx_};
    return seen_;
  }
  std::atomic<bool> corrupt_next{false};

private:
  // No Catch assertions on this thread: they are not thread-safe.
  void run() {
    pollfd p{listen_fd_, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 50) == 0) {
    }
    if (stop_)
      return;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(to_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (client >= 0 && ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
      forward(client, server);
    ::close(client);
    ::close(server);
  }

  void forward(int client, int server) {
    pollfd ends[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    char buf[65536];
    while (!stop_) {
      if (::poll(ends, 2, 50) <= 0)
        continue;
      for (int i = 0; i < 2; ++i) {
        if (ends[i].revents == 0)
          continue;
        auto n = ::recv(ends[i].fd, buf, sizeof buf, 0);
        if (n <= 0)
          return;
        if (i == 0 && corrupt_next.exchange(false))
          buf[n - 1] ^= 0x01;
        {
          std::lock_guard guard{mtx_};
          seen_.append(buf, static_cast<std::size_t>(n));
        }
        if (::send(ends[1 - i].fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n)
          return;
      }
    }
  }

  std::uint16_t to_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mtx_;
  std::string seen_;
  std::thread thread_;
};

} // namespace

TEST_CASE("the handshake's proofs depend on the key, both nonces and the direction") {
  auto a = hs::fresh_nonce();
  auto b = hs::fresh_nonce();
  CHECK(a != b);
  auto m = hs::server_mac("key one, sixteen+", a, b);
  CHECK(hs::same(m, hs::server_mac("key one, sixteen+", a, b)));
  CHECK_FALSE(hs::same(m, hs::server_mac("key two, sixteen+", a, b)));
  CHECK_FALSE(hs::same(m, hs::server_mac("key one, sixteen+", b, a)));
  CHECK_FALSE(hs::same(m, hs::client_mac("key one, sixteen+", a, b)));  // no reflection
  hs::nonce n{};
  auto hello = hs::make_hello(a);
  CHECK(hs::read_hello(hello, n));
  CHECK(n == a);
  hello[0] = 'X';
  CHECK_FALSE(hs::read_hello(hello, n));
}

TEST_CASE("a wrong authkey is refused in both directions and the node keeps serving") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  auto address = "127.0.0.1:" + std::to_string(port);
  auto wrong = mproc::authkey::generate();
  // The client's binder, made from its key, does not verify at the server: an alert, closed.
  CHECK(code_of([&] { node->connect(address, wrong); }) == errc::auth_failed);

  // By hand: the node answers a wrong key with an alert, then closes. From another address:
  // 127.0.0.1 now waits after its wrong key above.
  int fd = raw_connect(port, "127.0.0.4");
  auto tried = tls_by_hand(fd, wrong.secret());
  CHECK_FALSE(tried.session);
  CHECK(tried.answered);
  CHECK(closed_by_other_side(fd));
  ::close(fd);

  auto other = start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);
  CHECK(remote.connected());
}

TEST_CASE("what nodes say to each other is unreadable on the wire; in clear it is not") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = start_other_node(*node, key, true);  // accepts both: one listener, two runs
  const std::string secret = "the eagle lands at 0400 in sector 7G";
  auto exchange = [&](security how) {
    tap wire{other.port};
    auto remote = node->connect(wire.address(), key, 5s, how);
    auto echo = remote.spawn("echo_text");
    CHECK(node->request<std::string>(echo, 5s, secret) == secret);
    remote.disconnect();
    return wire.seen();
  };
  auto encrypted = exchange(security::tls);
  auto in_clear = exchange(security::plaintext);
  // The tap saw the whole exchange both times: in clear, the text and the actor's name.
  CHECK(in_clear.find(secret) != std::string::npos);
  CHECK(in_clear.find("echo_text") != std::string::npos);
  CHECK(encrypted.size() > 500);
  CHECK(encrypted.find(secret) == std::string::npos);
  CHECK(encrypted.find("echo_text") == std::string::npos);
  CHECK(encrypted.find("eagle") == std::string::npos);
  CHECK(encrypted.find(std::string{key.secret()}) == std::string::npos);
}

TEST_CASE("a byte changed on the wire closes the link; nothing altered is delivered") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = start_other_node(*node, key, false);
  tap wire{other.port};
  auto remote = node->connect(wire.address(), key, 5s);
  auto echo = remote.spawn("echo_text");
  CHECK(node->request<std::string>(echo, 5s, std::string{"before"}) == "before");
  wire.corrupt_next = true;
  // Without integrity, the flipped bit would change a character of "after" and the echo
  // would answer it; the node closes the link at the record that does not verify.
  auto code = code_of([&] { node->request<std::string>(echo, 5s, std::string{"after"}); });
  INFO("the request failed with " << mproc::to_string(code));
  CHECK(code != errc::none);
  CHECK(code != errc::timeout);
  CHECK(test::eventually(5s, [&] { return !remote.connected(); }));
  other.process.terminate();
  other.process.join(10s);
}

TEST_CASE("a node accepts the plaintext handshake only where it listens for it") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto tls_only = node->listen(key);
  CHECK(code_of([&] {
          node->connect("127.0.0.1:" + std::to_string(tls_only), key, 5s, security::plaintext);
        })
        == errc::auth_failed);
  auto other = start_other_node(*node, key, true);
  auto in_clear = node->connect(other.address(), key, 5s, security::plaintext);
  CHECK(in_clear.connected());
  // The client proves first: a wrong key gets the challenge, then the door.
  int fd = raw_connect(other.port);
  auto mine = hs::fresh_nonce();
  auto hello = hs::make_hello(mine);
  ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
  std::array<std::uint8_t, hs::challenge_size> challenge{};
  REQUIRE(::recv(fd, challenge.data(), challenge.size(), MSG_WAITALL) == hs::challenge_size);
  hs::nonce theirs{};
  REQUIRE(hs::read_challenge(challenge, theirs));
  auto forged = hs::client_mac(mproc::authkey::generate().secret(), theirs, mine);
  ::send(fd, forged.data(), forged.size(), MSG_NOSIGNAL);
  CHECK(test::closed_without_a_byte(fd));  // no verdict: the server proves nothing to it
  ::close(fd);
}

TEST_CASE("a connection turned back to its own node is refused") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  // What a reflection on the network would do: every node holds the same key, so TLS
  // completes; the node's own hello comes back and gives it away.
  auto why = test::failure_of([&] { node->connect("127.0.0.1:" + std::to_string(port), key, 5s); });
  CHECK_THAT(why, Catch::Contains("connected to itself"));
}

TEST_CASE("a node whose one large message takes longer than the heartbeat timeout is not down") {
  test::scoped_node node;  // heartbeat_timeout 2 s
  auto key = mproc::authkey::generate();
  int fd = raw_connect(node->listen(key));
  auto tls = tls_by_hand(fd, key.secret());
  REQUIRE(tls.session);
  // A message of 4 MiB on a slow link: its bytes trickle in for 5 s, and its frame (with
  // the heartbeats queued behind it, as frames do not interleave) is not whole before.
  char header[mproc::wire::frame_header_size];
  mproc::wire::put_frame_length(header, 4u << 20);
  test::send_sealed(fd, *tls.session, {header, sizeof header});
  // Whole records each turn, or one record's bytes spread over 4 s: no record opens for
  // longer than the heartbeat timeout, yet every byte that comes is a sign of life.
  std::size_t per_turn = std::string::npos;
  SECTION("whole records") {}
  SECTION("a record split over seconds") { per_turn = 400; }
  std::string piece(per_turn == std::string::npos ? 32 * 1024 : 16 * 1024, '\0');
  std::string sealed;
  bool closed = false;
  for (int i = 0; i < 50 && !closed; ++i) {
    std::this_thread::sleep_for(100ms);  // the slow link's pace
    char drop[4096];
    ssize_t r;
    while ((r = ::recv(fd, drop, sizeof drop, MSG_DONTWAIT)) > 0) {
    }
    closed = r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    if (closed)
      break;
    if (sealed.empty())
      REQUIRE(tls.session->seal(piece.data(), piece.size(), sealed));
    auto n = std::min(per_turn, sealed.size());
    REQUIRE(::send(fd, sealed.data(), n, MSG_NOSIGNAL) == static_cast<ssize_t>(n));
    sealed.erase(0, n);
  }
  CHECK_FALSE(closed);
  ::close(fd);
}

TEST_CASE("a connection the node's limits turn away is unreachable (try later), not auth_failed") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  // Eight handshakes under way from 127.0.0.1 (each sent a byte: held up to 5 s) fill that
  // address's share; the next connection from it is closed unanswered.
  std::vector<int> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(raw_connect(port));
    const char tls_record = 0x16;
    REQUIRE(::send(held.back(), &tls_record, 1, MSG_NOSIGNAL) == 1);
  }
  auto address = "127.0.0.1:" + std::to_string(port);
  CHECK(code_of([&] { node->connect(address, key, 5s); }) == errc::unreachable);
  for (int fd : held)
    ::close(fd);
}
