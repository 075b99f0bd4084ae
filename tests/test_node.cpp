// The node: in-process spawning by name, the blocking face, one node per process.
#include "mproc/runtime/node.hpp"

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;

namespace {

caf::behavior multiplier(caf::event_based_actor*, std::int32_t factor) {
  return {[=](std::int32_t x) { return x * factor; }};
}

caf::behavior nothing(caf::event_based_actor*) {
  return {[](std::int32_t) {}};
}

} // namespace

MPROC_ACTOR(multiplier);
MPROC_ACTOR(nothing);

TEST_CASE("an actor spawns by name in this process and answers blocking requests") {
  test::scoped_node node;
  auto m = node->spawn("multiplier", std::int32_t{3});
  CHECK(node->request<std::int32_t>(m, 1s, std::int32_t{14}) == 42);
  caf::anon_send_exit(m, caf::exit_reason::user_shutdown);
}

TEST_CASE("a request to an actor that replies with nothing works as request<void>") {
  test::scoped_node node;
  auto a = node->spawn("nothing");
  node->request(a, 1s, std::int32_t{1});
  CHECK_THROWS_AS(node->request<std::int32_t>(a, 1s, std::int32_t{1}), mproc::error);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("spawning an unknown name or with wrong arguments is an error naming the problem") {
  test::scoped_node node;
  auto unknown = test::error_of([&] { node->spawn("multiplyer", std::int32_t{3}); });
  CHECK(unknown.code() == errc::unknown_actor_name);
  CHECK_THAT(unknown.what(), Catch::Contains("'multiplyer'") && Catch::Contains("multiplier"));
  auto mismatch = test::error_of([&] { node->spawn("multiplier", std::int64_t{3}); });
  CHECK(mismatch.code() == errc::bad_arguments);
  CHECK_THAT(mismatch.what(), Catch::Contains("takes (i32), got (i64)"));
}

TEST_CASE("a request to an invalid handle fails instead of waiting") {
  test::scoped_node node;
  CHECK(test::code_of([&] { node->request<std::int32_t>(caf::actor{}, 10s, std::int32_t{1}); })
        == errc::no_such_actor);
}

TEST_CASE("a process hosts one node at a time, reachable as this_node()") {
  {
    test::scoped_node node;
    CHECK(&mproc::this_node() == &*node);
    CHECK_THROWS_AS(test::make_node(), std::logic_error);
  }
  CHECK_THROWS_AS(mproc::this_node(), std::logic_error);
  test::scoped_node again;
  CHECK(again->name() == "MainProcess");
}

TEST_CASE("options that cannot work are refused, naming the field") {
  CHECK_THROWS_WITH(test::make_node({.max_frame = 10}),
                    "mproc::node_options::max_frame must be at least 1048576 bytes (got 10)");
  CHECK_THROWS_WITH(test::make_node({.child_threads = 0}),
                    "mproc::node_options::child_threads must be at least 1");
  CHECK_THROWS_WITH(test::make_node({.name = ""}), Catch::Contains("name must not be empty"));
  CHECK_THROWS_WITH(test::make_node({.start_timeout = std::chrono::milliseconds{0}}),
                    Catch::Contains("start_timeout"));
  test::scoped_node fine{{.max_frame = 1u << 20}};  // a refused node leaves none behind
}

TEST_CASE("init does nothing in a process that is not a child") {
  char name[] = "prog";
  char arg[] = "--verbose";
  char* argv[] = {name, arg, nullptr};
  mproc::init(2, argv);
  SUCCEED("returned");
}
