// Lock and RLock across processes: exclusion, timeouts, misuse, and a holder or waiter
// killed with SIGKILL from this process at each point of its protocol.
#include "mproc/actors/lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <string>
#include <thread>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/event.hpp"
#include "mproc/actors/queue.hpp"
#include "mproc/actors/shared_value.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

// Takes the lock, says so, and keeps it until `go` is set (or for ever).
void hold_lock(caf::blocking_actor*, mproc::lock l, mproc::event held, mproc::event go) {
  if (!l.acquire())
    return;
  held.set();
  go.wait();
  l.release();
}

// hold_lock in a process out of file descriptors (EMFILE) from its first use of the lock:
// it cannot read its own start time in /proc.
void hold_lock_without_fds(caf::blocking_actor* self, mproc::lock l, mproc::event held,
                           mproc::event go) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  int highest = 0;
  for (const auto& e : std::filesystem::directory_iterator{"/proc/self/fd"})
    highest = std::max(highest, std::stoi(e.path().filename().string()));
  lim.rlim_cur = static_cast<rlim_t>(highest) + 1;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  while (::open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0) {
    // the free numbers below the limit taken too: every further open() fails
  }
  hold_lock(self, std::move(l), std::move(held), std::move(go));
}

void hold_rlock(caf::blocking_actor*, mproc::rlock l, mproc::event held, mproc::event go) {
  auto a = l.hold();
  auto b = l.hold();  // twice: the thread may
  held.set();
  go.wait();
}

// Says it is about to wait, then waits for the lock (until killed).
void wait_for_lock(caf::blocking_actor*, mproc::lock l, mproc::event waiting) {
  waiting.set();
  auto held = l.hold();
}

// Adds one to `counter`, `n` times, each under the lock: a read, a pause, a write, so that
// two processes inside at once would lose increments.
void count_under_lock(caf::blocking_actor*, mproc::lock l, mproc::shared_value<std::int64_t> counter,
                      std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) {
    auto held = l.hold();
    auto v = counter.raw();
    std::this_thread::yield();
    counter.raw() = v + 1;
  }
}

void count_under_rlock(caf::blocking_actor*, mproc::rlock l,
                       mproc::shared_value<std::int64_t> counter, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) {
    auto held = l.hold();
    auto again = l.hold();
    auto v = counter.raw();
    std::this_thread::yield();
    counter.raw() = v + 1;
  }
}

} // namespace

MPROC_ACTOR(hold_lock);
MPROC_ACTOR(hold_rlock);
MPROC_ACTOR(hold_lock_without_fds);
MPROC_ACTOR(wait_for_lock);
MPROC_ACTOR(count_under_lock);
MPROC_ACTOR(count_under_rlock);

namespace {

// A child that holds `l` when this returns, and releases it when `go` is set; `actor` is
// hold_lock or a variant of it.
std::pair<mproc::process, mproc::event> child_holding(mproc::node& node, const mproc::lock& l,
                                                      const std::string& actor = "hold_lock") {
  mproc::event held, go;
  auto p = node.spawn_process(actor, {}, l, held, go);
  REQUIRE(held.wait(10s));
  return {std::move(p), std::move(go)};
}

} // namespace

TEST_CASE("a lock is acquired and released; releasing a free lock throws") {
  mproc::lock l;
  CHECK_FALSE(l.locked());
  auto got = l.acquire();
  CHECK(got);
  CHECK_FALSE(got.owner_died);
  CHECK(l.locked());
  CHECK_FALSE(l.acquire(false));       // not recursive, as Python's
  CHECK_FALSE(l.acquire(true, 30ms));  // the timeout path
  l.release();
  CHECK_FALSE(l.locked());
  CHECK(code_of([&] { l.release(); }) == errc::bad_arguments);
  {
    auto held = l.hold();
    CHECK(l.locked());
  }
  CHECK_FALSE(l.locked());
}

TEST_CASE("another thread of the holding process may release a lock, as in Python") {
  mproc::lock l;
  REQUIRE(l.acquire());
  std::thread{[&] { l.release(); }}.join();
  CHECK_FALSE(l.locked());
}

TEST_CASE("a guard whose lock another thread released ends its scope without ending the program") {
  mproc::lock l;
  {
    auto held = l.hold();
    std::thread{[&] { l.release(); }}.join();
    CHECK_FALSE(l.locked());
  }  // the guard's own release fails: logged, not thrown out of its destructor
  CHECK_FALSE(l.locked());
  CHECK(l.acquire(false));
  l.release();
}

TEST_CASE("a lock held by a child keeps this process out until the child releases it") {
  test::scoped_node node;
  mproc::lock l;
  auto [p, go] = child_holding(*node, l);
  CHECK_FALSE(l.acquire(false));
  CHECK_FALSE(l.acquire(true, 100ms));
  CHECK(code_of([&] { auto g = l.hold(50ms); }) == errc::timeout);
  go.set();
  auto got = l.acquire(true, 10s);
  CHECK(got);
  CHECK_FALSE(got.owner_died);
  l.release();
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
}

TEST_CASE("a holder killed with SIGKILL does not leave the lock locked; the next acquirer is told") {
  test::scoped_node node;
  mproc::lock l;
  auto [p, go] = child_holding(*node, l);
  REQUIRE(::kill(p.pid(), SIGKILL) == 0);
  auto got = l.acquire(true, 10s);
  CHECK(got);
  CHECK(got.owner_died);
  l.release();
  auto again = l.acquire(false);
  CHECK(again);
  CHECK_FALSE(again.owner_died);
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == -SIGKILL);
}

TEST_CASE("a try on a lock whose holder died takes it at once") {
  test::scoped_node node;
  mproc::lock l;
  auto [p, go] = child_holding(*node, l);
  p.kill();
  REQUIRE(p.join(10s));
  auto got = l.acquire(false);
  CHECK(got);
  CHECK(got.owner_died);
}

TEST_CASE("a waiter killed while it waits leaves the lock to the others") {
  test::scoped_node node;
  mproc::lock l;
  REQUIRE(l.acquire());
  mproc::event waiting;
  auto p = node->spawn_process("wait_for_lock", {}, l, waiting);
  REQUIRE(waiting.wait(10s));
  REQUIRE(::kill(p.pid(), SIGKILL) == 0);
  REQUIRE(p.join(10s));
  l.release();
  auto got = l.acquire(true, 5s);
  CHECK(got);
  CHECK_FALSE(got.owner_died);
}

TEST_CASE("four processes counting under one lock lose no increment") {
  test::scoped_node node;
  mproc::lock l;
  mproc::shared_value<std::int64_t> counter{0, false};
  std::vector<mproc::process> workers;
  for (int i = 0; i < 4; ++i)
    workers.push_back(node->spawn_process("count_under_lock", {}, l, counter, std::int32_t{2000}));
  for (auto& w : workers) {
    REQUIRE(w.join(60s));
    CHECK(w.exitcode() == 0);
  }
  CHECK(counter.get() == 8000);
  CHECK_FALSE(l.locked());
}

TEST_CASE("an rlock is taken again by its thread, and by no other") {
  mproc::rlock l;
  REQUIRE(l.acquire());
  REQUIRE(l.acquire());
  bool other_got = true;
  std::thread{[&] { other_got = static_cast<bool>(l.acquire(true, 30ms)); }}.join();
  CHECK_FALSE(other_got);
  bool refused = false;
  std::thread{[&] { refused = code_of([&] { l.release(); }) == errc::bad_arguments; }}.join();
  CHECK(refused);
  l.release();
  CHECK(l.locked());
  l.release();
  CHECK_FALSE(l.locked());
  CHECK(code_of([&] { l.release(); }) == errc::bad_arguments);
}

TEST_CASE("an rlock held twice by a killed child is free for the next acquirer") {
  test::scoped_node node;
  mproc::rlock l;
  mproc::event held, go;
  auto p = node->spawn_process("hold_rlock", {}, l, held, go);
  REQUIRE(held.wait(10s));
  CHECK_FALSE(l.acquire(false));
  REQUIRE(::kill(p.pid(), SIGKILL) == 0);
  auto got = l.acquire(true, 10s);
  CHECK(got);
  CHECK(got.owner_died);
  l.release();  // one level: the dead holder's two are gone
  CHECK_FALSE(l.locked());
  REQUIRE(p.join(10s));
}

TEST_CASE("four processes counting under one rlock, taken twice each time, lose nothing") {
  test::scoped_node node;
  mproc::rlock l;
  mproc::shared_value<std::int64_t> counter{0, false};
  std::vector<mproc::process> workers;
  for (int i = 0; i < 4; ++i)
    workers.push_back(node->spawn_process("count_under_rlock", {}, l, counter, std::int32_t{1000}));
  for (auto& w : workers)
    REQUIRE(w.join(60s));
  CHECK(counter.get() == 4000);
}

TEST_CASE("a lock cannot travel inside a queue item, and says why") {
  test::scoped_node node;
  mproc::queue<mproc::lock> q{*node};
  mproc::lock l;
  CHECK(code_of([&] { q.put(l); }) != errc::none);
}

TEST_CASE("locks leave no descriptor and nothing in /dev/shm once their handles are gone") {
  test::scoped_node node;
  auto round = [&] {
    mproc::lock l;
    auto [p, go] = child_holding(*node, l);
    go.set();
    REQUIRE(p.join(10s));
  };
  round();  // the node's own descriptors (its fork server's) are open after a first child
  auto fds = test::entries("/proc/self/fd");
  auto shm = test::entries("/dev/shm");
  round();
  CHECK(test::entries("/proc/self/fd") == fds);
  CHECK(test::entries("/dev/shm") == shm);
}

TEST_CASE("a lock moved into a spawn throws when used afterwards, rather than crashing") {
  test::scoped_node node;
  mproc::lock l;
  mproc::event held, go;
  go.set();
  auto p = node->spawn_process("hold_lock", {}, std::move(l), held, go);
  REQUIRE(p.join(10s));
  CHECK(code_of([&] { l.acquire(); }) == errc::bad_arguments);
  CHECK(code_of([&] { l.release(); }) == errc::bad_arguments);
  CHECK_FALSE(l.locked());
}

TEST_CASE("a timeout too long to add to the clock waits rather than failing at once") {
  mproc::lock l;
  REQUIRE(l.acquire());
  std::atomic<bool> returned{false};
  bool got = false;
  std::thread waiter{[&] {
    got = static_cast<bool>(l.acquire(true, std::chrono::milliseconds::max()));
    returned = true;
  }};
  CHECK_FALSE(test::eventually(1s, [&] { return returned.load(); }));  // it waits
  l.release();
  waiter.join();
  CHECK(got);
}

TEST_CASE("a holder that cannot read /proc (no descriptor left) is not taken for dead") {
  // Its key had no start time, others read the real one: the keys differed, and its lock
  // was taken over within 50 ms as a dead holder's (owner_died), while it ran.
  test::scoped_node node;
  mproc::lock l;
  auto [p, go] = child_holding(*node, l, "hold_lock_without_fds");
  CHECK_FALSE(l.acquire(true, 1s));
  go.set();
  REQUIRE(p.join(10s));
  auto got = l.acquire(true, 10s);
  CHECK(got);
  CHECK_FALSE(got.owner_died);
}
