// Queue and JoinableQueue: Python's API, its error paths, and the delivery guarantee with
// real producer and consumer processes.
#include "mproc/actors/queue.hpp"
#include "mproc/actors/queue_protocol.hpp"

#include <algorithm>
#include <numeric>
#include <set>
#include <thread>

#include <caf/blocking_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
using int_queue = mproc::queue<std::int32_t>;

namespace {

// Puts `count` numbers starting at `from`.
void producer(caf::blocking_actor*, int_queue q, std::int32_t from, std::int32_t count) {
  for (std::int32_t i = from; i < from + count; ++i)
    q.put(i);
}

// Takes `n` items, hands them on to `out`, and ends (its prefetched rest goes back).
void taker(caf::blocking_actor*, int_queue q, std::int32_t n, int_queue out) {
  for (std::int32_t i = 0; i < n; ++i)
    out.put(q.get());
}

// Takes an item with get_nowait (asked of the queue: the inbox is empty), then one with get
// (a batch arrives: one taken, the rest prefetched), hands both on to `out`, and ends.
void nowait_taker(caf::blocking_actor*, int_queue q, int_queue out) {
  out.put(q.get_nowait());
  out.put(q.get(std::chrono::seconds{10}));
}

// Finds the queue by name and puts `count` numbers into it.
void named_producer(caf::blocking_actor*, std::string name, std::int32_t count) {
  auto q = int_queue::lookup(mproc::this_node(), name);
  for (std::int32_t i = 0; i < count; ++i)
    q.put(i);
}

// Starts a named_producer of its own: the lookup climbs two levels.
void grandparent_of_producer(caf::blocking_actor*, std::string name, std::int32_t count) {
  auto p = mproc::this_node().spawn_process("named_producer", {}, name, count);
  p.join();
}

// Takes a batch and never finishes it: killed by the test while holding it.
void hoarder(caf::blocking_actor* self, int_queue q, int_queue told) {
  auto held = q.get_many(100);
  told.put(static_cast<std::int32_t>(held.size()));
  self->receive([](caf::get_atom) {});
}

// Puts `n` numbers from `from` into the queue each message brings, and closes it if asked:
// the handle goes with the message, so each message makes this process's client anew.
caf::behavior relay_producer(caf::event_based_actor*) {
  return {[](int_queue q, std::int32_t from, std::int32_t n, bool close_after) {
    for (std::int32_t i = from; i < from + n; ++i)
      q.put(i);
    if (close_after)
      q.close();
    return n;
  }};
}

std::vector<std::int32_t> drain(int_queue& q, std::size_t n) {
  std::vector<std::int32_t> out;
  while (out.size() < n)
    for (auto x : q.get_many(n - out.size(), 10s))
      out.push_back(x);
  return out;
}

} // namespace

MPROC_ACTOR(producer);
MPROC_ACTOR(relay_producer);
MPROC_ACTOR(taker);
MPROC_ACTOR(nowait_taker);
MPROC_ACTOR(hoarder);
MPROC_ACTOR(named_producer);
MPROC_ACTOR(grandparent_of_producer);

TEST_CASE("put and get keep FIFO order within one process") {
  test::scoped_node node;
  int_queue q{*node};
  for (std::int32_t i = 0; i < 1000; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  CHECK(q.qsize() == 1000);
  CHECK_FALSE(q.empty());
  for (std::int32_t i = 0; i < 1000; ++i)
    CHECK(q.get() == i);
  CHECK(q.empty());
}

TEST_CASE("a get or put with a timeout of milliseconds::max() waits as long as it takes") {
  // now() + milliseconds::max() overflowed into the past: the get failed with empty at once.
  test::scoped_node node;
  int_queue q{*node};
  auto p = node->spawn_process("producer", {}, q, std::int32_t{7}, std::int32_t{2});
  CHECK(q.get(std::chrono::milliseconds::max()) == 7);  // before the child has started
  CHECK(q.get(std::chrono::hours{24 * 365 * 300}) == 8);
  q.put(9, std::chrono::milliseconds::max());
  CHECK(q.get(std::chrono::seconds::max()) == 9);
  CHECK(p.join(10s));
}

TEST_CASE("a get with a timeout of zero takes an item the queue holds, as get_nowait does") {
  // It sent a fetch and gave up at once: empty, with what the fetch brought left prefetched.
  test::scoped_node node;
  int_queue q{*node};
  for (std::int32_t i = 0; i < 100; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  for (std::int32_t i = 0; i < 100; ++i)
    REQUIRE(q.get(0ms) == i);
  CHECK(code_of([&] { q.get(0ms); }) == errc::empty);
}

TEST_CASE("a put with a timeout never raises full on an unbounded queue, as in Python") {
  // Large items fill the batch under way at once: the put waited for it, then gave up.
  test::scoped_node node;
  mproc::queue<std::string> q{*node};
  std::string big(400 << 10, 'x');
  for (int i = 0; i < 20; ++i)
    q.put(big, 0ms);
  REQUIRE(q.flush(10s));
  CHECK(q.qsize() == 20);
  std::size_t got = 0;
  while (got < 20)
    got += q.get_many(20, 5s).size();
  CHECK(got == 20);
}

TEST_CASE("every timeout and error path raises the matching code") {
  test::scoped_node node;
  int_queue q{*node, {.maxsize = 2}};
  CHECK(q.maxsize() == 2);
  CHECK(code_of([&] { q.get(50ms); }) == errc::empty);
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);
  // The timed-out get does not keep waiting at the queue: what comes next stays there.
  q.put(1);
  q.put(2);
  REQUIRE(q.flush(5s));
  CHECK(q.full());
  CHECK(code_of([&] { q.put_nowait(3); }) == errc::full);
  // A process runs at most maxsize items ahead of a full queue: 3 and 4 wait in this
  // process, 5 waits in put() and gives up.
  q.put(3);
  q.put(4);
  CHECK(code_of([&] { q.put(5, 100ms); }) == errc::full);
  CHECK(q.get() == 1);
  CHECK(q.get() == 2);
  CHECK(q.get(5s) == 3);
  CHECK(q.get(5s) == 4);
  q.close();
  CHECK(code_of([&] { q.put(4); }) == errc::closed);
  CHECK(code_of([&] { q.get(); }) == errc::closed);
  CHECK(code_of([&] { q.get_nowait(); }) == errc::closed);
  int_queue invalid;
  CHECK_THROWS_AS(invalid.put(1), std::logic_error);
}

TEST_CASE("a handle that arrives again after the last one went puts on, in order, then closes") {
  // Each message brings the handle anew: its process's client is made again each time (and
  // shares the channel of the last one while that one's puts still go out).
  test::scoped_node node;
  int_queue q{*node};
  auto p = node->spawn_process("relay_producer", {});
  CHECK(node->request<std::int32_t>(p.actor(), 10s, q, 0, 20000, false) == 20000);
  CHECK(node->request<std::int32_t>(p.actor(), 10s, q, 20000, 10, true) == 10);
  std::vector<std::int32_t> got;
  while (got.size() < 20010) {
    try {
      for (auto x : q.get_many(1000, 10s))
        got.push_back(x);
    } catch (const mproc::error& e) {
      CHECK(e.code() == errc::closed);
      break;
    }
  }
  std::vector<std::int32_t> want(20010);
  std::iota(want.begin(), want.end(), 0);
  CHECK(got == want);
  p.terminate();
  CHECK(p.join(10s));
}

TEST_CASE("a consumer whose prefetch came back empty still gets what is put later") {
  test::scoped_node node;
  int_queue q{*node};
  for (int round = 0; round < 50; ++round) {
    q.put(round);
    CHECK(q.get() == round);  // leaves the buffer empty: a prefetch goes out and finds nothing
    std::thread later{[&] {
      std::this_thread::sleep_for(2ms);
      q.put(-round);
    }};
    CHECK(q.get(5s) == -round);  // must not wait on the prefetch's empty answer forever
    later.join();
  }
}

TEST_CASE("close lets consumers drain what is left before they see closed") {
  test::scoped_node node;
  int_queue q{*node};
  q.put(7);
  q.put(8);
  q.close();
  CHECK(q.get() == 7);
  CHECK(q.get() == 8);
  CHECK(code_of([&] { q.get(1s); }) == errc::closed);
}

TEST_CASE("items put by child processes all arrive, each exactly once") {
  test::scoped_node node;
  int_queue q{*node};
  std::vector<mproc::process> producers;
  for (std::int32_t p = 0; p < 3; ++p)
    producers.push_back(node->spawn_process("producer", {}, q, p * 10000, std::int32_t{10000}));
  auto got = drain(q, 30000);
  for (auto& p : producers)
    CHECK(p.join(10s));
  std::sort(got.begin(), got.end());
  std::vector<std::int32_t> want(30000);
  std::iota(want.begin(), want.end(), 0);
  CHECK(got == want);
}

TEST_CASE("a consumer that ends returns what it prefetched but did not take") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue taken{*node};
  for (std::int32_t i = 0; i < 1000; ++i)
    q.put(i);
  auto c = node->spawn_process("taker", {}, q, std::int32_t{3}, taken);
  REQUIRE(c.join(10s));
  CHECK(c.exitcode() == 0);
  auto by_child = drain(taken, 3);
  auto rest = drain(q, 997);
  std::set<std::int32_t> all(rest.begin(), rest.end());
  all.insert(by_child.begin(), by_child.end());
  CHECK(all.size() == 1000);
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);  // nothing delivered twice
  auto stats = q.stats();
  CHECK(stats.accepted == 1000);
  CHECK(stats.redelivered == 0);  // a clean end acknowledges; nothing is handed out again
}

TEST_CASE("leaving gives back what was handed out and not taken, even a batch still on its way") {
  // The race of issue 11: a consumer leaves while a prefetch is in flight. Here the batch is
  // never even read: leaving says 100 were taken, so the other 200 must come back.
  test::scoped_node node;
  int_queue q{*node};
  for (std::int32_t i = 0; i < 1000; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  {
    caf::scoped_actor consumer{node->system()};
    consumer->send(q.actor(), mproc::detail::q_getnow_atom::value, std::uint32_t{300},
                   std::uint64_t{0});
    bool confirmed = false;
    consumer->request(q.actor(), 10s, mproc::detail::q_leave_atom::value, std::uint64_t{100})
      .receive([&] { confirmed = true; }, [](caf::error&) {});
    CHECK(confirmed);
  }
  auto stats = q.stats();
  CHECK(stats.size == 900);
  CHECK(stats.unacknowledged == 0);
  CHECK(stats.redelivered == 0);
  std::vector<std::int32_t> want(900);
  std::iota(want.begin(), want.end(), 100);  // given back at the front, in their order
  CHECK(drain(q, 900) == want);
}

TEST_CASE("an item taken by get_nowait is acknowledged with the others when the consumer leaves") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue out{*node};
  for (std::int32_t i = 0; i < 100; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  // The child takes 2 and ends: it leaves, and the prefetched rest goes back.
  auto c = node->spawn_process("nowait_taker", {}, q, out);
  REQUIRE(c.join(10s));
  CHECK(c.exitcode() == 0);
  CHECK(q.stats().unacknowledged == 0);  // it waited for the queue to confirm its leave
  CHECK(q.stats().size == 98);
  std::set<std::int32_t> all;
  for (auto x : drain(out, 2))
    all.insert(x);
  for (auto x : drain(q, 98))
    all.insert(x);
  CHECK(all.size() == 100);
}

TEST_CASE("items held by a consumer that is killed go to another consumer") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  for (std::int32_t i = 0; i < 500; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  auto c = node->spawn_process("hoarder", {}, q, told);
  CHECK(told.get(10s) == 100);
  c.kill();
  REQUIRE(c.join(5s));
  auto all = drain(q, 500);
  CHECK(std::set<std::int32_t>(all.begin(), all.end()).size() == 500);
  CHECK(q.stats().redelivered >= 100);  // at least what it took; its prefetch came back too
}

TEST_CASE("a bounded queue never holds more than maxsize items") {
  test::scoped_node node;
  int_queue q{*node, {.maxsize = 50}};
  auto p = node->spawn_process("producer", {}, q, std::int32_t{0}, std::int32_t{5000});
  std::size_t most = 0;
  std::size_t taken = 0;
  while (taken < 5000) {
    most = std::max(most, q.qsize());
    taken += q.get_many(10, 10s).size();
    std::this_thread::sleep_for(100us);  // a slow consumer
  }
  CHECK(most <= 50);
  CHECK(p.join(10s));
}

TEST_CASE("a queue is found by name from a child and a grandchild") {
  test::scoped_node node;
  int_queue q{*node, {.name = "jobs"}};
  auto child = node->spawn_process("named_producer", {}, std::string{"jobs"}, std::int32_t{100});
  auto grandchild_parent =
    node->spawn_process("grandparent_of_producer", {}, std::string{"jobs"}, std::int32_t{100});
  CHECK(drain(q, 200).size() == 200);
  CHECK(child.join(10s));
  CHECK(grandchild_parent.join(10s));
  CHECK(child.exitcode() == 0);
  CHECK(grandchild_parent.exitcode() == 0);
}

TEST_CASE("looking up a name nobody registered is no_such_actor; names are unique") {
  test::scoped_node node;
  CHECK(code_of([&] { int_queue::lookup(*node, "nobody", 1s); }) == errc::no_such_actor);
  int_queue q{*node, {.name = "taken"}};
  CHECK(code_of([&] { int_queue{*node, {.name = "taken"}}; }) == errc::bad_arguments);
}

TEST_CASE("a queue handle of another item type is refused at spawn") {
  test::scoped_node node;
  mproc::queue<std::string> strings{*node};
  CHECK(code_of([&] { node->spawn_process("producer", {}, strings, 0, 1); }) == errc::bad_arguments);
}

TEST_CASE("on a full queue nobody drains, put_nowait() fails at once and close() gives up") {
  test::scoped_node node;
  int_queue q{*node, {.maxsize = 1}};
  q.put(1);
  REQUIRE(q.flush(5s));
  q.put(2);  // held back by the full queue
  CHECK(code_of([&] { q.put_nowait(3); }) == errc::full);  // not waiting behind the 2
  q.close();  // after 10 s without the queue accepting anything (it logs the loss)
  CHECK(code_of([&] { q.put(3); }) == errc::closed);
  CHECK(q.get(5s) == 1);
  CHECK(code_of([&] { q.get(5s); }) == errc::closed);
  CHECK(q.stats().accepted == 1);
}

TEST_CASE("JoinableQueue: join waits until every item was task_done") {
  test::scoped_node node;
  mproc::joinable_queue<std::int32_t> q{*node};
  q.put(1);
  q.put(2);
  CHECK_FALSE(q.join(50ms));
  q.get();
  q.task_done();
  CHECK_FALSE(q.join(50ms));
  q.get();
  q.task_done();
  CHECK(q.join(1s));
  CHECK(code_of([&] { q.task_done(); }) == errc::bad_arguments);
}

TEST_CASE("JoinableQueue: a join(timeout) that timed out is let go of by the queue") {
  // The queue held every join until the tasks were done: a caller looping on join(timeout)
  // left one waiting promise behind per call.
  test::scoped_node node;
  mproc::joinable_queue<std::int32_t> q{*node};
  q.put(1);
  for (int i = 0; i < 3; ++i)
    CHECK_FALSE(q.join(20ms));
  auto joins_waiting = [&] {
    auto v = node->request<mproc::value>(q.actor(), 10s, mproc::detail::q_inspect_atom::value);
    const auto* n = v.find("waiting_joins");
    return n == nullptr ? -1 : n->as<std::int64_t>();
  };
  CHECK(test::eventually(10s, [&] { return joins_waiting() == 0; }));
  std::thread finisher{[&] {
    q.get(10s);
    q.task_done();
  }};
  CHECK(q.join(30s));  // answered when the task is done, as before
  finisher.join();
  CHECK(joins_waiting() == 0);
}

TEST_CASE("JoinableQueue: a task_done() right after a put() counts that put, as in Python") {
  // The queue counts a task when it accepts the put's batch: a task_done() sent at once
  // overtook it (bad_arguments here; in a worker that puts while finishing its task, join()
  // could return before the new item was done).
  test::scoped_node node;
  mproc::joinable_queue<std::int32_t> q{*node};
  for (std::int32_t i = 0; i < 50; ++i) {
    q.put(i);
    q.task_done();
  }
  CHECK(q.join(5s));
  CHECK(q.get(5s) == 0);
}

TEST_CASE("JoinableQueue: join(timeout) returns in time while a full queue holds puts back") {
  test::scoped_node node;
  mproc::joinable_queue<std::int32_t> q{*node, {.maxsize = 1}};
  q.put(1);
  REQUIRE(q.flush(5s));
  q.put(2);  // held back by the full queue: join waits for it to be accepted first
  CHECK_FALSE(q.join(200ms));
  CHECK(q.get(5s) == 1);
  q.task_done();
  CHECK(q.get(5s) == 2);
  q.task_done();
  CHECK(q.join(10s));
}
