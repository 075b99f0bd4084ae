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

MPROC_ACTOR(taker);
MPROC_ACTOR(stops_at_sentinel);

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
