// Strangers at a node's port: garbage, oversized frames, silence, a full cap, wrong keys.
// The node refuses each, makes wrong keys wait, and keeps serving the roots that hold the key
// (docs/distributed.md, "Strangers at the port").
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "mproc/runtime/node.hpp"
#include "support.hpp"
#include "tcp_peers.hpp"

using namespace std::chrono_literals;
using test::closed_by_other_side;
using test::raw_connect;
using test::start_other_node;
using test::tls_by_hand;

TEST_CASE("garbage and oversized frames close that connection only") {
  // Heartbeats would close a connection after 2 s of silence: with 60 s, a close within
  // the 5 s a read waits can only be the node refusing what it got.
  mproc::node_options options;
  options.heartbeat_timeout = 60s;
  test::scoped_node node{options};
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);

  int garbage = raw_connect(port);
  std::string junk(64, '\xff');
  ::send(garbage, junk.data(), junk.size(), 0);
  CHECK(closed_by_other_side(garbage));
  ::close(garbage);

  // A 4 GiB frame's header, sent with the handshake's last bytes: the node finds it among
  // them, before any read of its own.
  int huge = raw_connect(port);
  REQUIRE(tls_by_hand(huge, key.secret(), "\xff\xff\xff\xff").session);
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
