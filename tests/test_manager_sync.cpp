// A Manager's Event, Lock, Value and Queue: waits answered by the manager, waiters in other
// processes woken, forgotten when their process dies, answered when the object or the
// manager goes.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <caf/all.hpp>

#include "mproc/actors/manager.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

// Waits on the event, then says how the wait ended.
void event_waiter(caf::blocking_actor*, mproc::event_proxy e, mproc::queue_proxy<int> said) {
  said.put(e.wait(30s) ? 1 : 0);
}

// Takes the lock (waiting if need be), says so, and dies holding it.
void die_holding(caf::blocking_actor*, mproc::lock_proxy l, mproc::queue_proxy<int> said) {
  if (l.acquire(true, 30s))
    said.put(static_cast<int>(::getpid()));
  ::kill(::getpid(), SIGKILL);
}

// Takes one item and passes it on.
void getter(caf::blocking_actor*, mproc::queue_proxy<int> in, mproc::queue_proxy<int> out) {
  out.put(in.get(true, 30s));
}

// Gets `n` items from the queue and puts their sum back.
void summer(caf::blocking_actor*, mproc::queue_proxy<int> in, mproc::queue_proxy<int> out,
            std::int32_t n) {
  int sum = 0;
  for (std::int32_t i = 0; i < n; ++i)
    sum += in.get(true, 10s);
  out.put(sum);
}

// Gets `n` items; for each, says so on `done`, then reports it done on `in`.
void doer(caf::blocking_actor*, mproc::queue_proxy<int> in, mproc::queue_proxy<int> done,
          std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) {
    done.put(in.get(true, 10s));
    in.task_done();
  }
}

// Until `n` calls wait on the object in the manager.
template <class Proxy>
bool waiting(const Proxy& p, std::size_t n) {
  return test::eventually(10s, [&] { return p.ref().waiting() == n; });
}

} // namespace

MPROC_ACTOR(event_waiter);
MPROC_ACTOR(die_holding);
MPROC_ACTOR(getter);
MPROC_ACTOR(summer);
MPROC_ACTOR(doer);

TEST_CASE("a manager's Event wakes a waiter in another process; unset, waits time out") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto e = m.event();
  auto said = m.queue<int>();
  CHECK_FALSE(e.wait(200ms));
  CHECK_FALSE(e.wait(0ms));
  auto p = node->spawn_process("event_waiter", {}, e, said);
  REQUIRE(waiting(e, 1));
  e.set();
  CHECK(said.get(true, 10s) == 1);
  CHECK(e.is_set());
  e.clear();
  CHECK_FALSE(e.is_set());
  REQUIRE(p.join(10s));
}

TEST_CASE("waits pending at once with different timeouts each time out") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto e = m.event();
  // 0: timed out as it should; 2: the manager never answered, the call's own timeout did.
  auto wait_for = [&](std::chrono::milliseconds t, std::atomic<int>& out) {
    try {
      out = e.wait(t) ? 1 : 0;
    } catch (const mproc::error&) {
      out = 2;
    }
  };
  std::atomic<int> first{-1}, second{-1};
  std::thread a{wait_for, 2s, std::ref(first)};
  REQUIRE(waiting(e, 1));
  // Due after the first: the manager's one timer, for the first, has to go again for it.
  std::thread b{wait_for, 3s, std::ref(second)};
  a.join();
  b.join();
  CHECK(first == 0);
  CHECK(second == 0);
}

TEST_CASE("a wait of milliseconds::max() waits, and ends when set") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto e = m.event();
  std::atomic<bool> woke{false};
  std::thread t{[&] { woke = e.wait(std::chrono::milliseconds::max()); }};
  REQUIRE(waiting(e, 1));
  e.set();
  t.join();
  CHECK(woke);
}

TEST_CASE("another actor cannot end a waiter's wait before its timeout") {
  // The manager's timer used to be an atom anybody holding its handle could send, with
  // small counters for object and token.
  test::scoped_node node;
  mproc::manager m{*node};
  auto e = m.event();
  std::atomic<bool> woke{false};
  std::thread t{[&] { woke = e.wait(60s); }};
  REQUIRE(waiting(e, 1));
  for (std::uint64_t object = 0; object < 8; ++object)
    for (std::uint64_t token = 0; token < 8; ++token)
      caf::anon_send(m.actor(), caf::atom("m_expire"), object, token);
  CHECK_FALSE(e.is_set());  // asked after them: the manager has read them
  CHECK(waiting(e, 1));     // still waiting
  e.set();
  t.join();
  CHECK(woke);  // ended by the set, not by a forged timeout
}

TEST_CASE("a negative wait is no wait: a lock it takes is taken, a queue item it gets is got") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto l = m.lock();
  auto got = l.acquire(true, -20s);
  REQUIRE(got);  // the lock was free: taken at once, and the caller is told so
  CHECK_FALSE(l.acquire(true, -20s));  // held: refused at once, not granted behind its back
  l.release();
  auto q = m.queue<int>();
  q.put(7);
  CHECK(q.get(true, -20s) == 7);
  CHECK(code_of([&] { q.get(true, -20s); }) == mproc::errc::empty);
}

TEST_CASE("a manager's Lock skips a waiter that died, and passes on from a holder that died") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto l = m.lock();
  auto said = m.queue<int>();
  REQUIRE(l.acquire().ok);
  // A waiter killed from outside while it waits leaves the line.
  auto first = node->spawn_process("die_holding", {}, l, said);
  REQUIRE(waiting(l, 1));
  first.kill();
  REQUIRE(first.join(10s));
  CHECK(waiting(l, 0));
  // A waiter that got the lock by waiting, then died holding it.
  auto second = node->spawn_process("die_holding", {}, l, said);
  REQUIRE(waiting(l, 1));
  l.release();
  CHECK(said.get(true, 10s) == second.pid());
  REQUIRE(second.join(10s));
  auto got = l.acquire(true, 10s);
  CHECK(got.ok);
  CHECK(got.owner_died);
  CHECK_FALSE(l.acquire(false).ok);
  CHECK_FALSE(l.acquire(true, 100ms).ok);
  l.release();
  CHECK(code_of([&] { l.release(); }) == errc::bad_arguments);
  auto again = l.acquire();
  CHECK((again.ok && !again.owner_died));
}

TEST_CASE("a getter killed while it waits gets no item; the next one does") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto in = m.queue<int>();
  auto out = m.queue<int>();
  auto p = node->spawn_process("getter", {}, in, out);
  REQUIRE(waiting(in, 1));
  p.kill();
  REQUIRE(p.join(10s));
  REQUIRE(waiting(in, 0));
  in.put(7);
  CHECK(in.get(true, 5s) == 7);
}

TEST_CASE("a manager's Value and Queue are shared with children; full and empty are Python's") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto v = m.value<std::int64_t>(41);
  v.set(v.get() + 1);
  CHECK(v.get() == 42);
  CHECK(m.value<std::int64_t>(0, "answer").get() == 0);
  CHECK(m.value<std::int64_t>(7, "answer").get() == 0);  // found by name, not created again

  auto in = m.queue<int>(4);
  auto out = m.queue<int>();
  auto p = node->spawn_process("summer", {}, in, out, std::int32_t{100});
  for (int i = 1; i <= 100; ++i)
    in.put(i, true, 10s);  // waits whenever the summer is 4 behind
  CHECK(out.get(true, 10s) == 5050);
  REQUIRE(p.join(10s));
  CHECK(in.empty());
  CHECK(code_of([&] { in.get_nowait(); }) == errc::empty);
  CHECK(code_of([&] { in.get(true, 100ms); }) == errc::empty);
  for (int i = 0; i < 4; ++i)
    in.put_nowait(i);
  CHECK(in.full());
  CHECK(in.qsize() == 4);
  CHECK(code_of([&] { in.put_nowait(9); }) == errc::full);
  CHECK(code_of([&] { in.put(9, true, 100ms); }) == errc::full);
  CHECK(in.get() == 0);
}

TEST_CASE("a manager queue's join waits for a task_done per item; one too many is refused") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto q = m.queue<int>();
  auto done = m.queue<int>();
  q.join(0ms);  // nothing put: nothing to wait for
  for (int i = 0; i < 5; ++i)
    q.put(i);
  CHECK(code_of([&] { q.join(0ms); }) == errc::timeout);
  auto p = node->spawn_process("doer", {}, q, done, std::int32_t{5});
  q.join(30s);
  CHECK(done.qsize() == 5);  // each was reported done after it was passed on
  CHECK(q.ref().waiting() == 0);
  CHECK(code_of([&] { q.task_done(); }) == errc::bad_arguments);
  q.join(0ms);
  REQUIRE(p.join(10s));
}

TEST_CASE("manager waits of hours::max() wait for ever, not overflow into none") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto q = m.queue<int>();
  // Each helper acts a little later, most likely after the wait began; either way works.
  std::thread putter{[q] {
    std::this_thread::sleep_for(100ms);
    q.put(7);
  }};
  CHECK(q.get(true, std::chrono::hours::max()) == 7);
  putter.join();
  std::thread doer{[q] {
    std::this_thread::sleep_for(100ms);
    q.task_done();
  }};
  q.join(std::chrono::seconds::max());
  doer.join();
  CHECK(q.ref().waiting() == 0);
}

TEST_CASE("waiters are answered when their object is released or the manager shuts down") {
  test::scoped_node node;
  mproc::manager m{*node, {.in_process = true}};
  auto e = m.event();
  auto q = m.queue<int>();
  std::atomic<int> event_saw{-1}, queue_saw{-1};
  std::thread t1{[&] { event_saw = static_cast<int>(code_of([&] { e.wait(); })); }};
  std::thread t2{[&] { queue_saw = static_cast<int>(code_of([&] { q.get(); })); }};
  REQUIRE(waiting(e, 1));
  REQUIRE(waiting(q, 1));
  CHECK(m.release(e));
  t1.join();
  CHECK(event_saw == static_cast<int>(errc::no_such_actor));
  m.shutdown();
  t2.join();
  CHECK(queue_saw == static_cast<int>(errc::no_such_actor));
}

TEST_CASE("a stopped manager makes an event's set time out") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto e = m.event();
  auto pid = m.server_process()->pid();
  REQUIRE(::kill(pid, SIGSTOP) == 0);
  REQUIRE(test::eventually(10s, [&] { return test::all_threads_stopped(pid); }));
  e.set_timeout(300ms);
  CHECK(code_of([&] { e.set(); }) == errc::timeout);
  REQUIRE(::kill(pid, SIGCONT) == 0);
}

TEST_CASE("a manager's Lock held for a scope is released at its end, also when it ends by an exception") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto l = m.lock();
  try {
    auto held = l.hold();
    CHECK(l.locked());
    throw std::runtime_error{"the work failed"};
  } catch (const std::runtime_error&) {
  }
  CHECK_FALSE(l.locked());
  {
    auto held = l.hold(1s);
    CHECK(l.locked());
    CHECK_FALSE(l.acquire(false));  // held by the guard: a try fails
  }
  CHECK_FALSE(l.locked());
}
