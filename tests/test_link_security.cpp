// Keys, encryption and strangers on TCP links between nodes: TLS 1.3 keyed by the authkey
// (what crosses the wire is unreadable and cannot be changed unnoticed), the plaintext
// handshake where a listener allows it, and what a node does with strangers (wrong keys,
// garbage, silence, a full cap) — it refuses them, makes wrong keys wait, and keeps serving.
// The other nodes are child processes standing in for other machines; a tap between two
// nodes records their bytes as an observer on the network would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/handshake.hpp"
#include "mproc/runtime/internal/tls.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
namespace hs = mproc::detail::handshake;
namespace tls = mproc::detail::tls;
using security = mproc::node::link_security;

namespace {

caf::behavior echo_text(caf::event_based_actor*) {
  return {[](const std::string& s) { return s; }};
}

// A node standing in for another machine: listens with `key` (and, when `plaintext`, also
// for clients in clear), answers its port, serves.
caf::behavior listening_node(caf::event_based_actor* self, std::string key, bool plaintext) {
  return {[=](caf::get_atom) -> std::int32_t {
    try {
      return mproc::this_node().listen(mproc::authkey::from_string(key), "127.0.0.1:0",
                                       plaintext ? security::plaintext : security::tls);
    } catch (const mproc::error&) {
      self->quit();
      return -1;
    }
  }};
}

// A TCP connection to the loopback port, from `from` (another loopback address stands in
// for another machine: all of 127/8 is this host's).
int raw_connect(std::uint16_t port, const char* from = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (from) {
    sockaddr_in source{};
    source.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &source.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source) == 0);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// True when the other side closes `fd` (reads return EOF or reset) within 5 s.
bool closed_by_other_side(int fd) {
  char buf[256];
  for (;;) {
    auto r = ::recv(fd, buf, sizeof buf, 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET))
      return true;
    if (r < 0)
      return false;  // timed out: still open
  }
}

// A TLS client by hand on `fd`: the session once the handshake with `key` is done, or none.
// `answered`: the node sent something back (an alert, for a wrong key) rather than closing.
struct by_hand {
  std::unique_ptr<tls::session> session;
  bool answered = false;
};

by_hand tls_by_hand(int fd, std::string_view key) {
  by_hand out{std::make_unique<tls::session>(tls::session::role::client, key)};
  std::string to_send;
  char in[4096];
  std::size_t got = 0;
  for (;;) {
    auto step = out.session->handshake(in, got, to_send);
    ::send(fd, to_send.data(), to_send.size(), MSG_NOSIGNAL);
    to_send.clear();
    if (step == tls::session::progress::done)
      return out;
    if (step == tls::session::progress::failed)
      break;
    auto r = ::recv(fd, in, sizeof in, 0);
    if (r <= 0)
      break;
    out.answered = true;
    got = static_cast<std::size_t>(r);
  }
  out.session.reset();
  return out;
}

// Sends `frame` (a header and payload) through the session.
void send_sealed(int fd, tls::session& s, std::string_view frame) {
  std::string records;
  REQUIRE(s.seal(frame.data(), frame.size(), records));
  REQUIRE(::send(fd, records.data(), records.size(), MSG_NOSIGNAL)
          == static_cast<ssize_t>(records.size()));
}

// Stands between a client and a node's port as an observer on the network would: forwards
// both ways and records every byte. corrupt_next flips a bit in the next bytes a client sends.
class tap {
public:
  explicit tap(std::uint16_t to) : to_(to) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_fd_, 1) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
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

// A node in a child process listening with `key`, and its port.
struct other_node {
  mproc::process process;
  std::uint16_t port;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

other_node start_other_node(mproc::node& node, const mproc::authkey& key, bool plaintext) {
  auto p = node.spawn_process("listening_node", {}, std::string{key.secret()}, plaintext);
  auto port = node.request<std::int32_t>(p.actor(), 5s, caf::get_atom::value);
  REQUIRE(port > 0);
  return {std::move(p), static_cast<std::uint16_t>(port)};
}

} // namespace

MPROC_ACTOR(echo_text);
MPROC_ACTOR(listening_node);

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
  // The server does not know the client's key: the client refuses it before proving anything.
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

TEST_CASE("garbage and oversized frames close that connection only") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);

  int garbage = raw_connect(port);
  std::string junk(64, '\xff');
  ::send(garbage, junk.data(), junk.size(), 0);
  CHECK(closed_by_other_side(garbage));
  ::close(garbage);

  int huge = raw_connect(port);
  auto proven = tls_by_hand(huge, key.secret());
  REQUIRE(proven.session);
  send_sealed(huge, *proven.session, "\xff\xff\xff\xff");  // a 4 GiB frame
  CHECK(closed_by_other_side(huge));
  ::close(huge);

  int http = raw_connect(port);
  std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(http, get.data(), get.size(), 0);
  ::shutdown(http, SHUT_WR);
  CHECK(closed_by_other_side(http));
  ::close(http);

  // Still serving: a proper node connects and spawns.
  auto other = start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);
  auto worker = remote.spawn("echo_text");
  CHECK(node->request<std::string>(worker, 5s, std::string{"still"}) == "still");
}

TEST_CASE("a stranger holding handshakes open from one address does not keep out a root from another") {
  test::stderr_capture err;
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = start_other_node(*node, key, false);
  auto port = other.port;
  // The stranger keeps 100 silent connections from 127.0.0.2, opening a new one for each the
  // node closes, until the root has connected.
  std::atomic<bool> stop{false};
  std::atomic<int> opened{0};
  std::atomic<bool> bind_failed{false};
  // No Catch assertions on this thread: they are not thread-safe.
  auto connect_from_elsewhere = [&, port] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      bind_failed = true;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    return fd;
  };
  std::thread stranger{[&] {
    std::vector<int> held;
    while (!stop && !bind_failed) {
      // At most 20 new connections per round, 100 rounds a second: enough to keep the
      // node's cap full, and not so many that the kernel's accept queue drops the root's.
      for (int n = 0; n < 20 && held.size() < 100; ++n) {
        held.push_back(connect_from_elsewhere());
        ++opened;
      }
      std::erase_if(held, [](int fd) {
        char c;
        if (::recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN)
          return false;
        ::close(fd);  // closed by the node
        return true;
      });
      std::this_thread::sleep_for(10ms);  // the stranger's pace, not an ordering
    }
    for (int fd : held)
      ::close(fd);
  }};
  struct joiner {  // also when a check below throws: a joinable thread would terminate
    std::atomic<bool>& stop;
    std::thread& t;
    ~joiner() {
      stop = true;
      t.join();
    }
  } join_stranger{stop, stranger};
  REQUIRE(test::eventually(10s, [&] { return opened >= 200 || bind_failed; }));
  REQUIRE_FALSE(bind_failed);
  auto remote = node->connect("127.0.0.1:" + std::to_string(port), key, 5s);
  CHECK(remote.connected());
  other.process.terminate();
  other.process.join(10s);
  CHECK_THAT(err.text(), Catch::Contains("refused a connection from 127.0.0.2:"));
  CHECK_THAT(err.text(), Catch::Contains("too many handshakes in progress from this address"));
}

TEST_CASE("wrong keys from one address make it wait longer each time; other addresses do not wait") {
  test::stderr_capture err;
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  auto wrong = mproc::authkey::generate();
  // Wrong keys from 127.0.0.2 until a connection is closed before any answer: the address
  // waits 100 ms after the first wrong key, doubling, so a few tries in a row meet the wait.
  bool made_to_wait = false;
  for (int attempt = 0; attempt < 20 && !made_to_wait; ++attempt) {
    int fd = raw_connect(port, "127.0.0.2");
    auto tried = tls_by_hand(fd, wrong.secret());
    CHECK_FALSE(tried.session);
    made_to_wait = !tried.answered;
    ::close(fd);
  }
  CHECK(made_to_wait);
  // A root from another address (127.0.0.1) proves the key at once.
  int fd = raw_connect(port);
  CHECK(tls_by_hand(fd, key.secret()).session);
  ::close(fd);
  CHECK_THAT(err.text(), Catch::Contains("from 127.0.0.2:"));
  CHECK_THAT(err.text(), Catch::Contains("wrong authkey"));
  CHECK_THAT(err.text(), Catch::Contains("wrong key(s) from this address"));
}

TEST_CASE("a connection that says nothing is closed long before the handshake's deadline") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  int fd = raw_connect(port, "127.0.0.3");
  auto start = std::chrono::steady_clock::now();
  CHECK(closed_by_other_side(fd));
  // The silent deadline is 1 s, the handshake's 5 s: whole seconds apart.
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  ::close(fd);
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
  CHECK(closed_by_other_side(fd));
  ::close(fd);
}
