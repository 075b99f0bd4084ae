// Supervision with real processes: strategies, restart types, the intensity window,
// shutdown order and escalation, nesting across processes.
#include "mproc/runtime/supervisor.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <map>
#include <sstream>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using mproc::restart_policy;
using mproc::strategy;
using crash_atom = caf::atom_constant<caf::atom("crash")>;

namespace {

enum exit_kind : std::int32_t { error_exit = 0, abort_exit = 1, normal_exit = 2 };

// Answers with its pid; ends as told.
caf::behavior sworker(caf::event_based_actor* self) {
  return {
    [](caf::get_atom) { return static_cast<std::int32_t>(::getpid()); },
    [=](crash_atom, std::int32_t how) {
      if (how == abort_exit)
        std::abort();
      self->quit(how == error_exit ? mproc::make_error(errc::bad_message, "told to fail")
                                   : caf::error{});
    },
  };
}

// Ignores SIGTERM: only the kill ends it.
caf::behavior stubborn(caf::event_based_actor* self) {
  std::signal(SIGTERM, SIG_IGN);
  return sworker(self);
}

// A supervisor in its own process, with two workers of its own; gives up after 1 restart.
caf::behavior team(caf::event_based_actor* self) {
  return mproc::supervise(self, {.strategy = strategy::one_for_one, .intensity = 1,
                                 .period = 10s, .name = "team"},
                          {{.id = "t1", .actor = "sworker"}, {.id = "t2", .actor = "sworker"}});
}

std::int32_t pid_of(mproc::supervisor& sup, const std::string& id) {
  return mproc::this_node().request<std::int32_t>(sup.child(id), 5s, caf::get_atom::value);
}

// Waits until child `id` runs in a new process (not `old`), returns its pid.
std::int32_t new_pid_of(mproc::supervisor& sup, const std::string& id, std::int32_t old) {
  std::int32_t now = old;
  test::eventually(5000ms, [&] {
    try {
      now = pid_of(sup, id);
    } catch (const mproc::error&) {
      return false;  // restarting
    }
    return now != old;
  });
  return now;
}

std::map<std::string, std::string> states(mproc::supervisor& sup) {
  std::map<std::string, std::string> out;
  for (const auto& c : sup.tree().children)
    out[c.id] = c.state;
  return out;
}

} // namespace

MPROC_ACTOR(sworker);
MPROC_ACTOR(stubborn);
MPROC_ACTOR(team);

TEST_CASE("each strategy and restart type restarts exactly whom OTP would") {
  auto strat = GENERATE(strategy::one_for_one, strategy::one_for_all, strategy::rest_for_one);
  auto policy = GENERATE(restart_policy::permanent, restart_policy::transient,
                         restart_policy::temporary);
  auto how = GENERATE(error_exit, normal_exit);
  CAPTURE(static_cast<int>(strat), static_cast<int>(policy), how);

  test::scoped_node node;
  mproc::supervisor sup{*node, {.strategy = strat, .intensity = 10, .period = 10s},
                        {{.id = "a", .actor = "sworker"},
                         {.id = "b", .actor = "sworker", .restart = policy},
                         {.id = "c", .actor = "sworker"}}};
  auto a = pid_of(sup, "a");
  auto b = pid_of(sup, "b");
  auto c = pid_of(sup, "c");
  caf::anon_send(sup.child("b"), crash_atom::value, static_cast<std::int32_t>(how));

  bool restarted = policy == restart_policy::permanent
                   || (policy == restart_policy::transient && how == error_exit);
  if (!restarted) {
    std::this_thread::sleep_for(200ms);  // enough for a restart that should not happen
    auto s = states(sup);
    if (policy == restart_policy::temporary)
      CHECK(s.count("b") == 0);  // removed
    else
      CHECK(s["b"] == "stopped");
    CHECK(pid_of(sup, "a") == a);
    CHECK(pid_of(sup, "c") == c);
  } else {
    // Settled: b's restart counted and every child running again.
    REQUIRE(test::eventually(5000ms, [&] {
      auto t = sup.tree();
      for (const auto& ch : t.children)
        if (ch.state != "running" || (ch.id == "b" && ch.restarts != 1))
          return false;
      return true;
    }));
    CHECK(pid_of(sup, "b") != b);
    CHECK((pid_of(sup, "a") != a) == (strat == strategy::one_for_all));
    CHECK((pid_of(sup, "c") != c) == (strat != strategy::one_for_one));
    // Siblings restarted with b were stopped first, not left running beside their successors.
    if (strat == strategy::one_for_all)
      CHECK(test::eventually(2000ms, [&] { return !test::running(a); }));
    if (strat != strategy::one_for_one)
      CHECK(test::eventually(2000ms, [&] { return !test::running(c); }));
  }
  sup.stop();
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("3 restarts within the period are allowed; the 4th makes the supervisor give up") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.intensity = 3, .period = 1000ms},
                        {{.id = "w", .actor = "sworker"}, {.id = "other", .actor = "sworker"}}};
  auto other = pid_of(sup, "other");
  auto pid = pid_of(sup, "w");
  for (int i = 0; i < 3; ++i) {
    ::kill(pid, SIGKILL);
    pid = new_pid_of(sup, "w", pid);
    REQUIRE_FALSE(sup.wait(0ms));
  }
  ::kill(pid, SIGKILL);
  REQUIRE(sup.wait(5s));
  CHECK(mproc::code_of(sup.reason()) == errc::gave_up);
  CHECK(test::eventually(2000ms, [&] { return !test::running(other); }));  // all stopped
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("restarts older than the period do not count") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.intensity = 1, .period = 300ms}, {{.id = "w", .actor = "sworker"}}};
  auto pid = pid_of(sup, "w");
  for (int i = 0; i < 3; ++i) {
    ::kill(pid, SIGKILL);
    pid = new_pid_of(sup, "w", pid);
    std::this_thread::sleep_for(400ms);
  }
  CHECK_FALSE(sup.wait(0ms));
  sup.stop();
}

TEST_CASE("shutdown stops children in reverse order and kills one that ignores SIGTERM") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {},
                        {{.id = "first", .actor = "sworker"},
                         {.id = "deaf", .actor = "stubborn", .shutdown = 300ms},
                         {.id = "last", .actor = "sworker"}}};
  auto first = pid_of(sup, "first");
  auto deaf = pid_of(sup, "deaf");
  auto last = pid_of(sup, "last");
  // The polling pass in which each process was first seen gone: deaths seen in one pass tie.
  std::map<std::int32_t, int> gone_at;
  std::atomic<bool> watching{true};
  std::thread watcher{[&] {
    for (int pass = 0; watching && gone_at.size() < 3; ++pass) {
      for (auto p : {first, deaf, last})
        if (!gone_at.count(p) && !test::running(p))
          gone_at[p] = pass;
      std::this_thread::sleep_for(1ms);
    }
  }};
  auto start = std::chrono::steady_clock::now();
  auto killed = sup.stop();
  auto took = std::chrono::steady_clock::now() - start;
  std::this_thread::sleep_for(50ms);
  watching = false;
  watcher.join();
  CHECK(killed == std::vector<std::string>{"deaf"});
  CHECK(took >= 300ms);
  REQUIRE(gone_at.size() == 3);
  CHECK(gone_at[last] <= gone_at[deaf]);
  CHECK(gone_at[deaf] <= gone_at[first]);
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("a reference by id follows restarts; while down, requests fail with not_running") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {}, {{.id = "w", .actor = "sworker"}}};
  auto ref = sup.child("w");
  auto pid = node->request<std::int32_t>(ref, 5s, caf::get_atom::value);
  sup.terminate_child("w");
  CHECK(test::code_of([&] { node->request<std::int32_t>(ref, 5s, caf::get_atom::value); })
        == errc::not_running);
  CHECK(states(sup)["w"] == "stopped");
  sup.restart_child("w");
  auto again = node->request<std::int32_t>(ref, 5s, caf::get_atom::value);
  CHECK(again != pid);
  sup.stop();
}

TEST_CASE("other actors' messages fake no child's start or exit and redirect no reference") {
  // What the node's callbacks and the supervisor's timer used to send as atoms, and what the
  // supervisor told a child's reference: any actor reaching them (a peer, once the
  // supervisor was a sender) could restart children, kill them early, or take their mail.
  test::scoped_node node;
  mproc::supervisor sup{*node, {}, {{.id = "w", .actor = "sworker"}}};
  auto ref = sup.child("w");
  auto pid = pid_of(sup, "w");
  caf::scoped_actor thief{node->system()};
  for (std::uint64_t inc = 0; inc < 4; ++inc) {
    caf::anon_send(sup.actor(), caf::atom("sup_exit"), std::string{"w"}, inc, std::int32_t{1});
    caf::anon_send(sup.actor(), caf::atom("sup_kill"), std::string{"w"}, inc);
    caf::anon_send(sup.actor(), caf::atom("sup_up"), std::string{"w"}, inc, caf::error{});
  }
  caf::anon_send(ref, caf::atom("sup_curr"), caf::actor{thief});
  caf::anon_send_exit(sup.actor(), caf::exit_reason::normal);  // no request to stop
  auto tree = sup.tree();  // asked after them
  REQUIRE(tree.children.size() == 1);
  CHECK(tree.children[0].restarts == 0);
  CHECK(tree.children[0].state == "running");
  CHECK(pid_of(sup, "w") == pid);  // the same process, still reached through its reference
  sup.stop();
}

TEST_CASE("children can be added, terminated, restarted and deleted; misuse is an error") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {}, {}};
  sup.start_child({.id = "x", .actor = "sworker"});
  CHECK(states(sup)["x"] == "running");
  CHECK(test::code_of([&] { sup.start_child({.id = "x", .actor = "sworker"}); })
        == errc::bad_arguments);
  CHECK(test::code_of([&] { sup.start_child({.id = "y", .actor = "nobody"}); })
        == errc::unknown_actor_name);
  CHECK(test::code_of([&] { sup.delete_child("x"); }) == errc::bad_arguments);  // running
  CHECK(test::code_of([&] { sup.restart_child("x"); }) == errc::bad_arguments);  // running
  CHECK(test::code_of([&] { sup.child("zz"); }) == errc::no_such_actor);
  sup.terminate_child("x");
  sup.delete_child("x");
  CHECK(sup.tree().children.empty());
  sup.stop();
}

TEST_CASE("a simple_one_for_one supervisor starts identical children on demand") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.strategy = strategy::simple_one_for_one, .intensity = 5},
                        {{.id = "w", .actor = "sworker"}}};
  CHECK(sup.tree().children.empty());
  auto one = sup.start_child(caf::make_message());
  auto two = sup.start_child(caf::make_message());
  CHECK(one == "w-1");
  CHECK(two == "w-2");
  auto pid = pid_of(sup, two);
  ::kill(pid, SIGKILL);
  CHECK(new_pid_of(sup, two, pid) != pid);
  CHECK(test::code_of([&] { sup.start_child(caf::make_message(std::int32_t{1})); })
        == errc::bad_arguments);
  sup.stop();
}

TEST_CASE("a simple_one_for_one's children that end for good go; none is restarted by id") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.strategy = strategy::simple_one_for_one, .intensity = 5},
                        {{.id = "w", .actor = "sworker",
                          .restart = mproc::restart_policy::transient}}};
  auto one = sup.start_child(caf::make_message());
  auto two = sup.start_child(caf::make_message());
  caf::anon_send(sup.child(one), crash_atom::value, std::int32_t{normal_exit});
  CHECK(test::eventually(10s, [&] { return sup.tree().children.size() == 1; }));
  // Refused as such, not for want of the child (no_such_actor) or for its running.
  CHECK(test::code_of([&] { sup.restart_child(one); }) == errc::bad_arguments);
  CHECK(test::code_of([&] { sup.delete_child(one); }) == errc::bad_arguments);
  CHECK(test::code_of([&] { sup.start_child({.id = "x", .actor = "sworker"}); })
        == errc::bad_arguments);
  sup.terminate_child(two);
  CHECK(sup.tree().children.empty());
  sup.stop();
}

TEST_CASE("an exit sent to a child's reference reaches the child; the reference lives on") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.intensity = 3}, {{.id = "w", .actor = "sworker"}}};
  auto ref = sup.child("w");
  auto first = pid_of(sup, "w");
  caf::anon_send_exit(ref, caf::exit_reason::user_shutdown);
  auto second = new_pid_of(sup, "w", first);
  CHECK(second != first);
  CHECK(node->request<std::int32_t>(ref, 5s, caf::get_atom::value) == second);
  sup.stop();
}

TEST_CASE("an in-process child is restarted like a process child") {
  test::scoped_node node;
  mproc::supervisor sup{*node, {.intensity = 3},
                        {{.id = "local", .actor = "sworker", .in_process = true}}};
  auto ref = sup.child("local");
  CHECK(node->request<std::int32_t>(ref, 5s, caf::get_atom::value) == ::getpid());
  caf::anon_send(ref, crash_atom::value, std::int32_t{error_exit});
  CHECK(test::eventually(5000ms, [&] { return sup.tree().children.at(0).restarts == 1; }));
  CHECK(node->request<std::int32_t>(ref, 5s, caf::get_atom::value) == ::getpid());
  sup.stop();
}

TEST_CASE("a child that cannot start fails the supervisor's start, stopping the others") {
  test::scoped_node node;
  auto start = [&] {
    mproc::supervisor sup{*node, {},
                          {{.id = "ok", .actor = "sworker"}, {.id = "bad", .actor = "nobody"}}};
  };
  CHECK(test::code_of(start) == errc::unknown_actor_name);
  CHECK(test::eventually(2000ms, [&] { return node->active_children().empty(); }));
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("a nested supervisor process restarts its workers and escalates when it gives up") {
  test::scoped_node node;
  mproc::supervisor root{*node, {.intensity = 5, .period = 10s, .name = "root"},
                         {{.id = "team", .actor = "team", .type = mproc::child_type::supervisor}}};
  auto tree = root.tree();
  REQUIRE(tree.children.size() == 1);
  auto& t = tree.children[0];
  CHECK(t.type == "supervisor");
  REQUIRE(t.children.size() == 2);
  auto team_pid = t.pid;
  auto worker = t.children[0].pid;
  CHECK(worker != 0);
  std::ostringstream printed;
  mproc::print_tree(printed, tree);
  CHECK_THAT(printed.str(), Catch::Contains("root") && Catch::Contains("  team  supervisor")
                              && Catch::Contains("    t1  worker  running"));

  ::kill(worker, SIGKILL);  // team restarts it: its 1 allowed restart
  CHECK(test::eventually(5000ms, [&] {
    auto now = root.tree().children.at(0);
    return now.children.size() == 2 && now.children[0].pid != worker && now.children[0].pid != 0;
  }));
  ::kill(root.tree().children.at(0).children.at(1).pid, SIGKILL);  // the 2nd: team gives up
  CHECK(test::eventually(5000ms, [&] {
    auto now = root.tree().children.at(0);
    return now.pid != team_pid && now.pid != 0 && now.restarts == 1;  // root restarted team
  }));
  root.stop();
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("killing the root of a tree takes the whole tree down within 1 s") {
  test::scoped_node node;
  auto top = node->spawn_process("team", {});
  node->request(top.actor(), 10s, caf::atom("sup_ready"));  // its workers have started
  auto tree = node->request<mproc::child_status>(top.actor(), 5s, caf::atom("sup_tree"));
  REQUIRE(tree.children.size() == 2);
  std::vector<std::int64_t> workers{tree.children[0].pid, tree.children[1].pid};
  for (auto w : workers)
    REQUIRE(test::running(static_cast<pid_t>(w)));
  top.kill();
  CHECK(test::eventually(1000ms, [&] {
    for (auto w : workers)
      if (test::running(static_cast<pid_t>(w)))
        return false;
    return true;
  }));
  CHECK(top.join(5s));
}
