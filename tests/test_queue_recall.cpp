// What a consumer fetched ahead and did not take does not stay with it while another
// consumer waits (docs/queue.md, "Shape": recall): a process that stops getting but lives on
// does not keep items, sentinels among them, from the others.
#include "mproc/actors/queue.hpp"

#include <vector>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
using int_queue = mproc::queue<std::int32_t>;

// Gets one item and says which on `told` (-1: none came within 20 s).
void taker(caf::blocking_actor*, int_queue q, int_queue told) {
  std::int32_t got = -1;
  try {
    got = q.get(20s);
  } catch (const mproc::error&) {
  }
  told.put(got);
}

// Gets until its sentinel (-1), says how many items came before it, and lives on without
// getting again until it is told to end, as a worker that waits at a barrier would.
void stops_at_sentinel(caf::blocking_actor* self, int_queue q, int_queue told) {
  std::int32_t n = 0;
  try {
    while (q.get(30s) != -1)
      ++n;
  } catch (const mproc::error&) {
    n = -1;  // no sentinel came
  }
  told.put(n);
  self->receive([](caf::get_atom) {});
}

// The same, asking in short gets, as a consumer polling between other work does.
void poller(caf::blocking_actor*, int_queue q, int_queue told) {
  std::int32_t got = -1;
  for (int i = 0; i < 2000 && got == -1; ++i)
    try {
      got = q.get(10ms);
    } catch (const mproc::error&) {
    }
  told.put(got);
}

// Takes one item, says so, and waits to be told to go on; then gets until a get fails and
// says how many items it got and the code of the failure.
void pauses_after_one(caf::blocking_actor* self, int_queue q, int_queue told) {
  told.put(static_cast<std::int32_t>(q.get_many(1).size()));
  self->receive([](caf::get_atom) {});
  std::int32_t n = 0;
  auto code = errc::none;
  while (code == errc::none)
    code = code_of([&] {
      q.get(10s);
      ++n;
    });
  told.put(n);
  told.put(static_cast<std::int32_t>(code));
}

MPROC_ACTOR(taker);
MPROC_ACTOR(poller);
MPROC_ACTOR(stops_at_sentinel);
MPROC_ACTOR(pauses_after_one);

TEST_CASE("an item a live consumer fetched and did not take goes to a consumer that waits") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  q.put_many({1, 2});
  REQUIRE(q.flush(10s));
  CHECK(q.get(10s) == 1);  // this process fetched both, in one batch, and took one
  auto c = node->spawn_process("taker", {}, q, told);
  CHECK(told.get(30s) == 2);  // the 2 was recalled from this process, which did not get again
  CHECK(c.join(10s));
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);  // not here twice
  CHECK(q.stats().redelivered == 0);  // given back untaken: not a redelivery
}

TEST_CASE("consumers that stop at their sentinel and live on each get one") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  constexpr int consumers = 3;
  constexpr std::int32_t items = 3000;
  std::vector<mproc::process> procs;
  for (int i = 0; i < consumers; ++i)
    procs.push_back(node->spawn_process("stops_at_sentinel", {}, q, told));
  std::vector<std::int32_t> all;
  for (std::int32_t i = 0; i < items; ++i)
    all.push_back(i);
  q.put_many(all);
  q.put_many(std::vector<std::int32_t>(consumers, -1));  // one batch: fetched together
  std::int32_t total = 0;
  for (int i = 0; i < consumers; ++i) {
    auto n = told.get(60s);
    CHECK(n >= 0);
    total += n;
  }
  CHECK(total == items);
  for (auto& p : procs) {
    p.terminate();
    CHECK(p.join(10s));
  }
}

TEST_CASE("a consumer asking in short gets is given what another fetched and did not take") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  q.put_many({1, 2});
  REQUIRE(q.flush(10s));
  CHECK(q.get(10s) == 1);
  auto c = node->spawn_process("poller", {}, q, told);
  CHECK(told.get(30s) == 2);  // no single get waited 50 ms: the consumer did, across them
  CHECK(c.join(10s));
}

TEST_CASE("a consumer told closed while it held items asks again once a recall took them") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  q.put_many({1, 2, 3, 4});
  REQUIRE(q.flush(10s));
  q.close();
  // It fetches all four and takes one; its prefetch is told `closed`, as only it holds items.
  auto holder = node->spawn_process("pauses_after_one", {}, q, told);
  REQUIRE(told.get(10s) == 1);
  // This one waits; the recall gives it half of the three (it takes one, and its process,
  // ending, gives the other back to the queue).
  auto t = node->spawn_process("taker", {}, q, told);
  CHECK(told.get(30s) > 1);
  CHECK(t.join(10s));
  caf::anon_send(holder.actor(), caf::get_atom::value);
  CHECK(told.get(30s) == 2);  // the one it kept, and the one given back to the queue
  CHECK(told.get(30s) == static_cast<std::int32_t>(errc::closed));
  holder.terminate();
  CHECK(holder.join(10s));
}
