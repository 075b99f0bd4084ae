// A program as an actor: its lines arrive as messages in order, its end as a down message
// with its exit code; an exit message asks it to stop (SIGTERM); a supervisor restarts it
// when it is killed from outside.
#include "mproc/actors/subprocess_actor.hpp"

#include <signal.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/node.hpp"
#include "mproc/runtime/supervisor.hpp"
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

// The next stdout line sent to `self` as a pid, or 0 after 10 s.
pid_t next_pid(caf::scoped_actor& self);

// The next stdout line sent to `self`, or "" after 10 s.
std::string next_line(caf::scoped_actor& self) {
  std::string got;
  self->receive([&](sp::stdout_atom, std::string& line) { got = std::move(line); },
                caf::after(std::chrono::seconds{10}) >> [] {});
  return got;
}

pid_t next_pid(caf::scoped_actor& self) {
  auto line = next_line(self);
  return line.empty() ? 0 : static_cast<pid_t>(std::stol(line));
}

// A program that prints its pid and sleeps a minute, as an actor that tells `self` its
// lines and, with `watch`, its end; the actor and the program's pid (0 if it never said).
std::pair<caf::actor, pid_t> sleeper(mproc::node& node, caf::scoped_actor& self,
                                     bool watch = true) {
  auto cmd = sp::spawn_actor(node, {"sh", "-c", "echo $$; exec sleep 60"}, self);
  if (watch)
    self->monitor(cmd);
  return {cmd, next_pid(self)};
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
    auto first = next_pid(self);
    REQUIRE(first > 0);
    REQUIRE(::kill(first, SIGKILL) == 0);
    auto second = next_pid(self);
    CHECK(second > 0);
    CHECK(second != first);
    CHECK(sup.tree().children.at(0).restarts == 1);
    last = second;
    CHECK(test::running(last));
    CHECK(sup.stop(30s).empty());  // it ended on SIGTERM, within its shutdown time
  }
  CHECK(test::eventually(10s, [&] { return !test::running(last); }));
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("the program's end is seen although a child of it holds the pipes") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(*node, {"sh", "-c", "sleep 60 & echo $!; exit 4"}, self);
  self->monitor(cmd);
  auto s = collect(self, cmd);
  REQUIRE(s.out.size() == 1);
  REQUIRE(s.down);
  CHECK(mproc::exit_code_of(*s.down) == 4);
  ::kill(static_cast<pid_t>(std::stol(s.out[0])), SIGKILL);  // the grandchild: not ours to reap
}

TEST_CASE("a normal exit message is no request to stop; a kill ends the program at once") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto [cmd, pid] = sleeper(*node, self);
  REQUIRE(pid > 0);
  self->send_exit(cmd, caf::exit_reason::normal);  // what a linked actor's normal end sends
  self->send_exit(cmd, caf::exit_reason::kill);
  auto s = collect(self, cmd);
  REQUIRE(s.down);
  CHECK(*s.down == caf::exit_reason::kill);
  CHECK(test::eventually(10s, [&] { return !test::running(pid); }));
}

TEST_CASE("another actor's messages neither end the program's actor nor speak for its program") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto [cmd, pid] = sleeper(*node, self);
  REQUIRE(pid > 0);
  // What the reader thread used to send: atoms anybody could send, from any process.
  self->send(cmd, caf::atom("cmd_exit"), std::int32_t{0});
  self->send(cmd, caf::atom("cmd_exit"), caf::error{});
  self->send(cmd, sp::stdout_atom::value, std::string{"forged"});
  self->send(cmd, sp::stderr_atom::value, std::string{"forged"});
  self->send_exit(cmd, caf::exit_reason::kill);  // behind them in the mailbox
  auto s = collect(self, cmd);
  CHECK(s.out.empty());
  CHECK(s.err.empty());
  REQUIRE(s.down);
  CHECK(*s.down == caf::exit_reason::kill);  // not the normal end a forged exit 0 gave
  CHECK(test::eventually(10s, [&] { return !test::running(pid); }));
}

TEST_CASE("the first request to stop gives the actor's exit reason") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto [cmd, pid] = sleeper(*node, self);
  REQUIRE(pid > 0);
  self->send_exit(cmd, caf::exit_reason::normal);
  self->send_exit(cmd, caf::exit_reason::user_shutdown);
  self->send_exit(cmd, caf::exit_reason::unknown);
  auto s = collect(self, cmd);
  REQUIRE(s.down);
  CHECK(*s.down == caf::exit_reason::user_shutdown);
}

TEST_CASE("dropping every handle to the actor kills its program") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto [cmd, pid] = sleeper(*node, self, false);
  REQUIRE(pid > 0);
  cmd = {};
  CHECK(test::eventually(10s, [&] { return !test::running(pid); }));
}

TEST_CASE("without a listener the program writes where this process does") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(*node, {"sh", "-c", "exit 5"});
  self->monitor(cmd);
  auto s = collect(self, cmd);
  REQUIRE(s.down);
  CHECK(mproc::exit_code_of(*s.down) == 5);
}

TEST_CASE("a line of exactly max_line_bytes arrives whole, and no empty line after it") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(
    *node, {"sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo after"}, self);
  self->monitor(cmd);
  auto s = collect(self, cmd);
  REQUIRE(s.out.size() == 2);
  CHECK(s.out[0].size() == sp::max_line_bytes);
  CHECK(s.out[1] == "after");
}

TEST_CASE("the registered actor with a program that cannot start ends with spawn_failed") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = node->spawn(sp::actor_name(), std::vector<std::string>{"/no/such/program"},
                         caf::actor{self});
  self->monitor(cmd);
  auto s = collect(self, cmd);
  REQUIRE(s.down);
  CHECK(mproc::code_of(*s.down) == errc::spawn_failed);
}

TEST_CASE("a line longer than max_line_bytes that arrives with its newline is cut too") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  // The last x and the newline come in one write: the read that brings them crosses the limit.
  auto cmd = sp::spawn_actor(
    *node, {"sh", "-c", "s=$(head -c 1048577 /dev/zero | tr '\\0' x); printf '%s\\n' \"$s\""},
    self);
  self->monitor(cmd);
  auto s = collect(self, cmd);
  REQUIRE(s.out.size() == 2);
  CHECK(s.out[0].size() == sp::max_line_bytes);
  CHECK(s.out[1] == "x");
}

TEST_CASE("the program's end is seen although a child of it writes on for ever") {
  test::scoped_node node;
  caf::scoped_actor self{node->system()};
  auto cmd = sp::spawn_actor(*node, {"sh", "-c", "yes & echo $!; exit 0"}, self);
  self->monitor(cmd);
  pid_t writer = 0;
  bool ended = false;
  auto give_up = std::chrono::steady_clock::now() + 10s;
  self->receive_while([&] { return !ended && std::chrono::steady_clock::now() < give_up; })(
    [&](sp::stdout_atom, std::string& line) {
      if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos)
        writer = static_cast<pid_t>(std::stol(line));
    },
    [&](caf::down_msg& d) { ended = d.source == cmd.address(); },
    caf::after(std::chrono::seconds{10}) >> [] {});
  CHECK(ended);
  REQUIRE(writer != 0);
  // The grandchild dies of SIGPIPE once the pipe is gone; if not yet, it goes now (its pid,
  // reaped by another, could be someone else's by now: checked by name).
  std::ifstream comm{"/proc/" + std::to_string(writer) + "/comm"};
  std::string name;
  if (std::getline(comm, name) && name == "yes")
    ::kill(writer, SIGKILL);
}
