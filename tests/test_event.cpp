// Event across processes: set, clear, wait with and without a timeout.
#include "actors/event.hpp"

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "runtime/actor_registry.hpp"
#include "runtime/node.hpp"
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

TEST_CASE("many waiters in this process are all woken by one set") {
  mproc::event e;
  std::atomic<int> woken{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      if (e.wait(30s))
        ++woken;
    });
  e.set();
  for (auto& t : ts)
    t.join();
  CHECK(woken == 8);
}
