// Supervision's edges, as OTP draws them: options refused before anything starts, a start
// that fails (at start-up, from start_child, from restart_child), commands that race a
// group restart or a shutdown, temporary children a group restart stops.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/supervisor.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::child_type;
using mproc::errc;
using mproc::restart_policy;
using mproc::strategy;

namespace {

std::atomic<int> in_process_starts{0};

// Answers with its pid.
caf::behavior pid_worker(caf::event_based_actor*) {
  return {[](caf::get_atom) { return static_cast<std::int32_t>(::getpid()); }};
}

// Counts its starts in this process (run in_process).
caf::behavior counted_worker(caf::event_based_actor* self) {
  ++in_process_starts;
  return pid_worker(self);
}

// Ignores SIGTERM: stopping it takes its whole shutdown time.
caf::behavior deaf_worker(caf::event_based_actor* self) {
  std::signal(SIGTERM, SIG_IGN);
  return pid_worker(self);
}

// A supervisor whose one child cannot start while the file `gate` exists.
caf::behavior gated_team(caf::event_based_actor* self, std::string gate) {
  bool shut = ::access(gate.c_str(), F_OK) == 0;
  return mproc::supervise(self, {.name = "gated"},
                          {{.id = "g", .actor = shut ? "nobody" : "pid_worker"}});
}

// A supervisor stuck before it starts its children (a minute; killed sooner).
caf::behavior stuck_team(caf::event_based_actor* self) {
  std::this_thread::sleep_for(60s);
  return mproc::supervise(self, {.name = "stuck"}, {{.id = "w", .actor = "pid_worker"}});
}

// An in-process supervisor whose one child (a process) is stuck_team.
caf::behavior stuck_team_holder(caf::event_based_actor* self) {
  return mproc::supervise(self, {.name = "holder"},
                          {{.id = "inner", .actor = "stuck_team", .type = child_type::supervisor}});
}

// A file that exists while the test holds it.
struct gate_file {
  std::string path = (std::filesystem::temp_directory_path()
                      / ("mproc-gate-" + std::to_string(::getpid())))
                       .string();
  void open() const { std::fclose(std::fopen(path.c_str(), "w")); }
  ~gate_file() { std::filesystem::remove(path); }
};

std::map<std::string, std::string> states(mproc::supervisor& sup) {
  std::map<std::string, std::string> out;
  for (const auto& c : sup.tree().children)
    out[c.id] = c.state;
  return out;
}

std::int32_t pid_of(mproc::supervisor& sup, const std::string& id) {
  return mproc::this_node().request<std::int32_t>(sup.child(id), 5s, caf::get_atom::value);
}

// Starts `team` (a supervisor child that is never ready) from another thread and stops
// the supervisor while it starts; what that start_child caller got.
errc stop_during_start(mproc::node& node, const mproc::child_spec& team) {
  mproc::supervisor sup{node, {}, {}};
  errc got = errc::none;
  std::thread starter{[&] { got = test::code_of([&] { sup.start_child(team, 120s); }); }};
  bool seen = test::eventually(5000ms, [&] {
    return states(sup)["team"] == "starting" && node.active_children().size() == 1;
  });
  CHECK(seen);
  CHECK(test::code_of([&] { sup.stop(20s); }) == errc::none);
  starter.join();
  return got;
}

} // namespace

MPROC_ACTOR(pid_worker);
MPROC_ACTOR(counted_worker);
MPROC_ACTOR(deaf_worker);
MPROC_ACTOR(gated_team);
MPROC_ACTOR(stuck_team);
MPROC_ACTOR(stuck_team_holder);

TEST_CASE("options OTP refuses are refused before any child starts") {
  test::scoped_node node;
  mproc::child_spec w{.id = "w", .actor = "pid_worker"};
  auto refused = [&](mproc::supervisor_flags flags, std::vector<mproc::child_spec> children) {
    return test::code_of([&] { mproc::supervisor sup{*node, flags, children}; });
  };
  CHECK(refused({}, {w, w}) == errc::bad_arguments);  // two children 'w'
  CHECK(refused({}, {{.actor = "pid_worker"}}) == errc::bad_arguments);  // no id
  CHECK(refused({.intensity = -1}, {w}) == errc::bad_arguments);
  CHECK(refused({.period = 0ms}, {w}) == errc::bad_arguments);
  CHECK(refused({.strategy = strategy::simple_one_for_one}, {}) == errc::bad_arguments);
  CHECK(refused({.strategy = strategy::simple_one_for_one}, {w, {.id = "v", .actor = "pid_worker"}})
        == errc::bad_arguments);
  CHECK(node->active_children().empty());
  mproc::supervisor sup{*node, {}, {}};
  CHECK(test::code_of([&] { sup.start_child({.actor = "pid_worker"}); }) == errc::bad_arguments);
}

TEST_CASE("the first child that cannot start ends the start-up: later children never start") {
  test::scoped_node node;
  in_process_starts = 0;
  auto start = [&] {
    mproc::supervisor sup{*node, {},
                          {{.id = "bad", .actor = "nobody"},
                           {.id = "later", .actor = "counted_worker", .in_process = true}}};
  };
  CHECK(test::code_of(start) == errc::unknown_actor_name);
  CHECK(in_process_starts == 0);
}

TEST_CASE("an in-process supervisor child counts as started once its own children have") {
  test::scoped_node node;
  gate_file gate;
  gate.open();
  auto start = [&] {
    mproc::supervisor sup{*node, {},
                          {{.id = "team", .actor = "gated_team",
                            .args = caf::make_message(gate.path), .in_process = true,
                            .type = child_type::supervisor}}};
  };
  CHECK(test::code_of(start) != errc::none);
  CHECK(test::eventually(5000ms, [&] { return node->active_children().empty(); }));
}

TEST_CASE("a start_child or restart_child that cannot start is the caller's error, not a crash") {
  test::scoped_node node;
  gate_file gate;
  mproc::supervisor sup{*node, {}, {{.id = "steady", .actor = "pid_worker"}}};
  auto steady = pid_of(sup, "steady");
  mproc::child_spec team{.id = "team", .actor = "gated_team", .args = caf::make_message(gate.path),
                         .type = child_type::supervisor};

  gate.open();
  CHECK(test::code_of([&] { sup.start_child(team); }) != errc::none);
  CHECK(states(sup) == std::map<std::string, std::string>{{"steady", "running"}});  // not kept

  std::filesystem::remove(gate.path);
  sup.start_child(team);
  sup.terminate_child("team");
  gate.open();
  CHECK(test::code_of([&] { sup.restart_child("team"); }) != errc::none);
  CHECK(states(sup)["team"] == "stopped");  // not retried: no restart counted against steady
  CHECK(pid_of(sup, "steady") == steady);
  CHECK_FALSE(sup.wait(0ms));
  sup.stop();
  // The process whose start failed was killed as the caller heard of it; the node reaps it
  // through its pidfd, a moment later.
  CHECK(test::eventually(10s, [] { return test::zombie_children() == 0; }));
}

TEST_CASE("a child its group restart brings back cannot be restarted (one process) or deleted") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.strategy = strategy::rest_for_one, .intensity = 5},
                        {{.id = "a", .actor = "pid_worker"},
                         {.id = "b", .actor = "deaf_worker", .shutdown = 2000ms}}};
  pid_of(sup, "b");  // its actor ran: SIGTERM is ignored from here on
  ::kill(pid_of(sup, "a"), SIGKILL);
  // b ignores its SIGTERM: the group restart holds there while a waits to be started again.
  REQUIRE(test::eventually(5000ms, [&] { return states(sup)["b"] == "stopping"; }));
  CHECK(states(sup)["a"] == "restarting");
  // OTP answers {error, restarting}; it was deleted, and its restart found nothing.
  CHECK(test::code_of([&] { sup.delete_child("a"); }) == errc::bad_arguments);
  // Answered once the group restart started it.
  CHECK(test::code_of([&] { sup.restart_child("a"); }) == errc::bad_arguments);
  CHECK(test::eventually(5000ms, [&] {
    auto s = states(sup);
    return s["a"] == "running" && s["b"] == "running";
  }));
  CHECK(node->active_children().size() == 2);
  sup.stop();
  CHECK(node->active_children().empty());
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("terminate_child of a child already stopped answers at once, as OTP's ok") {
  // The step ended without answering: the caller waited out its timeout.
  test::scoped_node node;
  mproc::supervisor sup{*node, {.intensity = 5}, {{.id = "a", .actor = "pid_worker"}}};
  sup.terminate_child("a");
  CHECK(test::code_of([&] { sup.terminate_child("a", 5s); }) == errc::none);
  CHECK(states(sup)["a"] == "stopped");
  sup.stop();
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("a start_child queued behind a stop is answered node_shutdown when the supervisor stops") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {},
                        {{.id = "deaf", .actor = "deaf_worker", .shutdown = 10000ms}}};
  pid_of(sup, "deaf");  // its actor ran: SIGTERM is ignored from here on
  std::thread stopper{[&] { sup.terminate_child("deaf"); }};  // 10 s: deaf ignores SIGTERM
  errc got = errc::none;
  std::thread starter{[&] {
    // (No assertion in this thread: Catch's are not thread-safe.)
    test::eventually(5000ms, [&] { return states(sup)["deaf"] == "stopping"; });
    got = test::code_of([&] { sup.start_child({.id = "x", .actor = "pid_worker"}, 20s); });
  }};
  REQUIRE(test::eventually(5000ms, [&] { return states(sup).count("x") == 1; }));
  sup.stop();
  starter.join();
  stopper.join();
  CHECK(got == errc::node_shutdown);  // not errc::timeout after 20 s
  CHECK(test::code_of([&] { sup.restart_child("deaf"); }) != errc::none);
  CHECK(node->active_children().empty());
}

TEST_CASE("a temporary child that its group's restart stopped is removed, not kept stopped") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.strategy = strategy::one_for_all, .intensity = 5},
                        {{.id = "p", .actor = "pid_worker"},
                         {.id = "t", .actor = "pid_worker",
                          .restart = restart_policy::temporary}}};
  auto p = pid_of(sup, "p");
  ::kill(p, SIGKILL);
  CHECK(test::eventually(5000ms, [&] {
    return states(sup) == std::map<std::string, std::string>{{"p", "running"}};
  }));
  CHECK(pid_of(sup, "p") != p);
  sup.stop();
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("the process a failed restart_child leaves ends without a restart being counted") {
  // Its exit came after the failure, under the same incarnation: the supervisor took it for
  // a new end, restarted the child and counted it (here: again and again, then gave up).
  test::scoped_node node;
  gate_file gate;
  mproc::supervisor sup{*node, {.intensity = 5},
                        {{.id = "steady", .actor = "pid_worker"},
                         {.id = "team", .actor = "gated_team",
                          .args = caf::make_message(gate.path),
                          .type = child_type::supervisor}}};
  sup.terminate_child("team");
  gate.open();
  CHECK(test::code_of([&] { sup.restart_child("team"); }) != errc::none);
  REQUIRE(test::eventually(10s, [&] { return node->active_children().size() == 1; }));
  // Reaped. Its exit is told to the supervisor by a callback on the node's I/O thread, after
  // the reap: a process started and ended now goes through that thread after the callback.
  auto probe = node->spawn_process("pid_worker", {});
  probe.kill();
  REQUIRE(probe.join(10s));
  auto tree = sup.tree();
  REQUIRE(tree.children.size() == 2);
  CHECK(tree.children[1].state == "stopped");
  CHECK(tree.children[1].restarts == 0);
  CHECK(node->active_children().size() == 1);  // nothing started again
  CHECK_FALSE(sup.wait(0ms));
  sup.stop();
}

TEST_CASE("terminate_child of a temporary child deletes it, as OTP does") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {},
                        {{.id = "p", .actor = "pid_worker"},
                         {.id = "t", .actor = "pid_worker",
                          .restart = restart_policy::temporary}}};
  sup.terminate_child("t");
  CHECK(states(sup) == std::map<std::string, std::string>{{"p", "running"}});
  CHECK(test::code_of([&] { sup.restart_child("t"); }) == errc::no_such_actor);
  sup.stop();
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("stop() kills a supervisor child still starting instead of waiting for it") {
  // The shutdown queued behind the start, which waited for a ready that a stuck (or
  // SIGSTOPped) child never gives: stop() timed out and the supervisor lived on.
  test::scoped_node node;
  auto got = stop_during_start(
    *node, {.id = "team", .actor = "stuck_team", .type = child_type::supervisor});
  CHECK(got != errc::none);
  CHECK(got != errc::timeout);
  CHECK(test::eventually(5000ms, [&] { return node->active_children().empty(); }));
}

TEST_CASE("stop() ends an in-process supervisor child still starting, which drops its ready") {
  // Killed while it held the ready question, it never answered it: the start step waited
  // for ever, and the shutdown behind it.
  test::scoped_node node;
  auto got = stop_during_start(*node, {.id = "team", .actor = "stuck_team_holder",
                                       .in_process = true, .type = child_type::supervisor});
  CHECK(got == errc::spawn_failed);
  CHECK(test::eventually(5000ms, [&] { return node->active_children().empty(); }));
}

TEST_CASE("killing a supervisor answers the callers it kept waiting") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {}, {{.id = "deaf", .actor = "deaf_worker", .shutdown = 30000ms}}};
  pid_of(sup, "deaf");  // its actor ran: SIGTERM is ignored from here on
  errc got = errc::none;
  std::thread stopper{[&] { got = test::code_of([&] { sup.terminate_child("deaf", 60s); }); }};
  REQUIRE(test::eventually(5000ms, [&] { return states(sup)["deaf"] == "stopping"; }));
  caf::anon_send_exit(sup.actor(), caf::exit_reason::kill);
  stopper.join();
  CHECK(got == errc::no_such_actor);  // errc::timeout after 60 s, before
  CHECK(sup.wait(5s));
  CHECK(test::eventually(5000ms, [&] { return node->active_children().empty(); }));
}
