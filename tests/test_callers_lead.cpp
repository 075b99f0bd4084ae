// A loop left to callers (io_loop::lead_for): the caller that comes next leads it, and
// nothing the node needs waits for a caller that does not come: the standby takes the loop
// back at its tick, and at once for a task, a write, or a caller that will block.
// Run twice: as it is, and confined to one CPU (MPROC_TEST_ONE_CPU), where node::request's
// callers lead the loop for real.
#include "mproc/runtime/internal/io_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/spin.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::detail::io_loop;

namespace {

// Work done at once: the loop's threads take turns with it as with actors.
class no_work final : public io_loop::batch_work {
public:
  bool pending() const override { return false; }
  void run() override {}
  void hand_over() override {}
  void abandon() override {}
  void retire() override {}
};

// An eventfd in a loop, and which thread handled its last event. Declared after the loop:
// it leaves the loop before the loop stops.
class watched_fd {
public:
  // `like_a_link`: a caller leading the loop may handle it (io_loop::add).
  explicit watched_fd(io_loop& loop, bool like_a_link = true)
    : loop_(loop), fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    REQUIRE(fd_ >= 0);
    std::promise<std::uint64_t> added;
    loop.post([&] {
      added.set_value(loop.add(
        fd_, EPOLLIN, [this](std::uint32_t events) { on_event(events); }, like_a_link));
    });
    token_ = added.get_future().get();
  }
  ~watched_fd() {
    std::promise<void> removed;
    loop_.post([&] {
      loop_.remove(token_, fd_);
      removed.set_value();
    });
    removed.get_future().wait();
    ::close(fd_);
  }

  void signal() {
    std::uint64_t one = 1;
    REQUIRE(::write(fd_, &one, sizeof one) == sizeof one);
  }
  // An eventfd is always writable: asking for EPOLLOUT is answered at the next wait.
  void want_write() { loop_.modify(token_, fd_, EPOLLIN | EPOLLOUT); }

  bool handled() const { return handled_by_.load() != std::thread::id{}; }
  std::thread::id handled_by() const { return handled_by_.load(); }
  // Waits (bounded) until an event was handled; the id of the thread that did.
  std::thread::id wait_handled(std::chrono::seconds bound = 5s) {
    auto until = std::chrono::steady_clock::now() + bound;
    while (!handled() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(1ms);  // polling for a state change, not ordering
    return handled_by_.load();
  }

private:
  void on_event(std::uint32_t events) {
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(fd_, &count, sizeof count);
    if (events & EPOLLOUT)
      loop_.modify(token_, fd_, EPOLLIN);
    handled_by_ = std::this_thread::get_id();
  }

  io_loop& loop_;
  int fd_;
  std::uint64_t token_ = 0;
  std::atomic<std::thread::id> handled_by_{};
};

io_loop::clock::time_point in(io_loop::clock::duration d) {
  return io_loop::clock::now() + d;
}

// Has the loop's leader leave it to callers after a batch (as when it hands a reply to a
// caller that would lead), then leads it from this thread until `done`. The leader leaves
// only while the other thread stands by, so this asks again until it is left.
bool lead_once_left(io_loop& loop, const std::function<bool()>& done,
                    io_loop::clock::time_point deadline, bool poll = false) {
  for (int i = 0; i < 2'000; ++i) {
    if (loop.lead_for(done, deadline, poll))
      return true;
    loop.post([&loop] { loop.leave_to_callers_after_batch(); });
    std::this_thread::sleep_for(1ms);  // polling for a state change, not ordering
  }
  return false;
}

void start(io_loop& loop) {
  loop.start([] { return std::make_unique<no_work>(); });
}

// A loop with no tick (only what the test does takes it back), an eventfd in it, and the
// loop left to callers by this thread.
struct left_to_callers {
  left_to_callers() { REQUIRE(lead_once_left(loop, [] { return true; }, in(10s))); }

  io_loop loop{std::chrono::hours{1}};
  bool started = (start(loop), true);
  watched_fd fd{loop};
};

} // namespace

TEST_CASE("a caller leads a loop left to callers: what comes meanwhile runs on its thread") {
  io_loop loop{std::chrono::hours{1}};  // no tick: only the caller can lead it
  start(loop);
  watched_fd fd{loop};
  bool signalled = false;
  auto done = [&] {
    if (!std::exchange(signalled, true))
      fd.signal();  // comes while this thread leads
    return fd.handled();
  };
  REQUIRE(lead_once_left(loop, done, in(10s)));
  CHECK(fd.handled_by() == std::this_thread::get_id());
  CHECK(loop.lead_for([] { return true; }, in(1s)));  // it is left to callers again
}

TEST_CASE("a caller leading the loop leaves what is not a link's to the loop's own threads") {
  // A child's end, a task, a timer may run a user's callback: never on a caller's thread.
  io_loop loop{std::chrono::hours{1}};
  start(loop);
  watched_fd fd{loop, false};
  bool signalled = false;
  auto done = [&] {
    if (!std::exchange(signalled, true))
      fd.signal();
    return fd.handled();
  };
  REQUIRE(lead_once_left(loop, done, in(10s)));  // hands the loop back at the event
  auto by = fd.wait_handled();
  CHECK(by != std::thread::id{});
  CHECK(by != std::this_thread::get_id());
}

TEST_CASE("a loop left to callers and not led again is taken back at the standby's tick") {
  io_loop loop;  // the default tick
  start(loop);
  watched_fd fd{loop};
  REQUIRE(lead_once_left(loop, [] { return true; }, in(10s)));
  fd.signal();  // nobody waits in epoll_wait now, and this thread does not come back
  auto by = fd.wait_handled();
  CHECK(by != std::thread::id{});
  CHECK(by != std::this_thread::get_id());
}

TEST_CASE("a task posted to a loop left to callers takes it back at once") {
  io_loop loop{std::chrono::hours{1}};
  start(loop);
  REQUIRE(lead_once_left(loop, [] { return true; }, in(10s)));
  std::promise<std::thread::id> ran;
  loop.post([&] { ran.set_value(std::this_thread::get_id()); });
  auto task = ran.get_future();
  REQUIRE(task.wait_for(5s) == std::future_status::ready);
  CHECK(task.get() != std::this_thread::get_id());
  loop.stop();
}

TEST_CASE_METHOD(left_to_callers,
                 "a write waiting for a loop left to callers takes it back at once") {
  fd.want_write();
  CHECK(fd.wait_handled() != std::thread::id{});
}

TEST_CASE_METHOD(left_to_callers,
                 "a caller that left the loop and will block gives it back at once") {
  io_loop::will_block();  // as every blocking call of mproc says before it waits
  fd.signal();
  CHECK(fd.wait_handled() != std::thread::id{});
}

TEST_CASE("a caller leading the loop returns at its deadline when nothing comes") {
  io_loop loop{std::chrono::hours{1}};  // no timers, no tick: only the deadline ends the wait
  start(loop);
  auto led = std::async(std::launch::async, [&] {
    return lead_once_left(loop, [] { return false; }, in(300ms));
  });
  bool returned = led.wait_for(10s) == std::future_status::ready;
  if (!returned)
    loop.post([] {});  // wakes a caller stuck in epoll_wait, so the test can end
  CHECK(returned);
  CHECK(led.get());
  loop.stop();
}

TEST_CASE("a caller polling the loop sees an answer that comes without an event") {
  // A reply may come from another thread (an ended receiver, the node's end) with nothing
  // for epoll_wait to see: a caller that polls must notice it, as a spinning one would.
  io_loop loop{std::chrono::hours{1}};  // no timers, no tick
  start(loop);
  std::atomic<bool> answered{false};
  std::promise<void> leading;
  bool asked = false;
  auto led = std::async(std::launch::async, [&] {
    return lead_once_left(loop, [&] {
      if (!std::exchange(asked, true))
        leading.set_value();  // asked first while it leads: it waits for events next
      return answered.load();
    }, in(1h), true);
  });
  REQUIRE(leading.get_future().wait_for(10s) == std::future_status::ready);
  answered = true;
  bool returned = led.wait_for(10s) == std::future_status::ready;
  if (!returned)
    loop.post([] {});  // wakes a caller stuck in epoll_wait, so the test can end
  CHECK(returned);
  CHECK(led.get());
  CHECK(loop.lead_for([] { return true; }, in(1s)));  // answered: left to callers again
  loop.stop();
}

TEST_CASE("a caller whose lead ends unanswered gives the loop back to its threads at once") {
  io_loop loop{std::chrono::hours{1}};
  start(loop);
  watched_fd fd{loop};
  REQUIRE(lead_once_left(loop, [] { return false; }, in(200ms), true));
  fd.signal();  // this thread now sleeps until its answer: a loop thread must read it
  auto by = fd.wait_handled();
  CHECK(by != std::thread::id{});
  CHECK(by != std::this_thread::get_id());
}

TEST_CASE_METHOD(left_to_callers,
                 "a thread that waits for the loop's threads takes a loop left to callers back") {
  // A caller that does not lead (its replies came slowly), after a loop thread left the loop
  // to callers as it answered the call before.
  std::thread{[&] { io_loop::wanting_threads wanting{&loop}; }}.join();  // not the leaver
  fd.signal();
  CHECK(fd.wait_handled() != std::thread::id{});
}

TEST_CASE_METHOD(left_to_callers,
                 "a loop thread about to leave the loop to callers keeps it while a thread waits") {
  // A loop thread answered a call whose caller would lead, while another thread sleeps until
  // its own reply comes: that reply must not wait for the tick, after any number of leaves.
  std::optional<io_loop::wanting_threads> wanting;
  for (int leave = 0; leave < 2; ++leave) {
    std::promise<void> asked;
    loop.post([&] {  // takes the loop back: one loop thread leads, the other stands by
      loop.leave_to_callers_after_batch();  // as when it hands a reply to a caller that would lead
      if (!wanting)
        wanting.emplace(&loop);  // before the loop is left: only a count can tell
      asked.set_value();
    });
    REQUIRE(asked.get_future().wait_for(5s) == std::future_status::ready);
  }
  fd.signal();
  CHECK(fd.wait_handled() != std::thread::id{});
  wanting.reset();
}

TEST_CASE_METHOD(left_to_callers,
                 "a caller a loop thread left the loop to gives it back when it blocks") {
  // Answered by a loop thread that then left it the loop, it waits for something else (a
  // join): that must not wait for the tick.
  std::promise<void> answered;
  loop.post([&] {  // takes the loop back: one loop thread leads, the other stands by
    loop.leave_to_callers_after_batch();  // as when it hands this thread its reply
    answered.set_value();
  });
  REQUIRE(answered.get_future().wait_for(5s) == std::future_status::ready);
  loop.left_for_this_thread();  // as node::request does, answered so
  io_loop::will_block();        // as every blocking call of mproc says before it waits
  fd.signal();
  CHECK(fd.wait_handled() != std::thread::id{});
}

TEST_CASE_METHOD(left_to_callers,
                 "a caller gives back a loop that a loop thread leaves it only after it blocked") {
  // The loop thread is still in the batch that answered this thread when it blocks.
  std::promise<void> answered;
  std::promise<void> blocked;
  loop.post([&] {
    loop.leave_to_callers_after_batch();
    answered.set_value();
    blocked.get_future().wait_for(5s);  // the batch ends once this thread blocked
  });
  REQUIRE(answered.get_future().wait_for(5s) == std::future_status::ready);
  loop.left_for_this_thread();
  io_loop::will_block();
  blocked.set_value();
  fd.signal();
  CHECK(fd.wait_handled() != std::thread::id{});
}

TEST_CASE("a loop left to callers still stops") {
  io_loop loop{std::chrono::hours{1}};
  start(loop);
  REQUIRE(lead_once_left(loop, [] { return true; }, in(10s)));
  loop.stop();  // its task takes the loop back; both threads end
  CHECK_FALSE(loop.lead_for([] { return true; }, in(1s)));
}

TEST_CASE("a loop left to callers stops while another thread keeps asking things of it") {
  // Each post hands the loop back; one that lands as the loop ends must not cancel the wake
  // of the loop thread still standing by (stop() would wait for it for ever).
  for (int round = 0; round < 100; ++round) {
    io_loop loop{std::chrono::hours{1}};
    start(loop);
    REQUIRE(lead_once_left(loop, [] { return true; }, in(10s)));
    std::atomic<bool> stopped{false};
    std::thread asker{[&] {
      while (!stopped)
        loop.post([] {});
    }};
    loop.stop();
    stopped = true;
    asker.join();
  }
}

// ---- node::request's callers ------------------------------------------------------------

namespace {

caf::behavior echo(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x; }};
}

bool one_cpu_run() {
  return std::getenv("MPROC_TEST_ONE_CPU") != nullptr;
}

// Makes round trips to `p` until a callback sets `ran` (on one CPU this thread leads the
// loop most of that time); the thread the callback ran on.
std::thread::id ran_while_asking(mproc::node& node, const mproc::process& p,
                                 std::future<std::thread::id> ran) {
  for (std::int32_t i = 0; i < 1'000'000 && ran.wait_for(0s) != std::future_status::ready; ++i)
    REQUIRE(node.request<std::int32_t>(p.actor(), 10s, i) == i);
  REQUIRE(ran.wait_for(10s) == std::future_status::ready);
  return ran.get();
}

} // namespace

MPROC_ACTOR(echo);

TEST_CASE("round trips from three threads at once each get their own answers") {
  test::scoped_node node;
  if (one_cpu_run())
    REQUIRE_FALSE(mproc::detail::more_than_one_cpu());  // the callers lead in this run
  auto p = node->spawn_process("echo", {});
  std::atomic<int> wrong{0};
  auto ask = [&](std::int32_t base) {
    for (std::int32_t i = 0; i < 2'000; ++i)
      if (node->request<std::int32_t>(p.actor(), 10s, base + i) != base + i)
        ++wrong;
  };
  std::thread a{ask, 1'000'000};
  std::thread b{ask, 2'000'000};
  ask(0);
  a.join();
  b.join();
  CHECK(wrong == 0);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a process's on_exit runs on the node's own thread and never on a caller leading the loop") {
  // A caller may hold locks of the user's that the callback takes too.
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  auto q = node->spawn_process("echo", {});
  std::promise<std::thread::id> ran_on;
  q.on_exit([&](int) { ran_on.set_value(std::this_thread::get_id()); });
  q.terminate();
  CHECK(ran_while_asking(*node, p, ran_on.get_future()) != std::this_thread::get_id());
  CHECK(q.join(5s));
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a process's start(done) runs on the node's own thread and never on a leading caller") {
  // Its answer comes on a link, which a caller leading the loop reads: the callback waits
  // for a loop thread.
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  mproc::process q{*node, "echo", {}};
  std::promise<std::thread::id> ran_on;
  q.start([&](caf::error) { ran_on.set_value(std::this_thread::get_id()); });
  CHECK(ran_while_asking(*node, p, ran_on.get_future()) != std::this_thread::get_id());
  q.terminate();
  CHECK(q.join(5s));
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a caller that led the loop and then waits without mproc holds up nothing") {
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  auto q = node->spawn_process("echo", {});
  for (std::int32_t i = 0; i < 100; ++i)  // on one CPU the loop is now left to this thread
    REQUIRE(node->request<std::int32_t>(p.actor(), 10s, i) == i);
  // This thread now waits on something of its own; the node must still see q end.
  std::promise<bool> joined;
  std::thread other{[&] {
    q.terminate();
    joined.set_value(q.join(20s));
  }};
  auto result = joined.get_future();
  REQUIRE(result.wait_for(30s) == std::future_status::ready);
  CHECK(result.get());
  other.join();
  p.terminate();
  CHECK(p.join(5s));
}
