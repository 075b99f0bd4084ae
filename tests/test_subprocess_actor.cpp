// A program as an actor: its lines arrive as messages in order, its end as a down message
// with its exit code; an exit message asks it to stop (SIGTERM); a supervisor restarts it
// when it is killed from outside.
#include "actors/subprocess_actor.hpp"

#include <signal.h>

#include <string>
#include <vector>

#include <caf/all.hpp>

#include <catch2/catch.hpp>

#include "runtime/node.hpp"
#include "runtime/supervisor.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace sp = mproc::subprocess;
using mproc::errc;
using test::code_of;

namespace {

struct seen {
  std::vector<std::string> out;
  std::vector<std::string> err;
  std::optional<caf::error> down;
};

// Collects what `cmd` sends to `self` until its down message (or 10 s of silence).
seen collect(caf::scoped_actor& self, const caf::actor& cmd) {
  seen s;
  bool done = false;
  self->receive_while([&] { return !done; })(
    [&](sp::stdout_atom, std::string& line) { s.out.push_back(std::move(line)); },
    [&](sp::stderr_atom, std::string& line) { s.err.push_back(std::move(line)); },
    [&](caf::down_msg& d) {
      if (d.source == cmd.address()) {
        s.down = d.reason;
        done = true;
      }
    },
    caf::after(std::chrono::seconds{10}) >> [&] { done = true; });
  return s;
}

// The next stdout line sent to `self`, or "" after 10 s.
std::string next_line(caf::scoped_actor& self) {
  std::string got;
  self->receive([&](sp::stdout_atom, std::string& line) { got = std::move(line); },
                caf::after(std::chrono::seconds{10}) >> [] {});
  return got;
}

} // namespace

TEST_CASE("a program's lines arrive in order, then its end with the exit code") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(*node, {"sh", "-c", "echo one; echo two >&2; printf 'three\\nfour'; exit 3"},
                             self);
  self->monitor(cmd);
  auto s = collect(self, cmd);
  CHECK(s.out == std::vector<std::string>{"one", "three", "four"});
  CHECK(s.err == std::vector<std::string>{"two"});
  REQUIRE(s.down);
  CHECK(mproc::exit_code_of(*s.down) == 3);
}

TEST_CASE("a program that exits 0 ends its actor normally") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(*node, {"true"}, self);
  self->monitor(cmd);
  auto s = collect(self, cmd);
  REQUIRE(s.down);
  CHECK_FALSE(*s.down);
}

TEST_CASE("a program that cannot start fails in the caller, naming it") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  CHECK(code_of([&] { sp::spawn_actor(*node, {"/no/such/program"}, self); }) == errc::spawn_failed);
}

TEST_CASE("a line longer than max_line_bytes arrives in pieces of that size") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(*node, {"sh", "-c", "head -c 2500000 /dev/zero | tr '\\0' x"}, self);
  self->monitor(cmd);
  auto s = collect(self, cmd);
  REQUIRE(s.out.size() == 3);
  CHECK(s.out[0].size() == sp::max_line_bytes);
  CHECK(s.out[1].size() == sp::max_line_bytes);
  CHECK(s.out[2].size() == 2500000 - 2 * sp::max_line_bytes);
}

TEST_CASE("an exit message asks the program to stop with SIGTERM; the actor ends after it") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(
    *node, {"sh", "-c", "trap 'echo stopping; exit 0' TERM; echo ready; while :; do sleep 0.05; done"},
    self);
  self->monitor(cmd);
  REQUIRE(next_line(self) == "ready");
  self->send_exit(cmd, caf::exit_reason::user_shutdown);
  auto s = collect(self, cmd);
  CHECK(s.out == std::vector<std::string>{"stopping"});
  REQUIRE(s.down);
  CHECK(*s.down == caf::exit_reason::user_shutdown);
}

TEST_CASE("a supervisor restarts a program killed from outside, and stops it at its end") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  pid_t last = 0;
  {
    mproc::supervisor sup{*node, {.intensity = 3, .period = 10s},
                          {sp::supervised("daemon", {"sh", "-c", "echo $$; exec sleep 100"}, self)}};
    auto first = std::stoi(next_line(self));
    REQUIRE(first > 0);
    REQUIRE(::kill(first, SIGKILL) == 0);
    auto second = std::stoi(next_line(self));
    CHECK(second != first);
    CHECK(sup.tree().children.at(0).restarts == 1);
    last = second;
    CHECK(test::running(last));
  }
  CHECK(test::eventually(10s, [&] { return !test::running(last); }));
  CHECK(test::zombie_children() == 0);
}
