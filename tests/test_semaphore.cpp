// Semaphore and BoundedSemaphore across processes: counting, the counter pattern, misuse,
// and tokens given back when their holder is killed with SIGKILL.
#include "mproc/actors/semaphore.hpp"

#include <signal.h>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/event.hpp"
#include "mproc/actors/shared_array.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

// Takes `n` tokens, says so, and keeps them until `go` is set (or for ever).
void take_tokens(caf::blocking_actor*, mproc::semaphore s, std::int32_t n, mproc::event held,
                 mproc::event go) {
  for (std::int32_t i = 0; i < n; ++i)
    s.acquire();
  held.set();
  go.wait();
}

// Takes `n` tokens and ends without giving them back: the consumer side of the counter
// pattern, which took `n` items for good.
void take_and_end(caf::blocking_actor*, mproc::semaphore s, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i)
    s.acquire();
}

// Takes one token, gives it back.
void take_and_give(caf::blocking_actor*, mproc::semaphore s) {
  auto held = s.hold();
}

// Releases `n` times: the producer side of the counter pattern.
void give_tokens(caf::blocking_actor*, mproc::semaphore s, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i)
    s.release();
}

// Inside a 2-token section `rounds` times, recording the most processes seen inside at once.
void enter_section(caf::blocking_actor*, mproc::semaphore s,
                   mproc::shared_array<std::int32_t> inside_and_most, std::int32_t rounds) {
  for (std::int32_t i = 0; i < rounds; ++i) {
    auto held = s.hold();
    auto lock = inside_and_most.get_lock().hold();
    auto now = ++inside_and_most.raw()[0];
    inside_and_most.raw()[1] = std::max(inside_and_most.raw()[1], now);
    lock.release();
    std::this_thread::yield();
    auto again = inside_and_most.get_lock().hold();
    --inside_and_most.raw()[0];
  }
}

} // namespace

MPROC_ACTOR(take_tokens);
MPROC_ACTOR(take_and_end);
MPROC_ACTOR(take_and_give);
MPROC_ACTOR(give_tokens);
MPROC_ACTOR(enter_section);

TEST_CASE("a semaphore counts its tokens; a try and a timeout fail when none is left") {
  mproc::semaphore s{2};
  CHECK(s.value() == 2);
  CHECK(s.acquire());
  CHECK(s.acquire(false));
  CHECK(s.value() == 0);
  CHECK_FALSE(s.acquire(false));
  CHECK_FALSE(s.acquire(true, 30ms));
  s.release();
  CHECK(s.value() == 1);
  s.release();
  s.release();  // an unbounded semaphore grows, as Python's
  CHECK(s.value() == 3);
  CHECK(code_of([] { mproc::semaphore bad{-1}; }) == errc::bad_arguments);
}

TEST_CASE("a bounded semaphore refuses a release above its initial value") {
  mproc::bounded_semaphore s{1};
  CHECK(code_of([&] { s.release(); }) == errc::bad_arguments);
  {
    auto held = s.hold();
    CHECK(s.value() == 0);
  }
  CHECK(s.value() == 1);
}

TEST_CASE("tokens released by one process are acquired by another (the counter pattern)") {
  test::scoped_node node;
  mproc::semaphore items{0};
  auto p = node->spawn_process("give_tokens", {}, items, std::int32_t{50});
  for (int i = 0; i < 50; ++i)
    REQUIRE(items.acquire(true, 10s));
  REQUIRE(p.join(10s));
  CHECK(items.value() == 0);
  CHECK_FALSE(items.acquire(false));
}

TEST_CASE("no more processes than tokens are ever inside") {
  test::scoped_node node;
  mproc::semaphore s{2};
  mproc::shared_array<std::int32_t> inside_and_most{2};
  std::vector<mproc::process> ps;
  for (int i = 0; i < 4; ++i)
    ps.push_back(node->spawn_process("enter_section", {}, s, inside_and_most, std::int32_t{500}));
  for (auto& p : ps) {
    REQUIRE(p.join(60s));
    CHECK(p.exitcode() == 0);
  }
  CHECK(inside_and_most.get(1) <= 2);
  CHECK(inside_and_most.get(1) >= 1);
  CHECK(s.value() == 2);
}

TEST_CASE("tokens held by a child killed with SIGKILL come back, and the acquirer is told") {
  test::scoped_node node;
  mproc::semaphore s{3};
  mproc::event held, go;
  auto p = node->spawn_process("take_tokens", {}, s, std::int32_t{3}, held, go);
  REQUIRE(held.wait(10s));
  CHECK(s.value() == 0);
  REQUIRE(::kill(p.pid(), SIGKILL) == 0);
  auto got = s.acquire(true, 10s);
  CHECK(got);
  CHECK(got.owner_died);
  CHECK(s.value() == 2);
  REQUIRE(p.join(10s));
}

TEST_CASE("a release from a process holding none makes the child's token an item taken: its death gives nothing back") {
  test::scoped_node node;
  mproc::semaphore s{1};
  mproc::event held, go;
  auto p = node->spawn_process("take_tokens", {}, s, std::int32_t{1}, held, go);
  REQUIRE(held.wait(10s));
  s.release();  // this process holds none: the counter pattern, the child's token is used up
  CHECK(s.value() == 1);
  p.kill();
  REQUIRE(p.join(10s));
  CHECK(s.acquire(false));
  CHECK_FALSE(s.acquire(true, 100ms));  // nothing extra came back
}

TEST_CASE("a killed holder's token still comes back when a release turns to the counter pattern") {
  test::scoped_node node;
  mproc::semaphore s{2};
  mproc::event held, go;
  auto p = node->spawn_process("take_tokens", {}, s, std::int32_t{1}, held, go);
  REQUIRE(held.wait(10s));
  p.kill();
  REQUIRE(p.join(10s));  // nobody acquired since: its token is not reclaimed yet
  s.release();           // from a process holding none: one more token
  CHECK(s.value() == 3);
}

TEST_CASE("a bounded semaphore stays within its bound when a release follows a killed holder") {
  // The killed holder's token came back in the release, which then added its own: two
  // processes could be inside a section bounded to one.
  test::scoped_node node;
  mproc::bounded_semaphore s{1};
  mproc::event held, go;
  auto p = node->spawn_process("take_tokens", {}, mproc::semaphore{s}, std::int32_t{1}, held, go);
  REQUIRE(held.wait(10s));
  p.kill();
  REQUIRE(p.join(10s));
  s.release();  // for the dead holder, as a Python program would
  CHECK(s.value() == 1);
  CHECK(s.acquire(false));
  CHECK_FALSE(s.acquire(false));
}

TEST_CASE("a consumer killed after taking items gives none back (the counter pattern)") {
  test::scoped_node node;
  mproc::semaphore items{0};
  for (int i = 0; i < 5; ++i)
    items.release();  // five items announced by this process, which holds no token
  mproc::event held, go;
  auto p = node->spawn_process("take_tokens", {}, items, std::int32_t{5}, held, go);
  REQUIRE(held.wait(10s));  // it took the five items
  REQUIRE(::kill(p.pid(), SIGKILL) == 0);
  REQUIRE(p.join(10s));
  CHECK(items.value() == 0);
  CHECK_FALSE(items.acquire(true, 300ms));  // past a death check: no item comes back
}

TEST_CASE("more consumers than holder slots take items (the counter pattern)") {
  test::scoped_node node;
  mproc::semaphore items{0};
  mproc::event go;
  std::vector<mproc::process> consumers;
  constexpr auto n = mproc::semaphore::max_holders + 10;
  for (std::uint32_t i = 0; i < n; ++i)
    items.release();
  for (std::uint32_t i = 0; i < n; i += 10) {  // each holds on to what it took until `go`
    std::vector<mproc::event> took(10);
    for (auto& t : took)
      consumers.push_back(node->spawn_process("take_tokens", {}, items, std::int32_t{1}, t, go));
    for (auto& t : took)
      REQUIRE(t.wait(30s));
  }
  go.set();
  for (auto& c : consumers) {
    REQUIRE(c.join(30s));
    CHECK(c.exitcode() == 0);
  }
  CHECK(items.value() == 0);
}

TEST_CASE("tokens a process holds when it ends in order are used up, as in Python") {
  test::scoped_node node;
  mproc::semaphore items{0};
  for (int i = 0; i < 3; ++i)
    items.release();  // three items announced
  auto p = node->spawn_process("take_and_end", {}, items, std::int32_t{3});
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  CHECK(items.value() == 0);
  CHECK_FALSE(items.acquire(true, 300ms));  // past a death check: nothing comes back
}

TEST_CASE("more processes than holder slots use one semaphore over time") {
  test::scoped_node node;
  mproc::semaphore s{2};
  for (std::uint32_t done = 0; done < mproc::semaphore::max_holders + 20;) {
    std::vector<mproc::process> batch;
    for (int i = 0; i < 10; ++i, ++done)
      batch.push_back(node->spawn_process("take_and_give", {}, s));
    for (auto& p : batch) {
      REQUIRE(p.join(30s));
      REQUIRE(p.exitcode() == 0);
    }
  }
  CHECK(s.value() == 2);
}

TEST_CASE("a moved-from semaphore handle throws rather than touching freed memory") {
  test::scoped_node node;
  mproc::semaphore s{1};
  auto p = node->spawn_process("take_and_give", {}, std::move(s));
  REQUIRE(p.join(10s));
  CHECK(code_of([&] { s.acquire(); }) == errc::bad_arguments);
  CHECK(code_of([&] { s.release(); }) == errc::bad_arguments);
}

TEST_CASE("a process taking tokens that others give back keeps no descriptor for them") {
  test::scoped_node node;
  auto round = [&] {
    mproc::semaphore items{0};
    auto p = node->spawn_process("give_tokens", {}, items, std::int32_t{1});
    REQUIRE(items.acquire(true, 10s));
    REQUIRE(p.join(10s));
    items.release();  // this process gives its token back itself
    REQUIRE(items.acquire(true, 10s));
    auto q = node->spawn_process("give_tokens", {}, items, std::int32_t{1});
    REQUIRE(q.join(10s));  // here another process gives it back for this one
  };
  round();
  auto fds = test::entries("/proc/self/fd");
  for (int i = 0; i < 20; ++i)
    round();
  CHECK(test::entries("/proc/self/fd") <= fds + 1);  // the last round's entry at most
}

TEST_CASE("an acquire that finds a dead holder's tokens takes one, not two") {
  test::scoped_node node;
  mproc::semaphore s{2};
  mproc::event held, go;
  auto p = node->spawn_process("take_tokens", {}, s, std::int32_t{1}, held, go);
  REQUIRE(held.wait(10s));
  p.kill();
  REQUIRE(p.join(10s));
  auto first = s.acquire(false);  // the free token
  CHECK(first);
  CHECK_FALSE(first.owner_died);
  auto second = s.acquire(false);  // none free: a try gives the dead holder's back, once
  CHECK(second);
  CHECK(second.owner_died);
  s.release();
  s.release();
  CHECK(s.value() == 2);
}
