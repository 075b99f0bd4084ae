// Condition across processes: wait and notify, wait_for a predicate, timeouts, misuse.
#include "mproc/actors/condition.hpp"

#include <signal.h>

#include <thread>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/shared_value.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

// Consumes `n` items: waits until `count` is positive, takes one, and notifies the producer.
void consume(caf::blocking_actor*, mproc::condition c, mproc::shared_value<std::int64_t> count,
             std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) {
    auto held = c.hold();
    if (!c.wait_for([&] { return count.raw() > 0; }, 30s))
      throw std::runtime_error("no item within 30 s");
    --count.raw();
    c.notify_all();
  }
}

// Waits on the condition for ever (a waiter to kill).
void wait_for_ever(caf::blocking_actor*, mproc::condition c, mproc::shared_value<std::int32_t> ready) {
  auto held = c.hold();
  ready.raw() = 1;
  c.notify_all();
  c.wait_for([] { return false; });
}

} // namespace

MPROC_ACTOR(consume);
MPROC_ACTOR(wait_for_ever);

namespace {

// A child that waits on `c` and is killed with SIGKILL while it waits: its slot stays, the
// oldest, as a dead waiter's. With `notified`, a notify chose it before it died (it could
// not take the lock back: this process held it).
void leave_a_dead_waiter(mproc::node& node, const mproc::condition& c, bool notified = false) {
  mproc::shared_value<std::int32_t> ready{0, false};
  auto p = node.spawn_process("wait_for_ever", {}, c, ready);
  auto held = c.hold();
  REQUIRE(c.wait_for([&] { return ready.raw() == 1; }, 10s));
  if (notified)
    c.notify();
  REQUIRE(::kill(p.pid(), SIGKILL) == 0);
  REQUIRE(p.join(10s));
}

} // namespace

TEST_CASE("wait and notify need the lock held") {
  mproc::condition c;
  CHECK(code_of([&] { c.wait(10ms); }) == errc::bad_arguments);
  CHECK(code_of([&] { c.notify(); }) == errc::bad_arguments);
  auto held = c.hold();
  CHECK_FALSE(c.wait(20ms));  // the timeout path, the lock held again after it
  c.notify();                 // nobody waits: nothing happens
}

TEST_CASE("a condition on a plain lock works as on an rlock") {
  mproc::lock l;
  mproc::condition c{l};
  auto held = c.hold();
  CHECK(l.locked());
  CHECK_FALSE(c.wait(20ms));
  CHECK(l.locked());
}

TEST_CASE("a condition on a plain lock another thread holds refuses wait and notify") {
  mproc::lock l;
  mproc::condition c{l};
  bool acquired = false;
  std::thread{[&] { acquired = static_cast<bool>(l.acquire()); }}.join();  // ended holding it
  REQUIRE(acquired);
  CHECK(code_of([&] { c.wait(10ms); }) == errc::bad_arguments);  // it would let go of it
  CHECK(code_of([&] { c.notify(); }) == errc::bad_arguments);
  CHECK(l.locked());
  l.release();  // any thread of the process may release a plain lock, as in Python
  CHECK_FALSE(l.locked());
}

TEST_CASE("an rlock held twice is released fully while waiting and restored after") {
  mproc::rlock l;
  mproc::condition c{l};
  auto a = c.hold();
  auto b = c.hold();
  std::atomic<bool> other_got{false};
  std::thread other{[&] {
    auto held = c.hold(10s);
    other_got = true;
    c.notify();
  }};
  CHECK(c.wait_for([&] { return other_got.load(); }, 10s));
  other.join();
  b.release();
  CHECK(l.locked());  // one level still held
}

TEST_CASE("a producer and three consumer processes hand over items through a condition") {
  test::scoped_node node;
  mproc::condition c;
  mproc::shared_value<std::int64_t> count{0, false};
  std::vector<mproc::process> ps;
  for (int i = 0; i < 3; ++i)
    ps.push_back(node->spawn_process("consume", {}, c, count, std::int32_t{100}));
  for (int i = 0; i < 300; ++i) {
    auto held = c.hold();
    REQUIRE(c.wait_for([&] { return count.raw() < 5; }, 30s));  // bounded, as a queue
    ++count.raw();
    c.notify_all();
  }
  for (auto& p : ps) {
    REQUIRE(p.join(60s));
    CHECK(p.exitcode() == 0);
  }
  CHECK(count.get() == 0);
}

TEST_CASE("a waiter killed with SIGKILL does not keep notify from the others") {
  test::scoped_node node;
  mproc::condition c;
  leave_a_dead_waiter(*node, c, true);
  // The notify went to the dead waiter: a live waiter takes it over, without a new notify.
  auto held = c.hold(1s);  // the dead waiter did not keep the lock
  CHECK(c.wait(10s));
}

TEST_CASE("a waiter arriving after a notify cannot take it from the waiter it was for") {
  mproc::condition c;
  std::atomic<bool> entered{false};
  bool first_woken = false;
  bool late_woken = true;
  std::thread first{[&] {
    auto held = c.hold();
    entered = true;
    first_woken = c.wait(10s);
  }};
  REQUIRE(test::eventually(10s, [&] { return entered.load(); }));
  std::thread late;
  {
    auto held = c.hold(10s);
    c.notify();
    late = std::thread{[&] {  // queued on the lock with the woken waiter
      auto h = c.hold();
      late_woken = c.wait(200ms);
    }};
  }
  first.join();
  late.join();
  CHECK(first_woken);
  CHECK_FALSE(late_woken);
}

TEST_CASE("two notifies after a dead waiter wake the two live waiters, one each") {
  test::scoped_node node;
  mproc::condition c;
  leave_a_dead_waiter(*node, c);
  std::atomic<int> entered{0};
  std::atomic<int> woken{0};
  auto wait_once = [&] {
    auto held = c.hold();
    ++entered;
    if (c.wait(10s))
      ++woken;
  };
  std::thread w1{wait_once};
  REQUIRE(test::eventually(10s, [&] { return entered == 1; }));
  { auto held = c.hold(10s); }  // w1 waits now (it let the lock go)
  std::thread w2{wait_once};
  REQUIRE(test::eventually(10s, [&] { return entered == 2; }));
  for (int i = 0; i < 2; ++i) {
    auto held = c.hold(10s);
    c.notify();
  }
  w1.join();
  w2.join();
  CHECK(woken == 2);
}

TEST_CASE("a moved-from condition throws") {
  mproc::condition c;
  auto other = std::move(c);
  CHECK(code_of([&] { c.notify(); }) == errc::bad_arguments);
  CHECK(code_of([&] { c.acquire(); }) == errc::bad_arguments);
}
