// Nodes over TCP on loopback: remote spawn and requests, heartbeats, what a root leaves behind
// when it goes (test_link_security.cpp: keys, encryption and strangers). A process hosts one
// node, so the other nodes here are child processes that listen or connect themselves,
// standing in for other machines.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <atomic>
#include <csignal>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/internal/supervisor_protocol.hpp"
#include "mproc/runtime/supervisor.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"
#include "tcp_peers.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

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

std::string temp_file(const std::string& content, mode_t mode) {
  char path[] = "/tmp/mproc-authkey-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::fchmod(fd, mode);
  ::close(fd);
  return path;
}

} // namespace

MPROC_ACTOR(echo_pid);
MPROC_ACTOR(counted);
MPROC_ACTOR(count_alive);

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

TEST_CASE("node mode that cannot listen exits 1 after ending its node: no introspection socket left") {
  test::scoped_node node;
  auto busy = node->listen(mproc::authkey::generate());  // the port node mode will ask for
  auto key = temp_file("0123456789abcdef-secret\n", 0600);
  char dir[] = "/tmp/mproc-run-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  auto command = std::string{"XDG_RUNTIME_DIR="} + dir + " timeout 30 /proc/"
                 + std::to_string(::getpid()) + "/exe --mproc-node --name busy --listen 127.0.0.1:"
                 + std::to_string(busy) + " --authkey-file " + key + " 2>/dev/null";
  int status = std::system(command.c_str());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  auto sockets = std::string{dir} + "/mproc";
  CHECK(test::entries(sockets.c_str()) <= 2);  // at most . and ..: the socket went with the node
  std::filesystem::remove_all(dir);
  std::remove(key.c_str());
}

TEST_CASE("a handle to another node used after this node ended fails at once with link_lost") {
  std::optional<mproc::remote_node> remote;
  {
    test::scoped_node node;
    auto key = mproc::authkey::generate();
    auto other = test::start_other_node(*node, key, false);
    remote.emplace(node->connect(other.address(), key));
    REQUIRE(remote->connected());
  }  // the node ends: its connections close, its loop stops
  CHECK_FALSE(remote->connected());
  CHECK(code_of([&] { remote->spawn("echo_pid"); }) == errc::link_lost);
  CHECK(code_of([&] { remote->lookup("anything"); }) == errc::link_lost);
  remote->disconnect();  // nothing left to do
}

TEST_CASE("a node spawns an actor on another node over TCP and talks to it") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, false);

  auto remote = node->connect(other.address(), key);
  CHECK(remote.connected());
  CHECK(remote.pid() == other.process.pid());
  CHECK(remote.id() != node->id());
  auto worker = remote.spawn("echo_pid");
  auto reply = node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{7});
  CHECK(reply == std::vector<std::int32_t>{7, other.process.pid()});
  CHECK(code_of([&] { remote.spawn("no_such_actor"); }) == errc::unknown_actor_name);

  caf::scoped_actor watcher{node->system()};
  watcher->monitor(worker);
  other.process.kill();  // the other machine dies: monitors fire, its actors' proxies fail
  other.process.join(5s);
  bool down = false;
  watcher->receive([&](caf::down_msg& d) { down = d.source == worker.address(); },
                   caf::after(std::chrono::seconds{5}) >> [] {});
  CHECK(down);
  CHECK(test::eventually(5s, [&] { return !remote.connected(); }));
  CHECK(code_of([&] { node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{1}); })
        != errc::none);
}

TEST_CASE("connecting to nothing, or to a silent port, fails within the timeout") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  std::uint16_t port = 0;
  int silent = test::loopback_listener(port);
  auto address = "127.0.0.1:" + std::to_string(port);

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
  auto other = test::start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);
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
  REQUIRE(::kill(other.process.pid(), SIGSTOP) == 0);
  REQUIRE(test::eventually(5s, [&] { return test::all_threads_stopped(other.process.pid()); }));
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
  other.process.kill();
}

TEST_CASE("a node starts a process on another node; it dies with that node, no orphan") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);

  auto worker = remote.spawn_process("echo_pid", "remote-worker");
  auto reply = node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{5});
  REQUIRE(reply.size() == 2);
  auto worker_pid = reply[1];
  CHECK(worker_pid != other.process.pid());
  CHECK(worker_pid != ::getpid());
  CHECK(test::running(worker_pid));
  CHECK(code_of([&] { remote.spawn_process("no_such_actor", "x"); })
        == errc::unknown_actor_name);

  other.process.kill();
  other.process.join(5s);
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
  auto other = test::start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);

  auto sup = remote.spawn("remote_supervisor");
  node->request(sup, 10s, mproc::detail::sup_ready_atom::value);  // its children started
  auto worker = node->request<caf::actor>(sup, 10s, mproc::detail::sup_child_atom::value,
                                          std::string{"w"});
  auto first = node->request<std::vector<std::int32_t>>(worker, 5s, std::int32_t{1})[1];
  CHECK(first != other.process.pid());
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
  other.process.kill();
  other.process.join(5s);
  CHECK(test::eventually(5s, [&] { return !test::running(second); }));
}

TEST_CASE("a snapshot shows a connected node: its address, pid, and when it was last heard") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);
  auto is = [](const mproc::value& map, const char* key, const mproc::value& x) {
    const auto* v = map.find(key);
    return v && *v == x;
  };
  auto snap = mproc::inspect_node(::getpid());
  const auto& remotes = snap.find("remotes")->as<mproc::value::array_t>();
  REQUIRE(remotes.size() == 1);
  const auto& r = remotes.front();
  CHECK(is(r, "pid", other.process.pid()));
  CHECK(is(r, "address", other.address()));
  CHECK(is(r, "encryption", std::string{"TLSv1.3 TLS_AES_128_GCM_SHA256"}));
  CHECK(r.find("last_heard")->as<double>() < 60);
  CHECK(r.find("link")->find("frames_in")->as<std::int64_t>() > 0);
  // The other side sees this node among its own remotes, in its child's place of the tree:
  // once its side of the handshake is done too, which may come just after connect() returns.
  auto seen_from_there = [&] {
    auto now = mproc::inspect_node(::getpid());
    for (const auto& c : now.find("children")->as<mproc::value::array_t>())
      if (is(c, "pid", other.process.pid()))
        for (const auto& back : c.find("node")->find("remotes")->as<mproc::value::array_t>())
          if (is(back, "pid", ::getpid()))
            return true;
    return false;
  };
  CHECK(test::eventually(5s, seen_from_there));
}

TEST_CASE("what a root spawned on a node ends when that root disconnects, unless it took a name") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, false);
  auto address = other.address();
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
  other.process.terminate();
  CHECK(other.process.join(10s));
}

TEST_CASE("an on_down callback may connect to another node: the reconnect pattern") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto first = test::start_other_node(*node, key, false);
  auto second = test::start_other_node(*node, key, false);
  auto remote = node->connect(first.address(), key);
  std::mutex m;
  std::optional<mproc::errc> reconnect;  // how the callback's connect ended
  std::optional<mproc::remote_node> again;
  remote.on_down([&](const std::string&) {
    auto code = code_of([&] {
      auto r = node->connect(second.address(), key, 10s);
      std::lock_guard guard{m};
      again.emplace(std::move(r));
    });
    std::lock_guard guard{m};
    reconnect = code;
  });
  first.process.kill();
  REQUIRE(test::eventually(30s, [&] {
    std::lock_guard guard{m};
    return reconnect.has_value();
  }));
  std::lock_guard guard{m};
  CHECK(*reconnect == errc::none);
  REQUIRE(again);
  CHECK(again->connected());
  auto looked = code_of([&] { again->lookup("no such name", 5s); });  // a round trip
  CHECK(looked != errc::none);
  CHECK(looked != errc::timeout);
  second.process.kill();
  first.process.join(10s);
  second.process.join(10s);
}

TEST_CASE("spawn's main flag from a peer over TCP is ignored: the node does not end with it") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  // A child process that listens: from its parent, `main` would make an actor its reason to
  // live; over TCP the flag means nothing (docs/protocol.md, spawn).
  auto other = test::start_other_node(*node, key, true);
  int fd = test::introduced_by_hand(other.port, key.secret(), 0x5eed);
  test::send_envelope(fd, [](auto& pk) {
    pk.pack_array(5);
    pk.pack(1), pk.pack(7), pk.pack(std::string{"no such actor"}), pk.pack(true);
    pk.pack_array(0);
  });
  for (;;) {  // the node's hello and heartbeats come first
    auto envelope = test::read_envelope(fd);
    auto fields = envelope->as<std::vector<msgpack::object>>();
    if (fields.at(0).as<int>() != 2)
      continue;
    CHECK(fields.at(1).as<int>() == 7);
    CHECK_FALSE(fields.at(2).as<bool>());  // spawned, refused: unknown_actor_name
    break;
  }
  // Before, the node ended (code 1) right after answering.
  CHECK_FALSE(other.process.join(2s));
  ::close(fd);
  other.process.terminate();
  CHECK(other.process.join(10s));
}

TEST_CASE("a peer that monitors an actor twice gets one down when it ends") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, true);
  const std::uint64_t me = 0x5eed;
  int fd = test::introduced_by_hand(other.port, key.secret(), me);
  // mproc_inspect answers one request, then ends.
  test::send_envelope(fd, [](auto& pk) {
    pk.pack_array(5);
    pk.pack(1), pk.pack(1), pk.pack(std::string{"mproc_inspect"}), pk.pack(false);
    pk.pack_array(2), pk.pack(std::string{"i64"}), pk.pack(std::int64_t{100});
  });
  auto next_of_kind = [&](int kind) {
    for (;;) {
      auto envelope = test::read_envelope(fd);
      auto fields = envelope->as<std::vector<msgpack::object>>();
      if (fields.at(0).as<int>() == kind)
        return std::make_pair(std::move(envelope), fields);
    }
  };
  auto [spawned_handle, spawned] = next_of_kind(2);
  REQUIRE(spawned.at(2).as<bool>());
  auto ref = spawned.at(3).as<std::vector<std::uint64_t>>();
  for (int i = 0; i < 2; ++i)
    test::send_envelope(fd, [&](auto& pk) {
      pk.pack_array(3), pk.pack(6), pk.pack(ref.at(0)), pk.pack(ref.at(1));
    });
  test::send_envelope(fd, [&](auto& pk) {
    pk.pack_array(7), pk.pack(4), pk.pack(ref.at(0)), pk.pack(ref.at(1)), pk.pack(me);
    pk.pack(std::uint64_t{1}), pk.pack(std::uint64_t{9});
    pk.pack_array(2), pk.pack(std::string{"i64"}), pk.pack(std::int64_t{0});
  });
  next_of_kind(7);  // its end, reported after its answer
  // A lookup's answer comes after everything the actor's end sent.
  test::send_envelope(fd, [](auto& pk) {
    pk.pack_array(3), pk.pack(10), pk.pack(11), pk.pack(std::string{"no such name"});
  });
  int downs_after = 0;
  for (;;) {
    auto envelope = test::read_envelope(fd);
    auto kind = envelope->as<std::vector<msgpack::object>>().at(0).as<int>();
    if (kind == 11)
      break;
    downs_after += kind == 7 ? 1 : 0;
  }
  CHECK(downs_after == 0);
  ::close(fd);
  other.process.terminate();
  CHECK(other.process.join(10s));
}
