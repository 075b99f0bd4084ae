// The process handle: Python's Process API on real child processes.
#include "mproc/runtime/process.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <future>
#include <thread>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/value.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;

namespace {

// Answers with facts about its process.
caf::behavior who_am_i(caf::event_based_actor*) {
  return {
    [](caf::get_atom) {
      return caf::make_message(static_cast<std::int32_t>(::getpid()),
                               static_cast<std::int32_t>(mproc::parent_pid()),
                               mproc::current_process_name());
    },
  };
}

// Ends at once, normally or with an error, as its argument says.
caf::behavior finisher(caf::event_based_actor* self, bool fail) {
  self->quit(fail ? caf::error{caf::exit_reason::user_shutdown} : caf::error{});
  return {};
}

// Ends its process the hard way.
caf::behavior crasher(caf::event_based_actor*) {
  return {[](std::int32_t how) -> std::int32_t {
    if (how == 0)
      std::abort();
    ::_exit(how);
  }};
}

// Never answers: a request to it stays pending until its process dies.
caf::behavior black_hole(caf::event_based_actor* self) {
  return {[=](std::int32_t) { return self->make_response_promise<std::int32_t>(); }};
}

// Starts a grandchild process and answers with its pid.
caf::behavior parent_of(caf::event_based_actor*, bool daemon) {
  return {[=](caf::get_atom) {
    auto p = mproc::this_node().spawn_process("who_am_i", {.name = "grandchild", .daemon = daemon});
    return static_cast<std::int32_t>(p.pid());
  }};
}

// Waits in a blocking receive until told to stop.
void waiter(caf::blocking_actor* self) {
  self->receive([](caf::get_atom) {});
}

// Once its parent is stopped (SIGSTOP), sends `collector` 8 MiB and ends: its last words
// are still unread when its process ends.
void last_words(caf::blocking_actor* self, caf::actor collector) {
  for (int i = 0; i < 1000 && !test::all_threads_stopped(::getppid()); ++i)
    std::this_thread::sleep_for(10ms);
  for (int i = 0; i < 8; ++i)
    self->send(collector, mproc::bytes(1u << 20, 'w'));
}

// Starts last_words with itself as the collector (answers its pid), counts what it is sent.
caf::behavior collector(caf::stateful_actor<std::int64_t>* self) {
  return {
    [=](caf::get_atom) {
      auto p = mproc::this_node().spawn_process("last_words", {}, caf::actor{self});
      return static_cast<std::int32_t>(p.pid());
    },
    [=](const mproc::bytes& b) { self->state += static_cast<std::int64_t>(b.size()); },
    [=](std::int32_t) { return self->state; },
  };
}

// Holds the arguments it started with, and answers their size.
caf::behavior holds_bytes(caf::event_based_actor*, mproc::bytes given) {
  return {[given](caf::get_atom) { return static_cast<std::int64_t>(given.size()); }};
}

// A value of `levels` arrays around 1.
mproc::value nest(int levels) {
  mproc::value v = std::int64_t{1};
  for (int i = 0; i < levels; ++i)
    v = mproc::value::array_t{v};
  return v;
}

// Echoes a value; given a number of levels, answers a value nested that deep; asked, starts
// an actor that ends, on its first message, with a reason whose context is 100 levels deep.
caf::behavior echo_value(caf::event_based_actor* self) {
  auto kept = std::make_shared<std::vector<caf::actor>>();  // alive until it is told to end
  return {
    [](const mproc::value& v) { return v; },
    [](std::int32_t levels) { return nest(levels); },
    [self, kept](caf::get_atom) {
      auto quitter = self->home_system().spawn([](caf::event_based_actor* q) -> caf::behavior {
        return {[q](std::int32_t) {
          auto base = mproc::make_error(errc::bad_message);
          q->quit(caf::error{base.code(), base.category(), caf::make_message(nest(100))});
        }};
      });
      kept->push_back(quitter);
      return quitter;
    },
  };
}

} // namespace

MPROC_ACTOR(echo_value);
MPROC_ACTOR(holds_bytes);
MPROC_ACTOR(last_words);
MPROC_ACTOR(collector);
MPROC_ACTOR(who_am_i);
MPROC_ACTOR(finisher);
MPROC_ACTOR(crasher);
MPROC_ACTOR(black_hole);
MPROC_ACTOR(parent_of);
MPROC_ACTOR(waiter);

TEST_CASE("a started child reports its own pid, parent pid and name") {
  test::scoped_node node{};
  auto p = node->spawn_process("who_am_i", {.name = "worker-7"});
  CHECK(p.pid() > 0);
  CHECK(p.is_alive());
  CHECK_FALSE(p.exitcode());
  auto reply = node->request_message(p.actor(), caf::make_message(caf::get_atom::value), 5s);
  REQUIRE(reply.match_elements<std::int32_t, std::int32_t, std::string>());
  CHECK(reply.get_as<std::int32_t>(0) == p.pid());
  CHECK(reply.get_as<std::int32_t>(1) == ::getpid());
  CHECK(reply.get_as<std::string>(2) == "worker-7");
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a child starts with arguments larger than the 1 MiB known before its hello") {
  test::scoped_node node{};
  auto p = node->spawn_process("holds_bytes", {}, mproc::bytes(3u << 20, 'a'));
  CHECK(node->request<std::int64_t>(p.actor(), 5s, caf::get_atom::value) == (3 << 20));
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a value nested deeper than a receiver reads fails its one message; the child lives on") {
  test::scoped_node node{};
  auto p = node->spawn_process("echo_value", {});
  CHECK(node->request<mproc::value>(p.actor(), 5s, nest(50)) == nest(50));
  // The receiver could not read such a frame and would close the link (the child dies):
  // the sender refuses it, the request fails with the reason, the link stays.
  auto sent = test::error_of([&] { node->request<mproc::value>(p.actor(), 5s, nest(100)); });
  CHECK_THAT(sent.what(), Catch::Contains("nested deeper"));
  auto replied = test::error_of([&] {
    node->request<mproc::value>(p.actor(), 5s, std::int32_t{100});
  });
  CHECK_THAT(replied.what(), Catch::Contains("nested deeper"));
  CHECK(node->request<mproc::value>(p.actor(), 5s, nest(3)) == nest(3));
  // An actor there ends with such a reason: its monitor hears of it, without the context.
  auto quitter = node->request<caf::actor>(p.actor(), 5s, caf::get_atom::value);
  caf::scoped_actor self{node->system()};
  self->monitor(quitter);
  self->send(quitter, std::int32_t{1});
  caf::error reason;
  self->receive([&](caf::down_msg& down) { reason = down.reason; },
                caf::after(5s) >> [] { FAIL("no down message"); });
  CHECK(mproc::code_of(reason) == errc::bad_message);
  CHECK(node->request<mproc::value>(p.actor(), 5s, nest(3)) == nest(3));
  CHECK(p.is_alive());
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("names default to Process-N") {
  test::scoped_node node{};
  mproc::process a{*node, "who_am_i", {}};
  mproc::process b{*node, "who_am_i", {}};
  CHECK(a.name() == "Process-1");
  CHECK(b.name() == "Process-2");
  CHECK(mproc::current_process_name() == "MainProcess");
}

TEST_CASE("exit codes follow Python: 0 for a normal end, 1 for an error, -N for signal N") {
  test::scoped_node node{};
  auto ok = node->spawn_process("finisher", {}, false);
  auto failed = node->spawn_process("finisher", {}, true);
  REQUIRE(ok.join(5s));
  REQUIRE(failed.join(5s));
  CHECK(ok.exitcode() == 0);
  CHECK(failed.exitcode() == 1);

  auto term = node->spawn_process("black_hole", {});
  term.terminate();
  REQUIRE(term.join(5s));
  CHECK(term.exitcode() == -SIGTERM);

  auto aborted = node->spawn_process("crasher", {});
  caf::anon_send(aborted.actor(), std::int32_t{0});
  REQUIRE(aborted.join(5s));
  CHECK(aborted.exitcode() == -SIGABRT);

  auto exited = node->spawn_process("crasher", {});
  caf::anon_send(exited.actor(), std::int32_t{42});
  REQUIRE(exited.join(5s));
  CHECK(exited.exitcode() == 42);
  CHECK_FALSE(exited.is_alive());
}

TEST_CASE("join with a timeout returns false while the child runs") {
  test::scoped_node node{};
  auto p = node->spawn_process("black_hole", {});
  CHECK_FALSE(p.join(50ms));
  CHECK(p.is_alive());
  p.kill();
  CHECK(p.join(5s));
  CHECK(p.exitcode() == -SIGKILL);
  p.kill();  // no effect once ended
  p.terminate();
  CHECK(p.exitcode() == -SIGKILL);
}

TEST_CASE("kill -9 of the child fails a pending request within 100 ms and reports -9") {
  test::scoped_node node{};
  auto p = node->spawn_process("black_hole", {});
  std::chrono::steady_clock::time_point killed_at;
  std::thread killer{[&] {
    std::this_thread::sleep_for(100ms);
    killed_at = std::chrono::steady_clock::now();
    p.kill();
  }};
  caf::error reason;
  try {
    node->request<std::int32_t>(p.actor(), 10s, std::int32_t{1});
  } catch (const mproc::error& e) {
    reason = e.reason();
  }
  auto failed_at = std::chrono::steady_clock::now();
  killer.join();
  CHECK(mproc::code_of(reason) == errc::process_exited);
  CHECK(mproc::exit_code_of(reason) == -SIGKILL);
  CHECK(failed_at - killed_at < 100ms);
  REQUIRE(p.join(5s));
  CHECK(p.exitcode() == -SIGKILL);
}

TEST_CASE("a monitor of a child's actor gets a down message carrying the exit status") {
  test::scoped_node node{};
  auto p = node->spawn_process("black_hole", {});
  caf::scoped_actor self{node->system()};
  self->monitor(p.actor());
  p.kill();
  caf::error reason;
  self->receive([&](caf::down_msg& down) { reason = down.reason; },
                caf::after(5s) >> [] { FAIL("no down message"); });
  CHECK(mproc::exit_code_of(reason) == -SIGKILL);
  CHECK(p.join(5s));
}

TEST_CASE("a monitor of an actor that ends normally gets a down message without error") {
  test::scoped_node node{};
  auto p = node->spawn_process("waiter", {});
  caf::scoped_actor self{node->system()};
  self->monitor(p.actor());
  self->send(p.actor(), caf::get_atom::value);
  caf::error reason{mproc::make_error(errc::timeout)};
  self->receive([&](caf::down_msg& down) { reason = down.reason; },
                caf::after(5s) >> [] { FAIL("no down message"); });
  CHECK_FALSE(reason);
  CHECK(p.join(5s));
  CHECK(p.exitcode() == 0);
}

TEST_CASE("killing the parent makes its child exit within 1 s") {
  test::scoped_node node{};
  auto middle = node->spawn_process("parent_of", {}, false);
  auto grandchild = node->request<std::int32_t>(middle.actor(), 10s, caf::get_atom::value);
  REQUIRE(test::running(grandchild));
  middle.kill();
  CHECK(test::eventually(1000ms, [&] { return !test::running(grandchild); }));
  CHECK(middle.join(5s));
}

TEST_CASE("a daemon child is stopped when its parent ends; the parent waits for others") {
  test::scoped_node node{};
  auto middle = node->spawn_process("parent_of", {}, true);
  auto grandchild = node->request<std::int32_t>(middle.actor(), 10s, caf::get_atom::value);
  REQUIRE(test::running(grandchild));
  caf::anon_send_exit(middle.actor(), caf::exit_reason::user_shutdown);
  REQUIRE(middle.join(5s));
  CHECK_FALSE(test::running(grandchild));
}

TEST_CASE("100 children spawned and joined leave no zombie") {
  test::scoped_node node{};
  std::vector<mproc::process> children;
  for (int i = 0; i < 100; ++i)
    children.push_back(node->spawn_process("finisher", {}, false));
  for (auto& c : children) {
    REQUIRE(c.join(10s));
    CHECK(c.exitcode() == 0);
  }
  CHECK(test::zombie_children() == 0);
  CHECK(node->active_children().empty());
}

TEST_CASE("children started one after another, each waited on and dropped, keep no descriptor") {
  test::scoped_node node{};
  auto once = [&] {
    auto p = node->spawn_process("finisher", {}, false);
    (void)p.sentinel();  // a descriptor of the process's own, as mproc::wait() makes
    REQUIRE(p.join(10s));
  };
  once();  // what the first start sets up (the fork server) stays
  auto before = test::entries("/proc/self/fd");
  for (int i = 0; i < 60; ++i)
    once();
  // The node keeps the latest 32 that ended, for mproc ps; not one per process started.
  CHECK(test::entries("/proc/self/fd") <= before + 34);
}

TEST_CASE("a kill while the process is still starting, before it has a pid, is not lost") {
  test::scoped_node node{};
  mproc::process p{*node, "waiter", {}};
  std::atomic<bool> settled{false};
  p.start([&](caf::error) { settled = true; });
  p.kill();  // a fork server's answer takes a moment: it has no pid yet, almost always
  REQUIRE(p.join(10s));  // without the kill it waits for a message that never comes
  CHECK(p.exitcode() == -SIGKILL);
  CHECK(test::eventually(10s, [&] { return settled.load(); }));
}

TEST_CASE("node durations of milliseconds::max() mean for ever, not an overflow to the past") {
  mproc::node_options forever;
  forever.start_timeout = std::chrono::milliseconds::max();
  forever.heartbeat_timeout = std::chrono::milliseconds::max();
  test::scoped_node node{forever};
  auto p = node->spawn_process("who_am_i", {});  // the start timer would fire at once
  auto reply = node->request_message(p.actor(), caf::make_message(caf::get_atom::value), 10s);
  CHECK(reply.match_elements<std::int32_t, std::int32_t, std::string>());
  p.terminate();
  REQUIRE(p.join(10s));
}

TEST_CASE("what a child sent before ending reaches a parent that was stopped for seconds") {
  test::scoped_node node{};
  auto parent = node->spawn_process("collector", {});
  CHECK(node->request<std::int32_t>(parent.actor(), 20s, caf::get_atom::value) > 0);
  REQUIRE(::kill(parent.pid(), SIGSTOP) == 0);
  // The grandchild sends once it sees its parent stopped, ends, and waits to hand its words
  // over: longer than a child's first wait for its parent to read (2 s).
  std::this_thread::sleep_for(4s);
  ::kill(parent.pid(), SIGCONT);
  CHECK(test::eventually(30s, [&] {
    return node->request<std::int64_t>(parent.actor(), 10s, std::int32_t{0}) == 8 << 20;
  }));
  parent.terminate();
  CHECK(parent.join(10s));
}

TEST_CASE("join in a callback of the I/O thread returns false rather than hang the node") {
  test::scoped_node node{};
  mproc::process p{*node, "waiter", {}};
  std::promise<bool> joined;
  p.start([&](caf::error) { joined.set_value(p.join()); });  // runs on the I/O thread
  auto answer = joined.get_future();
  REQUIRE(answer.wait_for(30s) == std::future_status::ready);
  CHECK_FALSE(answer.get());
  p.terminate();  // the node still serves: it reaps the child
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == -SIGTERM);
}

TEST_CASE("join with a timeout too long to add to the clock waits rather than failing at once") {
  test::scoped_node node{};
  auto p = node->spawn_process("waiter", {});
  std::atomic<bool> returned{false};
  bool joined = false;
  std::thread joiner{[&] {
    joined = p.join(std::chrono::milliseconds::max());
    returned = true;
  }};
  CHECK_FALSE(test::eventually(1s, [&] { return returned.load(); }));  // it waits
  p.kill();
  joiner.join();
  CHECK(joined);
}

TEST_CASE("active_children lists the children still running") {
  test::scoped_node node{};
  auto a = node->spawn_process("black_hole", {});
  auto b = node->spawn_process("black_hole", {});
  CHECK(node->active_children().size() == 2);
  a.kill();
  REQUIRE(a.join(5s));
  auto live = node->active_children();
  REQUIRE(live.size() == 1);
  CHECK(live[0].pid() == b.pid());
  b.kill();
  CHECK(b.join(5s));
}

TEST_CASE("an unknown actor name fails start, naming the registered ones") {
  test::scoped_node node{};
  mproc::process p{*node, "no_such_actor", {}};
  auto e = test::error_of([&] { p.start(); });
  CHECK(e.code() == errc::unknown_actor_name);
  CHECK_THAT(e.what(), Catch::Contains("no_such_actor") && Catch::Contains("who_am_i"));
  CHECK(p.pid() == 0);
  CHECK_THROWS_AS(p.start(), std::logic_error);
}

TEST_CASE("arguments of the wrong type fail start with the expected signature") {
  test::scoped_node node{};
  auto e = test::error_of([&] { node->spawn_process("finisher", {}, std::string{"yes"}); });
  CHECK(e.code() == errc::bad_arguments);
  CHECK_THAT(e.what(), Catch::Contains("takes (bool), got (str)"));
}

TEST_CASE("a child that cannot be executed fails start with the reason") {
  test::scoped_node node{{.executable = "/nonexistent/program"}};
  auto e = test::error_of([&] { node->spawn_process("who_am_i", {}); });
  CHECK(e.code() == errc::spawn_failed);
  CHECK_THAT(e.what(), Catch::Contains("No such file"));
}

TEST_CASE("a program that is not an mproc node fails start instead of hanging") {
  test::scoped_node node{{.executable = "/bin/true"}};
  auto e = test::error_of([&] { node->spawn_process("who_am_i", {}); });
  CHECK(e.code() == errc::process_exited);
  CHECK(mproc::exit_code_of(e.reason()) == 0);
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("daemon can be set before start only; start twice is refused") {
  test::scoped_node node{};
  mproc::process p{*node, "black_hole", {}};
  p.daemon(true);
  CHECK(p.daemon());
  p.start();
  CHECK_THROWS_AS(p.daemon(false), std::logic_error);
  CHECK_THROWS_AS(p.start(), std::logic_error);
  p.kill();
  CHECK(p.join(5s));
}

TEST_CASE("cpu_count is the number of online processors") {
  CHECK(mproc::cpu_count() == static_cast<std::size_t>(::sysconf(_SC_NPROCESSORS_ONLN)));
}
