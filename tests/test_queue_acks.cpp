// What a process took from a queue and has not acknowledged (mproc/actors/queue_acks.hpp):
// a thread's get finishes that thread's last items only, and acknowledgments name items.
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
  CHECK_FALSE(a.any());
}

TEST_CASE("finished items that touch are acknowledged as one span") {
  queue_acks a;
  for (std::uint64_t first : {4, 0, 2}) {
    a.took(7, {first, 2});
    a.finish(7);
  }
  a.took(7, {9, 1});
  a.finish(7);
  CHECK(a.claim_finished() == spans{0, 6, 9, 1});
}

TEST_CASE("task_done claims its thread's last items first, then finished ones") {
  queue_acks a;
  a.took(1, {0, 2});
  a.finish(1);        // 0 and 1 finished
  a.took(1, {5, 2});  // working on 5 and 6
  a.took(2, {2, 1});  // another thread on 2
  CHECK(a.claim_tasks(1, 3) == spans{5, 2, 0, 1});
  CHECK(a.claim_tasks(3, 5) == spans{1, 1});  // a thread that took nothing: finished only
  CHECK(a.claim_all() == spans{2, 1});        // never another thread's open items
}

TEST_CASE("items untaken after a get are not acknowledged with it") {
  queue_acks a;
  a.took(1, {0, 5});
  a.untake(1, 3);
  a.finish(1);
  CHECK(a.claim_finished() == spans{0, 2});
  a.took(1, {2, 1});
  a.untake(1, 1);
  CHECK_FALSE(a.any());
}
