#include "tcp_peers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <string>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/handshake.hpp"

using namespace std::chrono_literals;
namespace tls = mproc::detail::tls;
namespace hs = mproc::detail::handshake;

namespace {

caf::behavior echo_text(caf::event_based_actor*) {
  return {[](const std::string& s) { return s; }};
}

caf::behavior listening_node(caf::event_based_actor* self, std::string key, bool plaintext) {
  return {[=](caf::get_atom) -> std::int32_t {
    try {
      return mproc::this_node().listen(mproc::authkey::from_string(key), "127.0.0.1:0",
                                       plaintext ? mproc::node::link_security::plaintext
                                                 : mproc::node::link_security::tls);
    } catch (const mproc::error&) {
      self->quit();
      return -1;
    }
  }};
}

} // namespace

MPROC_ACTOR(echo_text);
MPROC_ACTOR(listening_node);

namespace test {

other_node start_other_node(mproc::node& node, const mproc::authkey& key, bool plaintext) {
  auto p = node.spawn_process("listening_node", {}, std::string{key.secret()}, plaintext);
  auto port = node.request<std::int32_t>(p.actor(), 5s, caf::get_atom::value);
  REQUIRE(port > 0);
  return {std::move(p), static_cast<std::uint16_t>(port)};
}

int loopback_listener(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

int raw_connect(std::uint16_t port, const char* from) {
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

bool closed_by_other_side(int fd) {
  // Within 5 s in all: a node sends heartbeats, so each read alone would not time out.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  char buf[256];
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = ::recv(fd, buf, sizeof buf, 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET))
      return true;
    if (r < 0)
      return false;  // timed out: still open
  }
  return false;
}

by_hand tls_by_hand(int fd, std::string_view key, std::string_view then) {
  by_hand out{std::make_unique<tls::session>(tls::session::role::client, key)};
  std::string to_send;
  char in[4096];
  std::size_t got = 0;
  for (;;) {
    auto step = out.session->handshake(in, got, to_send);
    if (step == tls::session::progress::done && !then.empty())
      REQUIRE(out.session->seal(then.data(), then.size(), to_send));
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

void send_sealed(int fd, tls::session& s, std::string_view bytes) {
  std::string records;
  REQUIRE(s.seal(bytes.data(), bytes.size(), records));
  REQUIRE(::send(fd, records.data(), records.size(), MSG_NOSIGNAL)
          == static_cast<ssize_t>(records.size()));
}

bool closed_without_a_byte(int fd) {
  char c;
  auto r = ::recv(fd, &c, 1, 0);
  return r == 0 || (r < 0 && errno == ECONNRESET);
}

int plaintext_by_hand(std::uint16_t port, std::string_view key) {
  int fd = raw_connect(port);
  auto mine = hs::fresh_nonce();
  auto hello = hs::make_hello(mine);
  REQUIRE(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) == hs::hello_size);
  std::array<std::uint8_t, hs::challenge_size> challenge{};
  REQUIRE(::recv(fd, challenge.data(), challenge.size(), MSG_WAITALL) == hs::challenge_size);
  hs::nonce theirs{};
  REQUIRE(hs::read_challenge(challenge, theirs));
  auto proof = hs::client_mac(key, theirs, mine);
  REQUIRE(::send(fd, proof.data(), proof.size(), MSG_NOSIGNAL) == hs::proof_size);
  std::array<std::uint8_t, hs::verdict_size> verdict{};
  REQUIRE(::recv(fd, verdict.data(), verdict.size(), MSG_WAITALL) == hs::verdict_size);
  REQUIRE(hs::same(hs::server_mac(key, mine, theirs), verdict));
  return fd;
}

int introduced_by_hand(std::uint16_t port, std::string_view key, std::uint64_t node) {
  int fd = plaintext_by_hand(port, key);
  send_envelope(fd, [&](auto& pk) {
    pk.pack_array(6);
    pk.pack(0), pk.pack(1), pk.pack(node), pk.pack(::getpid());
    pk.pack(std::string{"by hand"}), pk.pack(std::uint32_t{1} << 20);
  });
  return fd;
}

void send_envelope(int fd, const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& pack) {
  msgpack::sbuffer body;
  msgpack::packer<msgpack::sbuffer> pk{body};
  pack(pk);
  auto n = static_cast<std::uint32_t>(body.size());
  const char prefix[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                          static_cast<char>(n >> 8), static_cast<char>(n)};
  std::string frame{prefix, sizeof prefix};
  frame.append(body.data(), body.size());
  REQUIRE(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL)
          == static_cast<ssize_t>(frame.size()));
}

msgpack::object_handle read_envelope(int fd) {
  unsigned char prefix[4];
  REQUIRE(::recv(fd, prefix, sizeof prefix, MSG_WAITALL) == sizeof prefix);
  std::size_t n = (std::size_t{prefix[0]} << 24) | (std::size_t{prefix[1]} << 16)
                  | (std::size_t{prefix[2]} << 8) | prefix[3];
  std::string body(n, '\0');
  REQUIRE(::recv(fd, body.data(), n, MSG_WAITALL) == static_cast<ssize_t>(n));
  return msgpack::unpack(body.data(), body.size());
}

} // namespace test
