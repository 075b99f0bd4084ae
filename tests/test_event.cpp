// Event across processes: set, clear, wait with and without a timeout.
#include "mproc/actors/event.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

// Waits for `start`, then sets `done`.
void relay(caf::blocking_actor*, mproc::event start, mproc::event done) {
  if (start.wait(30s))
    done.set();
}

} // namespace

MPROC_ACTOR(relay);

TEST_CASE("an event is clear, set, and clear again") {
  mproc::event e;
  CHECK_FALSE(e.is_set());
  CHECK_FALSE(e.wait(20ms));
  e.set();
  CHECK(e.is_set());
  CHECK(e.wait());
  CHECK(e.wait(0ms));
  e.clear();
  CHECK_FALSE(e.is_set());
}

TEST_CASE("an event set in one process wakes a waiter in another") {
  test::scoped_node node;
  mproc::event start, done;
  auto p = node->spawn_process("relay", {}, start, done);
  CHECK_FALSE(done.wait(50ms));
  start.set();
  CHECK(done.wait(10s));
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
}

namespace {

// Starts `n` threads that each record whether wait(30s) returned true, and returns once all
// of them sleep in it.
std::vector<std::thread> waiters(const mproc::event& e, int n, std::atomic<int>& woken,
                                 std::atomic<int>& returned) {
  std::vector<std::thread> ts;
  std::vector<std::atomic<pid_t>> tids(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    ts.emplace_back([&e, &woken, &returned, &tid = tids[static_cast<std::size_t>(i)]] {
      tid = ::gettid();
      if (e.wait(30s))
        ++woken;
      ++returned;
    });
  for (auto& tid : tids)
    REQUIRE(test::eventually(10s, [&] { return tid != 0 && test::sleeping_in(tid, SYS_futex); }));
  return ts;
}

} // namespace

TEST_CASE("many sleeping waiters in this process are all woken by one set") {
  mproc::event e;
  std::atomic<int> woken{0}, returned{0};
  auto ts = waiters(e, 8, woken, returned);
  e.set();
  for (auto& t : ts)
    t.join();
  CHECK(woken == 8);
}

// Each wait returns the flag as it finds it when it runs: true if it ran before the clear.
TEST_CASE("a set undone at once by clear still ends every wait") {
  mproc::event e;
  std::atomic<int> woken{0}, returned{0};
  auto ts = waiters(e, 4, woken, returned);
  e.set();
  e.clear();
  auto t0 = std::chrono::steady_clock::now();
  for (auto& t : ts)
    t.join();
  CHECK(returned == 4);
  CHECK(std::chrono::steady_clock::now() - t0 < 20s);  // not the waits' 30 s timeouts
}

TEST_CASE("a moved-from event handle throws") {
  mproc::event e;
  auto other = std::move(e);
  CHECK(test::code_of([&] { e.set(); }) == mproc::errc::bad_arguments);
  other.set();
  CHECK(other.is_set());
}

TEST_CASE("a wait of seconds::max() or hours::max() waits for the set, as one of no timeout does") {
  // The timeout converted to milliseconds implicitly and overflowed into a negative wait:
  // a try, false at once.
  CHECK(mproc::wait_timeout{std::chrono::seconds::max()}.get() == mproc::forever_beyond);
  CHECK(mproc::wait_timeout{std::chrono::hours::max()}.get() == mproc::forever_beyond);
  CHECK(mproc::wait_timeout{-5s}.get() == 0ms);
  test::scoped_node node;
  mproc::event e;
  std::atomic<int> result{-1};
  std::thread waiter{[&] { result = e.wait(std::chrono::seconds::max()) ? 1 : 0; }};
  CHECK_FALSE(test::eventually(500ms, [&] { return result != -1; }));  // still waiting
  e.set();
  waiter.join();
  CHECK(result == 1);
}
