// Barrier across processes: parties pass together; abort, reset, a timeout and a party
// killed with SIGKILL break it for the others.
#include "mproc/actors/barrier.hpp"

#include <signal.h>

#include <set>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/shared_array.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

// Passes the barrier `rounds` times; records each index it got in `seen` (a bit per index).
void pass(caf::blocking_actor*, mproc::barrier b, std::int32_t rounds,
          mproc::shared_array<std::int32_t> seen) {
  for (std::int32_t i = 0; i < rounds; ++i) {
    auto index = b.wait(30s);
    auto held = seen.get_lock().hold();
    seen.raw()[static_cast<std::size_t>(i)] |= 1 << index;
  }
}

// Waits at the barrier; exits with 2 when it breaks.
void wait_at(caf::blocking_actor*, mproc::barrier b) {
  try {
    b.wait(30s);
  } catch (const mproc::error& e) {
    if (e.code() == errc::broken_barrier)
      std::exit(2);
    throw;
  }
}

} // namespace

MPROC_ACTOR(pass);
MPROC_ACTOR(wait_at);

TEST_CASE("a barrier of one passes at once; bad party counts are refused") {
  mproc::barrier b{1};
  CHECK(b.wait() == 0);
  CHECK(b.parties() == 1);
  CHECK(code_of([] { mproc::barrier bad{0}; }) == errc::bad_arguments);
  CHECK(code_of([] { mproc::barrier bad{mproc::barrier::max_parties + 1}; }) == errc::bad_arguments);
}

TEST_CASE("three processes and this one pass a barrier together, round after round") {
  test::scoped_node node;
  mproc::barrier b{4};
  mproc::shared_array<std::int32_t> seen{20};
  std::vector<mproc::process> ps;
  for (int i = 0; i < 3; ++i)
    ps.push_back(node->spawn_process("pass", {}, b, std::int32_t{20}, seen));
  for (int i = 0; i < 20; ++i) {
    auto index = b.wait(30s);
    auto held = seen.get_lock().hold();
    seen.raw()[static_cast<std::size_t>(i)] |= 1 << index;
  }
  for (auto& p : ps) {
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 0);
  }
  for (auto bits : seen.to_vector())
    CHECK(bits == 0b1111);  // each round, each index once
  CHECK_FALSE(b.broken());
}

TEST_CASE("a wait that times out breaks the barrier for everyone until reset") {
  mproc::barrier b{2};
  CHECK(code_of([&] { b.wait(30ms); }) == errc::broken_barrier);
  CHECK(b.broken());
  CHECK(code_of([&] { b.wait(30ms); }) == errc::broken_barrier);
  b.reset();
  CHECK_FALSE(b.broken());
  std::thread other{[&] { b.wait(10s); }};
  CHECK(b.wait(10s) <= 1);
  other.join();
}

TEST_CASE("abort and reset break the parties that wait") {
  test::scoped_node node;
  for (bool by_abort : {true, false}) {
    mproc::barrier b{3};
    auto p = node->spawn_process("wait_at", {}, b);
    REQUIRE(test::eventually(10s, [&] { return b.n_waiting() == 1; }));
    if (by_abort)
      b.abort();
    else
      b.reset();
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 2);
    CHECK(b.broken() == by_abort);
  }
}

TEST_CASE("a party killed with SIGKILL while it waits breaks the barrier for the others") {
  test::scoped_node node;
  mproc::barrier b{3};
  auto victim = node->spawn_process("wait_at", {}, b);
  auto other = node->spawn_process("wait_at", {}, b);
  REQUIRE(test::eventually(10s, [&] { return b.n_waiting() == 2; }));
  REQUIRE(::kill(victim.pid(), SIGKILL) == 0);
  REQUIRE(other.join(10s));
  CHECK(other.exitcode() == 2);
  CHECK(b.broken());
  REQUIRE(victim.join(10s));
}
