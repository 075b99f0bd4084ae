// A process handle as Python's: printed as repr() prints it, a sentinel that becomes readable
// when the process ends, close(), and mproc::wait() over processes and connections.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "mproc/actors/pipe.hpp"
#include "mproc/actors/wait.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/task.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

// Answers one message with the same text, then returns (its process ends).
void echo_once(mproc::connection c) {
  c.send(c.recv_as<std::string>());
}
MPROC_TASK(echo_once);

// Waits for a message that never comes, until killed.
void wait_forever(mproc::connection c) {
  c.recv_as<std::string>();
}
MPROC_TASK(wait_forever);

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

} // namespace

TEST_CASE("a process prints as Python's repr in every state") {
  test::scoped_node node{};
  auto [a, b] = mproc::pipe(*node);
  mproc::process p{*node, echo_once, {.name = "echo"}, b};
  auto parent = " parent=" + std::to_string(::getpid());
  CHECK(p.repr() == "<Process name='echo'" + parent + " initial>");
  p.start();
  auto pid = " pid=" + std::to_string(p.pid());
  CHECK(p.repr() == "<Process name='echo'" + pid + parent + " started>");
  a.send(std::string{"x"});
  REQUIRE(mproc::wait({a}, 10s).size() == 1);
  CHECK(a.recv_as<std::string>() == "x");
  REQUIRE(p.join(10s));
  std::ostringstream printed;
  printed << p;
  CHECK(printed.str() == "<Process name='echo'" + pid + parent + " stopped exitcode=0>");

  auto [e, f] = mproc::pipe(*node);
  auto d = node->spawn_process(wait_forever, {.name = "d", .daemon = true}, f);
  d.terminate();
  REQUIRE(d.join(10s));
  CHECK(d.repr() == "<Process name='d' pid=" + std::to_string(d.pid()) + parent
                      + " stopped exitcode=-SIGTERM daemon>");
}

TEST_CASE("a sentinel becomes readable when its process ends, and close releases it") {
  test::scoped_node node{};
  auto [a, b] = mproc::pipe(*node);
  mproc::process p{*node, wait_forever, {}, b};
  CHECK_THROWS_AS(p.sentinel(), std::logic_error);  // not running yet
  p.start();
  int s = p.sentinel();
  CHECK(p.sentinel() == s);  // one per process
  CHECK_FALSE(readable(s));
  CHECK_THROWS_AS(p.close(), std::logic_error);  // running
  p.kill();
  REQUIRE(p.join(10s));
  CHECK(readable(s));
  p.close();
  CHECK(p.repr().find(" closed") != std::string::npos);
  CHECK_THROWS_AS(p.sentinel(), std::logic_error);
}

TEST_CASE("a closed process cannot start, and one never started cannot be joined, as in Python") {
  test::scoped_node node{};
  auto [a, b] = mproc::pipe(*node);
  mproc::process p{*node, echo_once, {.name = "never"}, b};
  CHECK_THROWS_WITH(p.join(), Catch::Contains("before start()"));
  CHECK_THROWS_WITH(p.join(1s), Catch::Contains("before start()"));
  p.close();
  CHECK_THROWS_WITH(p.start(), Catch::Contains("is closed"));
  CHECK_THROWS_WITH(p.start([](caf::error) {}), Catch::Contains("is closed"));
  CHECK_FALSE(p.is_alive());  // it never ran
}

TEST_CASE("wait returns the connections with a message and the processes that ended") {
  test::scoped_node node{};
  auto [a, b] = mproc::pipe(*node);
  auto [c, d] = mproc::pipe(*node);
  auto echo = node->spawn_process(echo_once, {}, b);
  auto waiter = node->spawn_process(wait_forever, {}, d);
  CHECK(mproc::wait({a, c, echo, waiter}, 50ms).empty());  // nothing sent, nobody ended

  a.send(std::string{"ping"});
  auto ready = mproc::wait({c, a}, 10s);  // the echo's answer, on the second
  REQUIRE(ready == std::vector<std::size_t>{1});
  CHECK(a.recv_as<std::string>() == "ping");
  CHECK(mproc::wait({waiter, echo}, 10s) == std::vector<std::size_t>{1});  // echo returned

  waiter.kill();
  CHECK(mproc::wait({waiter}) == std::vector<std::size_t>{0});
  CHECK(waiter.join(10s));
  CHECK(echo.join(10s));
}

TEST_CASE("wait with a timeout too long to add to the clock waits rather than returning at once") {
  test::scoped_node node{};
  auto [a, b] = mproc::pipe(*node);
  std::atomic<bool> returned{false};
  std::vector<std::size_t> ready;
  std::thread waiter{[&, a = a] {
    ready = mproc::wait({a}, std::chrono::milliseconds::max());
    returned = true;
  }};
  CHECK_FALSE(test::eventually(1s, [&] { return returned.load(); }));  // it waits
  b.send(std::string{"now"});
  waiter.join();
  CHECK(ready == std::vector<std::size_t>{0});
}

TEST_CASE("a process kept past its node is not started through it: node_shutdown") {
  std::optional<mproc::process> waiting, called_back;
  std::optional<std::pair<mproc::connection, mproc::connection>> ends;
  {
    test::scoped_node node;
    ends = mproc::pipe(*node);
    waiting.emplace(*node, echo_once, mproc::process_options{}, ends->second);
    called_back.emplace(*node, echo_once, mproc::process_options{}, ends->second);
  }
  // A later node, most likely where the first one was: the handles are not its.
  test::scoped_node later;
  CHECK(test::code_of([&] { waiting->start(); }) == mproc::errc::node_shutdown);
  caf::error told;
  called_back->start([&](caf::error e) { told = std::move(e); });
  CHECK(mproc::code_of(told) == mproc::errc::node_shutdown);
}
