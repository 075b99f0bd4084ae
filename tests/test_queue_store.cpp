// What a queue holds (mproc/actors/queue_store.hpp), without the actor around it: the order
// items come out in, how much one take hands out, and what comes back from a consumer that
// leaves holding items; and when it recalls items (queue_recall.hpp).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>

#include "mproc/actors/queue_recall.hpp"
#include "mproc/actors/queue_store.hpp"

using namespace std::chrono_literals;
using mproc::detail::item_batch;
using mproc::detail::queue_recall;
using mproc::detail::queue_store;

namespace {

item_batch batch_of(std::vector<std::string> items) {
  item_batch b;
  for (auto& i : items)
    b.append(i);
  return b;
}

std::vector<std::string> items_in(const caf::message& reply) {
  const auto& b = reply.get_as<item_batch>(0);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < b.size(); ++i)
    out.emplace_back(b[i]);
  return out;
}

// Two consumers: the store tells them apart by address only.
struct consumers {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::actor a = sys.spawn([](caf::event_based_actor*) -> caf::behavior { return {[](int) {}}; });
  caf::actor b = sys.spawn([](caf::event_based_actor*) -> caf::behavior { return {[](int) {}}; });
  caf::actor_addr first = a.address();
  caf::actor_addr second = b.address();
  ~consumers() {
    caf::anon_send_exit(a, caf::exit_reason::kill);
    caf::anon_send_exit(b, caf::exit_reason::kill);
  }
};

} // namespace

TEST_CASE("items come out in the order they were put, across batches, at most max a take") {
  consumers c;
  queue_store s{0};
  s.put(batch_of({"1", "2", "3"}));
  s.put(batch_of({"4", "5"}));
  CHECK(s.size() == 5);
  CHECK(items_in(s.take(c.first, 2)) == std::vector<std::string>{"1", "2"});
  CHECK(items_in(s.take(c.second, 2)) == std::vector<std::string>{"3", "4"});
  CHECK(items_in(s.take(c.first, 9)) == std::vector<std::string>{"5"});
  CHECK(s.size() == 0);
  CHECK(s.accepted() == 5);
  CHECK(s.taken() == 5);
  CHECK(s.held() == 5);
}

TEST_CASE("a take stops at the batch size limit in bytes, but hands out at least one item") {
  consumers c;
  queue_store s{0};
  std::string big(mproc::detail::max_batch_bytes + 1, 'x');  // over the limit by itself
  s.put(batch_of({"small", big, "after"}));
  CHECK(items_in(s.take(c.first, 10)) == std::vector<std::string>{"small"});
  auto alone = items_in(s.take(c.first, 10));
  REQUIRE(alone.size() == 1);
  CHECK(alone[0] == big);
  CHECK(items_in(s.take(c.first, 10)) == std::vector<std::string>{"after"});
}

TEST_CASE("what a consumer holds unacknowledged goes back in front, in order, and only that") {
  consumers c;
  queue_store s{0};
  s.put(batch_of({"1", "2", "3"}));
  s.put(batch_of({"4", "5", "6"}));
  s.put(batch_of({"7"}));
  s.take(c.first, 2);   // 1 2
  s.take(c.second, 1);  // 3: another consumer's, not given back with the first's
  s.take(c.first, 2);   // 4 5
  s.acknowledge(c.first, 1);  // 1 is done
  CHECK(s.held() == 4);
  CHECK(s.give_back(c.first) == 3);  // 2, 4, 5
  CHECK(s.consumers() == 1);
  CHECK(s.size() == 5);
  CHECK(items_in(s.take(c.second, 10)) == std::vector<std::string>{"2", "4", "5", "6", "7"});
  CHECK(s.give_back(c.first) == 0);  // nothing twice
  CHECK(s.accepted() == 7);          // given back is not put again
  CHECK(s.taken() == 10);            // but handed out again
}

TEST_CASE("items a consumer gives back, named by their place in what it was handed, go in front") {
  consumers c;
  queue_store s{0};
  s.put(batch_of({"1", "2", "3"}));
  s.take(c.first, 3);  // handed 0..2: 1 2 3
  s.put(batch_of({"4", "5"}));
  s.take(c.first, 2);  // handed 3..4: 4 5
  s.put(batch_of({"6"}));
  s.acknowledge(c.first, 1);  // 1 is done
  CHECK(s.take_back(c.first, 2, 2) == 2);  // 3 and 4: the end of one run, the start of another
  CHECK(s.held_by(c.first) == 2);          // 2 and 5
  CHECK(s.size() == 3);
  CHECK(items_in(s.take(c.second, 10)) == std::vector<std::string>{"3", "4", "6"});
  CHECK(s.take_back(c.first, 0, 2) == 1);  // 1 was acknowledged: only 2 comes back
  s.acknowledge(c.first, 1);                // the oldest left, 5
  CHECK(s.held_by(c.first) == 0);
  CHECK(items_in(s.take(c.second, 10)) == std::vector<std::string>{"2"});
  CHECK(s.take_back(c.first, 4, 9) == 0);  // nothing twice
  CHECK(s.accepted() == 6);
}

TEST_CASE("acknowledging more than a consumer holds finishes what it holds and no more") {
  consumers c;
  queue_store s{0};
  s.put(batch_of({"1", "2"}));
  s.take(c.first, 2);
  s.acknowledge(c.first, 5);
  CHECK(s.held() == 0);
  CHECK(s.give_back(c.first) == 0);
  CHECK(s.size() == 0);
}

TEST_CASE("a bounded store has room up to maxsize, and for any batch once it is empty") {
  consumers c;
  queue_store s{3};
  CHECK(s.has_room(3));
  s.put(batch_of({"1", "2"}));
  CHECK(s.has_room(1));
  CHECK_FALSE(s.has_room(2));
  s.take(c.first, 2);
  CHECK(s.has_room(3));  // what consumers hold does not count against maxsize
  CHECK(s.has_room(5));  // a batch larger than maxsize gets in once the queue is empty
}

TEST_CASE("a recall round comes once a consumer found nothing for 50 ms, then ever later") {
  consumers c;
  queue_recall r;
  auto t0 = queue_recall::clock::now();
  auto waiting = [](const caf::actor_addr&) { return true; };
  auto token = r.hungry(c.first, t0);
  REQUIRE(token);
  CHECK_FALSE(r.hungry(c.second, t0));  // one timer at a time
  CHECK_FALSE(r.fire(*token + 1, t0 + 60ms, waiting).recall);  // not its token: nothing
  auto early = r.fire(*token, t0 + 20ms, waiting);             // too soon: again, later
  CHECK_FALSE(early.recall);
  REQUIRE(early.again);
  CHECK(*early.again == 30ms);
  auto first = r.fire(early.token, t0 + 50ms, waiting);
  CHECK(first.recall);
  CHECK(first.again == 100ms);
  auto second = r.fire(first.token, t0 + 150ms, waiting);
  CHECK(second.recall);
  CHECK(second.again == 200ms);
  r.fed(c.first);
  r.fed(c.second);
  CHECK_FALSE(r.fire(second.token, t0 + 350ms, waiting).again);  // nobody hungry: it stops
}

TEST_CASE("a consumer that only polled is hungry for one recall round") {
  consumers c;
  queue_recall r;
  auto t0 = queue_recall::clock::now();
  auto token = r.hungry(c.first, t0);
  REQUIRE(token);
  auto round = r.fire(*token, t0 + 50ms, [](const caf::actor_addr&) { return false; });
  CHECK(round.recall);
  CHECK_FALSE(round.again);
  CHECK_FALSE(r.is_hungry(c.first));
}
