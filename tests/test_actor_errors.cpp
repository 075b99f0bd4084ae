// Errors a user can act on: an actor's uncaught exception says what it was and where, in
// the process's stderr and in the exit reason; a message an actor cannot handle is answered
// with the actor's name and the message's types.
#include <stdexcept>
#include <string>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/process.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;

namespace {

struct disk_full : std::logic_error {
  using std::logic_error::logic_error;
};

// Throws what its request names: 1 a std::runtime_error, 2 an int; answers anything else.
caf::behavior thrower(caf::event_based_actor*) {
  return {[](std::int32_t what) -> std::int32_t {
    if (what == 1)
      throw std::runtime_error("boom");
    if (what == 2)
      throw 42;
    return what;
  }};
}

// A blocking actor whose function throws a type of the program's own.
void blocking_thrower(caf::blocking_actor* self) {
  self->receive([](std::int32_t) { throw disk_full("no space left for the results"); });
}

// Sends `what` to `a` and returns the reason of its end, as a monitor sees it.
caf::error reason_after(caf::scoped_actor& self, const caf::actor& a, std::int32_t what) {
  self->monitor(a);
  self->send(a, what);
  caf::error reason;
  self->receive([&](caf::down_msg& down) { reason = down.reason; },
                caf::after(10s) >> [] { FAIL("no down message"); });
  return reason;
}

} // namespace

MPROC_ACTOR(thrower);
MPROC_ACTOR(blocking_thrower);

TEST_CASE("an exception escaping a child's actor is printed with the process, type and text") {
  test::stderr_capture err;
  test::scoped_node node{};
  auto p = node->spawn_process("thrower", {.name = "worker-7"});
  CHECK(node->request<std::int32_t>(p.actor(), 10s, std::int32_t{5}) == 5);
  CHECK_THROWS_AS(node->request<std::int32_t>(p.actor(), 10s, std::int32_t{1}), mproc::error);
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 1);  // as Python's child whose target raised
  CHECK_THAT(err.text(), Catch::Contains("Process worker-7 (pid " + std::to_string(p.pid())
                                         + "): std::runtime_error: boom\n"));
}

TEST_CASE("a blocking actor's exception of the program's own type is printed by its name") {
  test::stderr_capture err;
  test::scoped_node node{};
  auto p = node->spawn_process("blocking_thrower", {.name = "saver"});
  caf::anon_send(p.actor(), std::int32_t{0});
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 1);
  CHECK_THAT(err.text(), Catch::Contains("Process saver (pid " + std::to_string(p.pid())
                                         + "): (anonymous namespace)::disk_full: no space left "
                                           "for the results\n"));
}

TEST_CASE("a monitor of an actor that threw gets actor_failed with the type and text") {
  test::stderr_capture err;
  test::scoped_node node{};
  caf::scoped_actor self{node->system()};
  SECTION("a std::exception") {
    auto reason = reason_after(self, node->spawn("thrower"), 1);
    CHECK(mproc::code_of(reason) == errc::actor_failed);
    CHECK(node->system().render(reason).find("std::runtime_error: boom") != std::string::npos);
  }
  SECTION("anything else thrown") {
    auto reason = reason_after(self, node->spawn("thrower"), 2);
    CHECK(mproc::code_of(reason) == errc::actor_failed);
    CHECK_THAT(err.text(), Catch::Contains("): int: (not a std::exception)\n"));
  }
}

TEST_CASE("a monitor of a child's actor that threw gets actor_failed, not only the exit code") {
  test::stderr_capture err;
  test::scoped_node node{};
  auto p = node->spawn_process("thrower", {});
  caf::scoped_actor self{node->system()};
  auto reason = reason_after(self, p.actor(), 1);
  CHECK(mproc::code_of(reason) == errc::actor_failed);
  CHECK(node->system().render(reason).find("std::runtime_error: boom") != std::string::npos);
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 1);
}

TEST_CASE("a message an actor has no handler for is answered with its name and the types") {
  test::scoped_node node{};
  auto p = node->spawn_process("thrower", {});
  auto failure = test::error_of([&] {
    node->request<std::int32_t>(p.actor(), 10s, std::string{"seven"});
  });
  CHECK(failure.code() == errc::unexpected_message);
  CHECK_THAT(failure.what(), Catch::Contains("actor 'thrower'"));
  CHECK_THAT(failure.what(), Catch::Contains("pid " + std::to_string(p.pid())));
  CHECK_THAT(failure.what(), Catch::Contains("(str)"));
  // The actor keeps going: the message was refused, not fatal.
  CHECK(node->request<std::int32_t>(p.actor(), 10s, std::int32_t{3}) == 3);
  p.terminate();
  CHECK(p.join(10s));
}
