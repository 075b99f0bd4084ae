// Nodes over TCP on loopback: the handshake, remote spawn and requests, and what a node does
// with strangers (wrong keys, garbage, oversized frames) — it refuses them and keeps serving.
// A process hosts one node, so the other nodes here are child processes that listen or
// connect themselves, standing in for other machines.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <csignal>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/internal/handshake.hpp"
#include "mproc/runtime/internal/supervisor_protocol.hpp"
#include "mproc/runtime/supervisor.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
namespace hs = mproc::detail::handshake;

namespace {

caf::behavior echo_pid(caf::event_based_actor*) {
  return {[](std::int32_t x) { return std::vector<std::int32_t>{x, ::getpid()}; }};
}

// Actors of the listening node's process that count themselves while they live; a named one
// registers itself, as an actor meant to outlive the root that spawned it.
std::atomic<std::int32_t> counted_alive{0};

caf::behavior counted(caf::event_based_actor* self, bool named) {
  ++counted_alive;
  self->attach_functor([] { --counted_alive; });
  if (named)
    mproc::this_node().register_name("kept-" + std::to_string(self->id()),
                                     caf::actor_cast<caf::actor>(self));
  return {[](std::int32_t x) { return x; }};
}

caf::behavior count_alive(caf::event_based_actor*) {
  return {[](caf::get_atom) -> std::int32_t { return counted_alive.load(); }};
}

// A node standing in for another machine: listens with `key`, answers its port, serves.
caf::behavior listening_node(caf::event_based_actor* self, std::string key) {
  return {[=](caf::get_atom) -> std::int32_t {
    try {
      return mproc::this_node().listen(mproc::authkey::from_string(key));
    } catch (const mproc::error&) {
      self->quit();
      return -1;
    }
  }};
}

std::string temp_file(const std::string& content, mode_t mode) {
  char path[] = "/tmp/mproc-authkey-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::fchmod(fd, mode);
  ::close(fd);
  return path;
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

// Authenticates by hand with `key`; the socket is then ready for frames.
int authenticated_raw(std::uint16_t port, std::string_view key) {
  int fd = raw_connect(port);
  auto mine = hs::fresh_nonce();
  auto hello = hs::make_hello(mine);
  REQUIRE(::send(fd, hello.data(), hello.size(), 0) == static_cast<ssize_t>(hello.size()));
  std::array<std::uint8_t, hs::challenge_size> challenge{};
  REQUIRE(::recv(fd, challenge.data(), challenge.size(), MSG_WAITALL)
          == static_cast<ssize_t>(challenge.size()));
  hs::nonce theirs{};
  hs::mac proof_of_key{};
  REQUIRE(hs::read_challenge(challenge, theirs, proof_of_key));
  auto proof = hs::client_mac(key, theirs, mine);
  REQUIRE(::send(fd, proof.data(), proof.size(), 0) == static_cast<ssize_t>(proof.size()));
  std::uint8_t verdict = 0;
  REQUIRE(::recv(fd, &verdict, 1, MSG_WAITALL) == 1);
  REQUIRE(verdict == hs::accepted);
  return fd;
}

} // namespace

MPROC_ACTOR(echo_pid);
MPROC_ACTOR(listening_node);
MPROC_ACTOR(counted);
MPROC_ACTOR(count_alive);

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

TEST_CASE("an authkey comes from a private file or the environment, long and varied enough") {
  auto good = temp_file("0123456789abcdef-secret\n", 0600);
  CHECK(mproc::authkey::from_file(good).secret() == "0123456789abcdef-secret");
  auto shared = temp_file("0123456789abcdef-secret\n", 0644);
  CHECK(code_of([&] { mproc::authkey::from_file(shared); }) == errc::bad_arguments);
  auto short_key = temp_file("short\n", 0600);
  CHECK(code_of([&] { mproc::authkey::from_file(short_key); }) == errc::bad_arguments);
  CHECK(code_of([&] { mproc::authkey::from_file("/nonexistent/key"); }) == errc::bad_arguments);
  for (const auto& f : {good, shared, short_key})
    std::remove(f.c_str());

  ::setenv("MPROC_TEST_AUTHKEY", "from the environment!", 1);
  CHECK(mproc::authkey::from_env("MPROC_TEST_AUTHKEY").secret() == "from the environment!");
  ::unsetenv("MPROC_TEST_AUTHKEY");
  CHECK(code_of([] { mproc::authkey::from_env("MPROC_TEST_AUTHKEY"); }) == errc::bad_arguments);
  CHECK(mproc::authkey::generate().secret().size() == 32);
  // Long but uniform keys are the first an attacker tries.
  CHECK(code_of([] { mproc::authkey::from_string("aaaaaaaaaaaaaaaaaaaaaaaa"); }) == errc::bad_arguments);
  CHECK(code_of([] { mproc::authkey::from_string("abcdabcdabcdabcdabcd"); }) == errc::bad_arguments);
  CHECK(mproc::authkey::from_string("abcdefghabcdefgh").secret() == "abcdefghabcdefgh");
}

TEST_CASE("a node spawns an actor on another node over TCP and talks to it") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  REQUIRE(port > 0);

  auto remote = node->connect("127.0.0.1:" + std::to_string(port), key);
  CHECK(remote.connected());
  CHECK(remote.pid() == other.pid());
  CHECK(remote.id() != node->id());
  auto worker = remote.spawn("echo_pid");
  auto reply = node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{7});
  CHECK(reply == std::vector<std::int32_t>{7, other.pid()});
  CHECK(code_of([&] { remote.spawn("no_such_actor"); }) == errc::unknown_actor_name);

  caf::scoped_actor watcher{node->system()};
  watcher->monitor(worker);
  other.kill();  // the other machine dies: monitors fire, its actors' proxies fail
  other.join(5s);
  bool down = false;
  watcher->receive([&](caf::down_msg& d) { down = d.source == worker.address(); },
                   caf::after(std::chrono::seconds{5}) >> [] {});
  CHECK(down);
  CHECK(test::eventually(5s, [&] { return !remote.connected(); }));
  CHECK(code_of([&] { node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{1}); })
        != errc::none);
}

TEST_CASE("a wrong authkey is refused in both directions and the node keeps serving") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  auto address = "127.0.0.1:" + std::to_string(port);
  auto wrong = mproc::authkey::generate();
  // The server does not know the client's key: the client refuses it before proving anything.
  CHECK(code_of([&] { node->connect(address, wrong); }) == errc::auth_failed);

  // A client with the wrong key that goes on anyway is cut off by the server.
  int fd = raw_connect(port);
  auto mine = hs::fresh_nonce();
  auto hello = hs::make_hello(mine);
  ::send(fd, hello.data(), hello.size(), 0);
  std::array<std::uint8_t, hs::challenge_size> challenge{};
  REQUIRE(::recv(fd, challenge.data(), challenge.size(), MSG_WAITALL) == hs::challenge_size);
  hs::nonce theirs{};
  hs::mac ignored{};
  REQUIRE(hs::read_challenge(challenge, theirs, ignored));
  auto forged = hs::client_mac(wrong.secret(), theirs, mine);
  ::send(fd, forged.data(), forged.size(), 0);
  CHECK(closed_by_other_side(fd));
  ::close(fd);

  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto other_port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  auto remote = node->connect("127.0.0.1:" + std::to_string(other_port), key);
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

  int huge = authenticated_raw(port, key.secret());
  std::uint8_t header[4] = {0xff, 0xff, 0xff, 0xff};  // a 4 GiB frame
  ::send(huge, header, sizeof header, 0);
  CHECK(closed_by_other_side(huge));
  ::close(huge);

  int http = raw_connect(port);
  std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(http, get.data(), get.size(), 0);
  ::shutdown(http, SHUT_WR);
  CHECK(closed_by_other_side(http));
  ::close(http);

  // Still serving: a proper node connects and spawns.
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto other_port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  auto remote = node->connect("127.0.0.1:" + std::to_string(other_port), key);
  auto worker = remote.spawn("echo_pid");
  CHECK(node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{3})[0] == 3);
}

TEST_CASE("connecting to nothing, or to a silent port, fails within the timeout") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(silent, 4) == 0);
  socklen_t len = sizeof a;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&a), &len);
  auto address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  auto t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { node->connect(address, key, 300ms); }) == errc::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  ::close(silent);
  CHECK(code_of([&] { node->connect(address, key, 1s); }) == errc::unreachable);
  CHECK(code_of([&] { node->connect("not an address", key); }) == errc::bad_arguments);
}

TEST_CASE("a stopped node is declared down within the heartbeat bound; its actors fail") {
  test::scoped_node node;  // defaults: heartbeat every 500 ms, down after 2 s of silence
  auto key = mproc::authkey::generate();
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  auto remote = node->connect("127.0.0.1:" + std::to_string(port), key);
  auto worker = remote.spawn("echo_pid");
  std::this_thread::sleep_for(1500ms);  // heartbeats keep an idle connection up
  REQUIRE(remote.connected());

  std::atomic<bool> down{false};
  std::string reason;
  std::mutex m;
  remote.on_down([&](const std::string& why) {
    std::lock_guard guard{m};
    reason = why;
    down = true;
  });
  auto stopped = std::chrono::steady_clock::now();
  REQUIRE(::kill(other.pid(), SIGSTOP) == 0);
  REQUIRE(test::eventually(5s, [&] { return test::all_threads_stopped(other.pid()); }));
  // A request in flight fails when the node is declared down, not at its own 30 s timeout.
  CHECK(code_of([&] { node->request<std::vector<std::int32_t>>(worker, 30s, std::int32_t{1}); })
        == errc::link_lost);
  REQUIRE(test::eventually(10s, [&] { return down.load(); }));
  auto took = std::chrono::steady_clock::now() - stopped;
  CHECK(took < 3500ms);  // timeout 2 s + one interval + slack on a loaded machine
  {
    std::lock_guard guard{m};
    CHECK_THAT(reason, Catch::Contains("no sign of life"));
  }
  other.kill();
}

TEST_CASE("a node starts a process on another node; it dies with that node, no orphan") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  auto remote = node->connect("127.0.0.1:" + std::to_string(port), key);

  auto worker = remote.spawn_process("echo_pid", "remote-worker");
  auto reply = node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{5});
  REQUIRE(reply.size() == 2);
  auto worker_pid = reply[1];
  CHECK(worker_pid != other.pid());
  CHECK(worker_pid != ::getpid());
  CHECK(test::running(worker_pid));
  CHECK(code_of([&] { remote.spawn_process("no_such_actor", "x"); })
        == errc::unknown_actor_name);

  other.kill();
  other.join(5s);
  CHECK(test::eventually(5s, [&] { return !test::running(worker_pid); }));
}

namespace {

// A supervisor to be started on another node: its worker is a process on that machine.
caf::behavior remote_supervisor(caf::event_based_actor* self) {
  return mproc::supervise(self, {.strategy = mproc::strategy::one_for_one, .intensity = 5},
                          {{.id = "w", .actor = "echo_pid"}});
}

} // namespace

MPROC_ACTOR(remote_supervisor);

TEST_CASE("a supervisor started on another node restarts its worker there") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  auto remote = node->connect("127.0.0.1:" + std::to_string(port), key);

  auto sup = remote.spawn("remote_supervisor");
  node->request(sup, 10s, mproc::detail::sup_ready_atom::value);  // its children started
  auto worker = node->request<caf::actor>(sup, 10s, mproc::detail::sup_child_atom::value,
                                          std::string{"w"});
  auto first = node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{1})[1];
  CHECK(first != other.pid());
  REQUIRE(::kill(first, SIGKILL) == 0);
  std::int32_t second = 0;
  CHECK(test::eventually(10s, [&] {
    try {
      second = node->request<std::vector<std::int32_t>>(worker, 1s, std::int32_t{1})[1];
    } catch (const mproc::error&) {
      return false;
    }
    return second != first;
  }));
  CHECK(test::running(second));
  other.kill();
  other.join(5s);
  CHECK(test::eventually(5s, [&] { return !test::running(second); }));
}

TEST_CASE("a snapshot shows a connected node: its address, pid, and when it was last heard") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  auto remote = node->connect("127.0.0.1:" + std::to_string(port), key);
  auto is = [](const mproc::value& map, const char* key, const mproc::value& x) {
    const auto* v = map.find(key);
    return v && *v == x;
  };
  auto snap = mproc::inspect_node(::getpid());
  const auto& remotes = snap.find("remotes")->as<mproc::value::array_t>();
  REQUIRE(remotes.size() == 1);
  const auto& r = remotes.front();
  CHECK(is(r, "pid", other.pid()));
  CHECK(is(r, "address", "127.0.0.1:" + std::to_string(port)));
  CHECK(r.find("last_heard")->as<double>() < 60);
  CHECK(r.find("link")->find("frames_in")->as<std::int64_t>() > 0);
  // The other side sees this node among its own remotes, in its child's place of the tree.
  bool seen_from_there = false;
  for (const auto& c : snap.find("children")->as<mproc::value::array_t>())
    if (is(c, "pid", other.pid()))
      for (const auto& back : c.find("node")->find("remotes")->as<mproc::value::array_t>())
        seen_from_there = seen_from_there || is(back, "pid", ::getpid());
  CHECK(seen_from_there);
}

TEST_CASE("a stranger holding handshakes open from one address does not keep out a root from another") {
  test::stderr_capture err;
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto port = static_cast<std::uint16_t>(
    node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value));
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
  other.terminate();
  other.join(10s);
  CHECK_THAT(err.text(), Catch::Contains("refused a connection from 127.0.0.2:"));
  CHECK_THAT(err.text(), Catch::Contains("too many handshakes in progress from this address"));
}

TEST_CASE("wrong keys from one address make it wait longer each time; other addresses do not wait") {
  test::stderr_capture err;
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  auto wrong = mproc::authkey::generate();
  // Wrong keys from 127.0.0.2 until a connection is refused before its challenge: the
  // address waits 100 ms after the first, doubling, so a few tries in a row meet the wait.
  bool made_to_wait = false;
  for (int attempt = 0; attempt < 20 && !made_to_wait; ++attempt) {
    int fd = raw_connect(port, "127.0.0.2");
    auto mine = hs::fresh_nonce();
    auto hello = hs::make_hello(mine);
    ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
    std::array<std::uint8_t, hs::challenge_size> challenge{};
    if (::recv(fd, challenge.data(), challenge.size(), MSG_WAITALL) != hs::challenge_size) {
      made_to_wait = true;
    } else {
      hs::nonce theirs{};
      hs::mac ignored{};
      REQUIRE(hs::read_challenge(challenge, theirs, ignored));
      auto forged = hs::client_mac(wrong.secret(), theirs, mine);
      ::send(fd, forged.data(), forged.size(), MSG_NOSIGNAL);
      CHECK(closed_by_other_side(fd));
    }
    ::close(fd);
  }
  CHECK(made_to_wait);
  // A root from another address (127.0.0.1) proves the key at once.
  int fd = authenticated_raw(port, key.secret());
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

TEST_CASE("what a root spawned on a node ends when that root disconnects, unless it took a name") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = node->spawn_process("listening_node", {}, std::string{key.secret()});
  auto port = node->request<std::int32_t>(other.actor(), 5s, caf::get_atom::value);
  auto address = "127.0.0.1:" + std::to_string(port);
  auto first = node->connect(address, key);
  first.spawn("counted", false);
  first.spawn("counted", false);
  first.spawn("counted", true);
  auto worker = first.spawn_process("echo_pid", "worker");
  auto worker_pid = node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{1}).at(1);
  CHECK(test::running(worker_pid));

  auto second = node->connect(address, key);
  auto counter = second.spawn("count_alive");
  auto alive = [&] { return node->request<std::int32_t>(counter, 5s, caf::get_atom::value); };
  // Each counts itself once it has started (CAF starts an actor at its first scheduling).
  CHECK(test::eventually(10s, [&] { return alive() == 3; }));
  first.disconnect();
  CHECK(test::eventually(10s, [&] { return alive() == 1; }));  // the named one stays
  CHECK(test::eventually(10s, [&] { return !test::running(worker_pid); }));
  second.disconnect();
  other.terminate();
  CHECK(other.join(10s));
}
