// Connecting to a node: by name, every address the name has is tried within the connect's
// timeout, and resolving the name is part of that timeout (the name's addresses and its
// nameserver are this test's own: a thread of a mount namespace of its own, where files of
// the test lie over /etc/hosts and /etc/resolv.conf; skipped, saying why, where mount
// namespaces cannot be made); a connect still under way ends when its node does.
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/node.hpp"
#include "support.hpp"
#include "tcp_peers.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

// A file of the test, removed with it.
struct temp_file {
  std::string path;
  explicit temp_file(const std::string& text) {
    char name[] = "/tmp/mproc-names-XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    std::ofstream{path} << text;
  }
  ~temp_file() { std::remove(path.c_str()); }
};

// Runs `fn` on a thread whose mount namespace has `hosts` over /etc/hosts and `resolv`
// over /etc/resolv.conf, and names looked up in those files alone (not through a resolver
// daemon that would not see them); threads it starts, a resolver's, inherit all three.
// False, with nothing run, where the namespace cannot be made.
bool with_names(const std::string& hosts, const std::string& resolv,
                const std::function<void()>& fn) {
  temp_file h{hosts}, r{resolv}, n{"hosts: files dns\n"};
  bool made = false;
  std::exception_ptr failed;
  std::thread t{[&] {
    made = ::unshare(CLONE_NEWNS) == 0
           && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0
           && ::mount(h.path.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) == 0
           && ::mount(r.path.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) == 0
           && ::mount(n.path.c_str(), "/etc/nsswitch.conf", nullptr, MS_BIND, nullptr) == 0;
    if (!made)
      return;
    try {
      fn();
    } catch (...) {
      failed = std::current_exception();
    }
  }};
  t.join();
  if (failed)
    std::rethrow_exception(failed);
  return made;
}

// An address that takes connections and never completes another: its accept queue is full
// (one connection at backlog 0, never accepted), so new SYNs are dropped as a firewall would.
struct black_hole {
  int listener = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int filler = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = false;
  explicit black_hole(std::uint16_t port) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    a.sin6_port = htons(port);
    auto* sa = reinterpret_cast<sockaddr*>(&a);
    ok = ::bind(listener, sa, sizeof a) == 0 && ::listen(listener, 0) == 0
         && ::connect(filler, sa, sizeof a) == 0;
  }
  ~black_hole() {
    ::close(filler);
    ::close(listener);
  }
};

// A nameserver that never answers: a UDP socket on 127.0.0.1:53 that nobody reads.
struct silent_nameserver {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  bool ok = false;
  silent_nameserver() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(53);
    ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~silent_nameserver() { ::close(fd); }
};

const char* const local_resolver = "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n";

} // namespace

TEST_CASE("a name whose first address drops packets connects through its next one") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, false);
  black_hole hole{other.port};  // [::1] first: IPv6 is preferred to IPv4
  if (!hole.ok) {
    WARN("skipped: no IPv6 loopback here to play the unreachable first address");
    return;
  }
  std::int64_t reached = 0;
  auto ran = with_names("::1 twohost\n127.0.0.1 twohost\n", local_resolver, [&] {
    auto remote = node->connect("twohost:" + std::to_string(other.port), key, 8s);
    reached = remote.pid();
    remote.disconnect();
  });
  if (!ran) {
    WARN("skipped: this machine does not permit a mount namespace here (needs root)");
    return;
  }
  CHECK(reached == other.process.pid());
}

TEST_CASE("resolving a name is bounded by the connect's timeout; a failing resolver is "
          "unreachable") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  silent_nameserver silent;
  if (!silent.ok) {
    WARN("skipped: cannot bind port 53 of 127.0.0.1 (taken, or not root)");
    return;
  }
  errc unanswered = errc::none;
  auto ran = with_names("127.0.0.1 localhost\n", local_resolver, [&] {
    // The resolver would wait 30 s for the silent nameserver.
    unanswered = code_of([&] { node->connect("nowhere.invalid:7000", key, 1s); });
  });
  if (!ran) {
    WARN("skipped: this machine does not permit a mount namespace here (needs root)");
    return;
  }
  CHECK(unanswered == errc::timeout);
  ::close(silent.fd);  // now it refuses: the resolver fails at once, for now (EAI_AGAIN)
  silent.fd = -1;
  errc refused = errc::none;
  with_names("127.0.0.1 localhost\n", local_resolver, [&] {
    refused = code_of([&] { node->connect("nowhere.invalid:7000", key, 5s); });
  });
  CHECK(refused == errc::unreachable);
}

TEST_CASE("a connect waiting in its handshake ends when its node ends, not at its timeout") {
  std::uint16_t port = 0;
  int mute = test::loopback_listener(port);  // its kernel completes connections; none answered
  std::optional<test::scoped_node> node{std::in_place};
  auto key = mproc::authkey::generate();
  std::promise<errc> ended;
  auto address = "127.0.0.1:" + std::to_string(port);
  (*node)->system().spawn([&, address](caf::blocking_actor*) {
    ended.set_value(code_of([&] { mproc::this_node().connect(address, key, 60s); }));
  });
  // The connection waits in the listener's queue: the connect is in its handshake.
  pollfd pending{mute, POLLIN, 0};
  REQUIRE(::poll(&pending, 1, 10'000) == 1);
  auto start = std::chrono::steady_clock::now();
  node.reset();  // waits for the actor, which waits in connect
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  CHECK(ended.get_future().get() == errc::node_shutdown);
  ::close(mute);
}
