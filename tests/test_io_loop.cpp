// The I/O loop's two threads: work a loop thread runs itself (actors a frame was for) never
// holds up the loop, since the other thread takes it over.
#include "mproc/runtime/internal/io_loop.hpp"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::detail::io_loop;

namespace {

// Work that blocks until released: what an actor that computes or sleeps looks like to the
// loop. Armed by a task on the loop thread that leads at that moment.
class blocking_work final : public io_loop::batch_work {
public:
  explicit blocking_work(std::shared_future<void> release) : release_(std::move(release)) {
    current = this;
  }
  bool pending() const override { return armed_; }
  void run() override {
    armed_ = false;
    ran_on = std::this_thread::get_id();
    if (says_it_blocks)
      io_loop::will_block();
    release_.wait_for(10s);  // bounded: a loop that never takes over fails the test instead
  }
  void hand_over() override { armed_ = false; }
  void abandon() override { abandoned = true; }
  void retire() override {}
  void arm() { armed_ = true; }

  static thread_local blocking_work* current;
  static inline std::atomic<std::thread::id> ran_on{};
  static inline std::atomic<bool> abandoned{false};
  static inline std::atomic<bool> says_it_blocks{false};  // as mproc's blocking calls do

private:
  std::shared_future<void> release_;
  bool armed_ = false;
};

thread_local blocking_work* blocking_work::current = nullptr;

// Arms the blocking work until a loop thread runs it, and returns that thread. The leader
// releases the loop only once the standby waits (its count is what lets it), so a turn is
// asked for again until one comes.
std::thread::id block_a_loop_thread(io_loop& loop) {
  blocking_work::ran_on = std::thread::id{};
  for (int i = 0; i < 1000 && blocking_work::ran_on.load() == std::thread::id{}; ++i) {
    loop.post([] { blocking_work::current->arm(); });
    std::this_thread::sleep_for(1ms);  // polling for a state change, not ordering
  }
  REQUIRE(blocking_work::ran_on.load() != std::thread::id{});
  return blocking_work::ran_on.load();
}

// Work that is done at once: a loop that runs it has turns, and ticks while it does.
class quick_work final : public io_loop::batch_work {
public:
  quick_work() { current = this; }
  bool pending() const override { return armed_; }
  void run() override { armed_ = false; }
  void hand_over() override { armed_ = false; }
  void abandon() override {}
  void retire() override {}
  void arm() { armed_ = true; }
  static thread_local quick_work* current;

private:
  bool armed_ = false;
};

thread_local quick_work* quick_work::current = nullptr;

// Times this process's threads went to sleep, all together.
long sleeps_of_this_process() {
  long total = 0;
  for (const auto& task : std::filesystem::directory_iterator{"/proc/self/task"}) {
    std::ifstream status{task.path() / "status"};
    for (std::string line; std::getline(status, line);)
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
        total += std::stol(line.substr(line.find(':') + 1));
  }
  return total;
}

// Spawns a sleeper in its own process and answers with it; answers numbers itself.
caf::behavior sleeper(caf::event_based_actor*) {
  return {[](std::int32_t ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds{ms});  // blocks its thread on purpose
    return ms;
  }};
}

caf::behavior sleeper_host(caf::event_based_actor* self) {
  auto helper = self->spawn(sleeper);
  return {
    [=](caf::get_atom) { return helper; },
    [](std::int32_t x) { return x; },
  };
}

} // namespace

MPROC_ACTOR(sleeper_host);

TEST_CASE("work that blocks a loop thread leaves the loop to the other thread") {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  io_loop loop;
  loop.start([&] { return std::make_unique<blocking_work>(released); });
  auto blocked = block_a_loop_thread(loop);
  // The work now blocks `blocked`; a task posted meanwhile still runs, on the other thread.
  std::promise<std::thread::id> ran;
  loop.post([&] { ran.set_value(std::this_thread::get_id()); });
  auto task = ran.get_future();
  REQUIRE(task.wait_for(5s) == std::future_status::ready);
  CHECK(task.get() != blocked);
  CHECK(blocking_work::abandoned);
  release.set_value();
  loop.stop();
}

TEST_CASE("work that says it will block leaves the loop at once, not at the timer's tick") {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  io_loop loop{std::chrono::hours{1}};  // a tick would never come within the test
  loop.start([&] { return std::make_unique<blocking_work>(released); });
  blocking_work::abandoned = false;
  blocking_work::says_it_blocks = true;
  io_loop::will_block();  // from a thread that runs no turn: nothing happens
  auto blocked = block_a_loop_thread(loop);
  std::promise<std::thread::id> ran;
  loop.post([&] { ran.set_value(std::this_thread::get_id()); });
  auto task = ran.get_future();
  CHECK(task.wait_for(5s) == std::future_status::ready);
  CHECK(blocking_work::abandoned);  // what waited behind the blocked work went elsewhere
  release.set_value();
  loop.stop();
  blocking_work::says_it_blocks = false;
  if (task.wait_for(0s) == std::future_status::ready)
    CHECK(task.get() != blocked);
}

TEST_CASE("a loop with blocked work still stops, once the work ends") {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  io_loop loop;
  loop.start([&] { return std::make_unique<blocking_work>(released); });
  block_a_loop_thread(loop);
  std::thread releaser{[&] {
    std::this_thread::sleep_for(100ms);
    release.set_value();
  }};
  loop.stop();  // waits for the blocked work, then ends both threads
  releaser.join();
}

TEST_CASE("an idle loop stops its takeover timer: no thread wakes while nothing happens") {
  io_loop loop;
  loop.start([] { return std::make_unique<quick_work>(); });
  for (int i = 0; i < 200; ++i) {  // turns, so the timer ticks
    std::promise<void> done;
    loop.post([&] {
      quick_work::current->arm();
      done.set_value();
    });
    done.get_future().wait();
  }
  // A ticking timer wakes the standby every period (4 ms): 75 sleeps in 300 ms. Stopped,
  // the process sleeps a handful of times (this thread's own sleeps among them).
  std::this_thread::sleep_for(50ms);  // the ticks run out: idle for a whole period
  auto before = sleeps_of_this_process();
  std::this_thread::sleep_for(300ms);
  CHECK(sleeps_of_this_process() - before < 30);
  loop.stop();
}

TEST_CASE("an actor that blocks in a child does not hold up the child's other actors") {
  test::scoped_node node;
  auto p = node->spawn_process("sleeper_host", {});
  auto helper = node->request<caf::actor>(p.actor(), 5s, caf::get_atom::value);
  // The sleeper's message is read by the child's I/O thread, which may run it itself.
  caf::anon_send(helper, std::int32_t{3000});
  for (std::int32_t i = 0; i < 20; ++i)
    CHECK(node->request<std::int32_t>(p.actor(), 1s, i) == i);
  CHECK(node->request<std::int32_t>(helper, 10s, std::int32_t{0}) == 0);
  p.terminate();
  CHECK(p.join(5s));
}
