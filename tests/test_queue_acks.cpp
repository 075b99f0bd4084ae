// What a process took from a queue and has not acknowledged (mproc/actors/queue_acks.hpp):
// a thread's get finishes that thread's last items only, acknowledgments name items, and a
// task_done() reports the oldest item its thread took and did not report.
#include <catch2/catch.hpp>

#include "mproc/actors/queue_acks.hpp"

using mproc::detail::queue_acks;
using spans = queue_acks::spans;

TEST_CASE("a get finishes the items of its own thread's last get, not another thread's") {
  queue_acks a;
  a.took(1, {0, 2});  // thread 1 works on 0 and 1
  a.took(2, {2, 3});  // thread 2 on 2, 3 and 4
  CHECK(a.finish(2));
  CHECK_FALSE(a.finish(3));  // a thread that took nothing
  CHECK(a.claim_finished() == spans{2, 3});
  CHECK(a.claim_finished().empty());
  CHECK(a.any());  // thread 1's items are still open
  CHECK(a.claim_all() == spans{0, 2});
  // Acknowledged, all of it, yet still to be reported by each thread's task_done().
  CHECK(a.any());
  CHECK(a.claim_tasks(1, 2).empty());
  CHECK(a.claim_tasks(2, 3).empty());
  CHECK_FALSE(a.any());
}

TEST_CASE("a thread's finished gets are acknowledged as one span") {
  queue_acks a;
  for (std::uint64_t first : {0, 2, 4}) {
    a.took(7, {first, 2});
    a.finish(7);
  }
  a.took(7, {9, 1});  // after items another thread took
  a.finish(7);
  CHECK(a.claim_finished() == spans{0, 6, 9, 1});
}

TEST_CASE("task_done reports the oldest item its thread took and did not report") {
  queue_acks a;
  a.took(1, {0, 1});  // a
  a.finish(1);
  a.took(1, {1, 1});  // b, taken before a was processed
  CHECK(a.claim_tasks(1, 1) == spans{0, 1});  // a, not b
  CHECK(a.claim_tasks(1, 1) == spans{1, 1});  // then b
}

TEST_CASE("task_done for an item a fetch acknowledged already sends nothing more") {
  queue_acks a;
  a.took(1, {0, 1});
  a.finish(1);
  a.took(1, {1, 1});
  CHECK(a.claim_finished() == spans{0, 1});  // with a fetch
  CHECK(a.claim_tasks(1, 1).empty());         // a's task: acknowledged already
  CHECK(a.claim_tasks(1, 1) == spans{1, 1});  // b's
}

TEST_CASE("task_done in a thread that took fewer claims only finished items of others") {
  queue_acks a;
  a.took(2, {5, 1});
  a.finish(2);
  a.took(2, {6, 1});  // thread 2 still works on 6
  CHECK(a.claim_tasks(3, 2) == spans{5, 1});
  CHECK(a.claim_all() == spans{6, 1});
}

TEST_CASE("items untaken after a get are not acknowledged with it") {
  queue_acks a;
  a.took(1, {0, 5});
  a.untake(1, 3);
  a.finish(1);
  CHECK(a.claim_finished() == spans{0, 2});
  a.took(1, {2, 1});
  a.untake(1, 1);
  CHECK(a.claim_tasks(1, 5).empty());  // the two acknowledged ones; nothing open
  CHECK_FALSE(a.any());
}
