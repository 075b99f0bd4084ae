// Items a killed consumer held go back to the queue (docs/queue.md, "Delivery guarantee"):
// what it already reported done is not given back to be done twice, and what comes back
// after the queue was closed still reaches a consumer.
#include "mproc/actors/queue.hpp"
#include "mproc/actors/queue_protocol.hpp"

#include <algorithm>
#include <mutex>
#include <string>
#include <future>
#include <thread>
#include <vector>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/value.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
using int_queue = mproc::queue<std::int32_t>;
using tasks = mproc::joinable_queue<std::int32_t>;

// Takes one item, reports it done, says so on `told`, and waits to be killed.
void finisher(caf::blocking_actor* self, tasks q, int_queue told) {
  told.put(q.get());
  q.task_done();
  told.put(-1);
  self->receive([](caf::get_atom) {});
}

// Takes `n` items without finishing them and says how many on `told`. Killed, or told to
// go on: then it gets until a get throws (on a closed queue), which acknowledges them,
// reports what that get threw, and waits to be killed (its process, ending, would leave
// the queue).
void holder(caf::blocking_actor* self, int_queue q, std::int32_t n, int_queue told) {
  told.put(static_cast<std::int32_t>(q.get_many(static_cast<std::size_t>(n)).size()));
  self->receive([](caf::get_atom) {});
  auto code = errc::none;
  while (code == errc::none)
    code = code_of([&] { q.get(10s); });
  told.put(static_cast<std::int32_t>(code));
  self->receive([](caf::get_atom) {});
}

// One thread takes an item and works on it for ever; then this one takes two and asks once
// more, which finishes them (and acknowledges them, the queue being empty); it says which
// items each thread took, on `told`, and waits to be killed.
void two_threads(caf::blocking_actor* self, int_queue q, int_queue told) {
  std::promise<std::int32_t> took;
  std::thread worker{[&] {
    took.set_value(q.get(10s));
    std::promise<void>{}.get_future().wait();  // still working when the process is killed
  }};
  told.put(took.get_future().get());
  auto a = q.get(10s);
  auto b = q.get(10s);
  code_of([&] { q.get(100ms); });
  told.put(a);
  told.put(b);
  self->receive([](caf::get_atom) {});
  worker.join();
}

// Takes two items, reports one task done (the first, processed meanwhile), says which it
// took, and waits to be killed.
void takes_two_reports_one(caf::blocking_actor* self, tasks q, int_queue told) {
  auto a = q.get(10s);
  auto b = q.get(10s);
  q.task_done();
  told.put(a);
  told.put(b);
  self->receive([](caf::get_atom) {});
}

// Takes one item, asks once more in vain (which acknowledges the first), reports it done;
// says so, then takes the next item put and reports it done too, says so, and waits to
// be killed.
void reports_after_a_failed_get(caf::blocking_actor* self, tasks q, int_queue told) {
  q.get(10s);
  code_of([&] { q.get(100ms); });
  q.task_done();
  told.put(1);
  q.get(10s);
  q.task_done();
  told.put(2);
  self->receive([](caf::get_atom) {});
}

MPROC_ACTOR(finisher);
MPROC_ACTOR(holder);
MPROC_ACTOR(two_threads);
MPROC_ACTOR(takes_two_reports_one);
MPROC_ACTOR(reports_after_a_failed_get);

TEST_CASE("an item a killed consumer reported done is not delivered again") {
  test::scoped_node node;
  tasks q{*node};
  int_queue told{*node};
  q.put(7);
  auto c = node->spawn_process("finisher", {}, q, told);
  CHECK(told.get(10s) == 7);
  REQUIRE(told.get(10s) == -1);  // its task_done() was answered
  CHECK(q.stats().unacknowledged == 0);  // and acknowledged the 7 with it
  q.put(8);  // after: the consumer's prefetch came back empty, so it holds only the 7
  c.kill();
  REQUIRE(c.join(10s));
  CHECK(q.get(10s) == 8);  // the 7 does not come back, to be done (and counted) again
  CHECK(q.stats().redelivered == 0);
  CHECK_FALSE(q.join(100ms));
  q.task_done();
  CHECK(q.join(10s));
}

TEST_CASE("a closed queue's get waits for what a consumer still holds, which comes back if it dies") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  for (std::int32_t i = 0; i < 3; ++i)
    q.put(i);
  REQUIRE(q.flush(10s));
  auto c = node->spawn_process("holder", {}, q, std::int32_t{3}, told);
  REQUIRE(told.get(10s) == 3);
  q.close();
  // Not closed yet: the holder may die, and its items would come back for nobody.
  CHECK(code_of([&] { q.get(200ms); }) == errc::empty);
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);
  c.kill();
  REQUIRE(c.join(10s));
  std::vector<std::int32_t> got;
  for (int i = 0; i < 3; ++i)
    got.push_back(q.get(10s));
  CHECK(got == std::vector<std::int32_t>{0, 1, 2});
  CHECK(code_of([&] { q.get(10s); }) == errc::closed);  // nothing is held any more
}

// A consumer in another process takes `take` of two items (with the queue closed before it
// starts, or after it took them) and holds them while this process's get waits at the closed
// queue; then it gets until a get throws. Its acknowledgment must end this process's wait.
void check_waiting_get_ends(std::int32_t take, bool closed_first) {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  q.put(1);
  q.put(2);
  REQUIRE(q.flush(10s));
  if (closed_first)
    q.close();
  auto c = node->spawn_process("holder", {}, q, take, told);
  REQUIRE(told.get(10s) == take);
  if (!closed_first)
    q.close();
  bool waited = false;
  std::thread go{[&] {
    auto waiting = [&] {
      auto v = node->request<mproc::value>(q.actor(), 10s, mproc::detail::q_inspect_atom::value);
      const auto* n = v.find("waiting_gets");
      return n != nullptr && n->as<std::int64_t>() == 1;
    };
    waited = test::eventually(10s, waiting);
    caf::anon_send(c.actor(), caf::get_atom::value);
  }};
  CHECK(code_of([&] { q.get(30s); }) == errc::closed);
  go.join();
  CHECK(waited);
  CHECK(told.get(10s) == static_cast<std::int32_t>(errc::closed));  // the holder's own end
  c.kill();
  CHECK(c.join(10s));
  CHECK(q.stats().redelivered == 0);  // it had acknowledged them
}

TEST_CASE("a get waiting on a closed queue ends with closed once the last holder acknowledges") {
  check_waiting_get_ends(2, false);
}

TEST_CASE("a consumer told closed while it still had items acknowledges them at its end") {
  // Its prefetch found the queue closed and drained but for what it held itself: its later
  // gets ask the queue for nothing, yet the one that ends must send what it took.
  check_waiting_get_ends(1, true);
}

TEST_CASE("handles of one queue in one process share what they fetched") {
  test::scoped_node node;
  int_queue q{*node, {.name = "shared"}};
  auto again = int_queue::lookup(*node, "shared", 10s);
  q.put(1);
  q.put(2);
  REQUIRE(q.flush(10s));
  CHECK(q.get(10s) == 1);  // its fetch brought both
  q.close();
  CHECK(again.get(10s) == 2);  // from the same inbox, not waiting for its own process
  CHECK(code_of([&] { again.get(10s); }) == errc::closed);
  CHECK(code_of([&] { q.get(10s); }) == errc::closed);
}

TEST_CASE("an item one thread works on comes back when its process is killed, though another thread got since") {
  test::scoped_node node;
  int_queue q{*node};
  int_queue told{*node};
  q.put_many({1, 2, 3});
  REQUIRE(q.flush(10s));
  auto c = node->spawn_process("two_threads", {}, q, told);
  auto working = told.get(10s);
  CHECK(told.get(10s) != working);
  CHECK(told.get(10s) != working);
  // The other thread's two are acknowledged; the worker's item is not.
  test::eventually(10s, [&] { return q.stats().unacknowledged == 1; });
  CHECK(q.stats().unacknowledged == 1);
  c.kill();
  REQUIRE(c.join(10s));
  CHECK(q.get(10s) == working);  // delivered again, to be done
  CHECK(q.stats().redelivered == 1);
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);
}

TEST_CASE("a task_done after a second get reports the first item, and the second comes back") {
  test::scoped_node node;
  tasks q{*node};
  int_queue told{*node};
  q.put_many({1, 2, 3});
  REQUIRE(q.flush(10s));
  auto c = node->spawn_process("takes_two_reports_one", {}, q, told);
  auto a = told.get(10s);
  auto b = told.get(10s);
  c.kill();
  REQUIRE(c.join(10s));
  std::vector<std::int32_t> back{q.get(10s), q.get(10s)};
  CHECK(std::count(back.begin(), back.end(), b) == 1);  // not reported: delivered again
  CHECK(std::count(back.begin(), back.end(), a) == 0);  // reported done: not again
  q.task_done();  // b's and 3's: with a's, every item was done once
  q.task_done();
  CHECK(q.join(10s));
}

TEST_CASE("an item reported done after a get that found nothing is not delivered again") {
  test::scoped_node node;
  tasks q{*node};
  int_queue told{*node};
  q.put(1);
  auto c = node->spawn_process("reports_after_a_failed_get", {}, q, told);
  REQUIRE(told.get(10s) == 1);
  q.put(2);
  REQUIRE(told.get(10s) == 2);
  // Both reported done, so both acknowledged: nothing held, before the kill or after it.
  test::eventually(10s, [&] { return q.stats().unacknowledged == 0; });
  CHECK(q.stats().unacknowledged == 0);
  c.kill();
  REQUIRE(c.join(10s));
  CHECK(q.stats().redelivered == 0);
  CHECK(q.join(10s));
}

TEST_CASE("a get sent anonymously is refused and strands nothing; a closed queue still ends its getters") {
  test::scoped_node node;
  int_queue q{*node};
  for (std::int32_t i = 0; i < 10; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  // No sender the queue could watch: what these took would be held by nobody for ever.
  caf::anon_send(q.actor(), mproc::detail::q_getnow_atom::value, std::uint32_t{512},
                 std::uint64_t{0});
  caf::anon_send(q.actor(), mproc::detail::q_get_atom::value, std::uint32_t{512},
                 std::uint64_t{0});
  auto stats = q.stats();  // asked after them: a local actor's mailbox is one line
  CHECK(stats.size == 10);
  CHECK(stats.unacknowledged == 0);
  for (std::int32_t i = 0; i < 10; ++i)
    CHECK(q.get(5s) == i);
  q.close();
  CHECK(code_of([&] { q.get(10s); }) == errc::closed);
}

TEST_CASE("a put sent anonymously to a full queue waits; no message from nobody takes the queue down") {
  // It parks until there is room, as any put; nobody to watch (an anonymous address in the
  // queue's hash sets crashed the whole process).
  test::scoped_node node;
  int_queue q{*node, {.maxsize = 2}};
  q.put(1);
  q.put(2);
  REQUIRE(q.flush(5s));
  mproc::detail::item_batch batch;
  batch.append(std::string_view{"\x03", 1});  // 3, as msgpack
  caf::anon_send(q.actor(), mproc::detail::q_put_atom::value, std::move(batch));
  // What a consumer's agent sends, from nobody: there is nothing of nobody's to find.
  caf::anon_send(q.actor(), mproc::detail::q_cancel_atom::value);
  caf::anon_send(q.actor(), mproc::detail::q_leave_atom::value, std::uint64_t{1});
  caf::anon_send(q.actor(), mproc::detail::q_done_atom::value, std::uint64_t{0},
                 std::uint64_t{1});
  caf::anon_send_exit(q.actor(), caf::exit_reason::normal);  // no request to end
  CHECK(q.stats().size == 2);  // asked after them: the queue lives, the put waits
  CHECK(q.get(5s) == 1);
  CHECK(q.get(5s) == 2);
  CHECK(q.get(5s) == 3);  // in once there was room
}

TEST_CASE("another actor cannot make a process's queue agent leave, flush or fetch") {
  // The agent is the sender of this process's gets and puts, so the queue's process and its
  // peers can reach it; what the handles tell it must not come from them. A stand-in for
  // the queue records what the agent sends it.
  test::scoped_node node;
  struct record {
    std::mutex m;
    caf::actor_addr agent;
    std::vector<std::string> got;
  };
  auto seen = std::make_shared<record>();
  auto stand_in = node->system().spawn([seen](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler([seen, self](caf::scheduled_actor*, caf::message_view& x)
                                -> caf::result<caf::message> {
      std::lock_guard guard{seen->m};
      seen->agent = caf::actor_cast<caf::actor_addr>(self->current_sender());
      seen->got.push_back(caf::to_string(x.content().get_as<caf::atom_value>(0)));
      return mproc::make_error(errc::empty, "a stand-in");
    });
    return {[] {}};
  });
  mproc::detail::queue_core q{stand_in, 0};
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);  // through the agent
  caf::actor agent;
  {
    std::lock_guard guard{seen->m};
    REQUIRE(seen->got == std::vector<std::string>{"q_getnow"});
    agent = caf::actor_cast<caf::actor>(seen->agent);
  }
  REQUIRE(agent);
  caf::anon_send(agent, mproc::detail::q_leave_atom::value, std::vector<std::uint64_t>{0, 1});
  caf::anon_send(agent, caf::atom("q_flush"));  // the atoms they were
  caf::anon_send(agent, caf::atom("q_fetch"), true);
  caf::anon_send(agent, mproc::detail::q_cancel_atom::value);
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);  // behind them in its mailbox
  std::lock_guard guard{seen->m};
  CHECK(seen->got == std::vector<std::string>{"q_getnow", "q_getnow"});  // nothing forged
}

TEST_CASE("puts refused by another process's close() are logged where they were put") {
  test::stderr_capture err;  // before the node: its children's stderr too
  test::scoped_node node;
  int_queue q{*node, {.maxsize = 1}};
  q.put(1);
  std::thread putter{[&] { code_of([&] { q.put(2); }); }};  // held while the queue is full
  caf::anon_send(q.actor(), mproc::detail::q_close_atom::value);  // as another's close()
  putter.join();
  CHECK(test::eventually(10s, [&] {
    return err.text().find("put by this process were refused") != std::string::npos;
  }));
}
