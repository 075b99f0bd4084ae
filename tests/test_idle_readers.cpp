// Readers whose bytes come without a system call (a link's ring, io_loop::poller): after one
// read everything (io_loop::look_again), the loop looks again before it waits and, only if
// nothing came, tells it that it sleeps, so that its writer wakes it from then on. Run both
// ways a loop waits: yielding first (one CPU) and sleeping at once (more).
#include "mproc/runtime/internal/io_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using mproc::detail::io_loop;
using test::eventually;

namespace {

// A ring as its reader and writer see it: messages published and taken, the idle flag the
// writer checks, and the eventfd it writes when the reader said it sleeps.
class fake_ring final : public io_loop::poller {
public:
  fake_ring() : efd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) { REQUIRE(efd_ >= 0); }
  ~fake_ring() { ::close(efd_); }
  fake_ring(const fake_ring&) = delete;
  fake_ring& operator=(const fake_ring&) = delete;

  bool ready() const override {
    if (closed)
      ++asked_when_closed;
    return published_.load() != taken_.load();
  }
  bool sleep() override {
    if (publish_as_it_sleeps.exchange(false))
      ++published_;  // a writer's bytes, come just before the flag: no wake-up for them
    idle_ = true;
    ++sleeps;  // after the flag: a writer that sees the count sees the flag
    if (!ready())
      return true;
    idle_ = false;
    return false;
  }

  // The writer's side: a wake-up only for a reader that said it sleeps.
  void publish() {
    ++published_;
    if (idle_.exchange(false)) {
      ++wakeups;
      std::uint64_t one = 1;
      REQUIRE(::write(efd_, &one, sizeof one) == sizeof one);
    }
  }
  // The reader's side, on the loop thread.
  void take() {
    idle_ = false;
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(efd_, &count, sizeof count);
    taken_ = published_.load();
  }
  int efd() const { return efd_; }

  std::atomic<int> sleeps{0};
  std::atomic<int> wakeups{0};
  std::atomic<bool> publish_as_it_sleeps{false};
  std::atomic<bool> closed{false};  // its registration is gone: nobody may ask it
  mutable std::atomic<int> asked_when_closed{0};

private:
  int efd_;
  std::atomic<int> published_{0};
  std::atomic<int> taken_{0};
  std::atomic<bool> idle_{true};  // nobody reads yet
};

// The loop and a fake ring read by it: `on_read` runs on the loop thread after each read,
// and the reader then stays awake, unless `on_read` said it closed the ring.
struct ring_in_loop {
  explicit ring_in_loop(io_loop::idle_readers idle) : loop{io_loop::default_takeover_period, idle} {
    loop.start();
    std::promise<std::uint64_t> added;
    loop.post([&] {
      added.set_value(loop.add(
        ring.efd(), EPOLLIN | EPOLLET, [this](std::uint32_t) { on_event(); }, true, &ring));
    });
    token = added.get_future().get();
  }
  ~ring_in_loop() { loop.stop(); }

  void on_event() {
    ring.take();
    ++reads;
    bool closed = on_read ? on_read() : false;
    if (!closed)
      loop.look_again(token);
  }
  void close_on_loop() {
    loop.remove(token, ring.efd());
    ring.closed = true;
  }

  // Waits (bounded) until `reads` reaches `n`.
  bool wait_reads(int n) {
    return eventually(10s, [&] { return reads.load() >= n; });
  }

  fake_ring ring;
  io_loop loop;
  std::uint64_t token = 0;
  std::atomic<int> reads{0};
  std::function<bool()> on_read;  // loop thread; true: it closed the ring
};

io_loop::idle_readers either_way() {
  return GENERATE(io_loop::idle_readers::sleep, io_loop::idle_readers::yield);
}

} // namespace

TEST_CASE("bytes published before the loop waits are read without waking the reader") {
  auto idle = either_way();
  ring_in_loop r{idle};
  std::atomic<int> sleeps_at_second_read{-1};
  r.on_read = [&] {
    if (r.reads == 1)
      r.loop.post([&] { r.ring.publish(); });  // runs in this batch, before the next wait
    else
      sleeps_at_second_read = r.ring.sleeps.load();
    return false;
  };
  r.ring.publish();
  REQUIRE(r.wait_reads(2));
  CHECK(r.ring.wakeups == 1);  // the first one's only
  CHECK(sleeps_at_second_read == 0);
}

TEST_CASE("a reader that found nothing is told it sleeps and its writer's wake-up reaches it") {
  auto idle = either_way();
  ring_in_loop r{idle};
  r.ring.publish();
  REQUIRE(r.wait_reads(1));
  REQUIRE(eventually(10s, [&] { return r.ring.sleeps >= 1; }));
  r.ring.publish();
  REQUIRE(r.wait_reads(2));
  CHECK(r.ring.wakeups == 2);
}

TEST_CASE("an awake reader that was closed is not read again") {
  auto idle = either_way();
  ring_in_loop r{idle};
  std::promise<void> later_batch;
  r.on_read = [&] {
    // Closed while it is awake, with bytes published for it: nothing may call it again.
    r.loop.post([&] {
      r.close_on_loop();
      r.ring.publish();
      r.loop.post([&] { later_batch.set_value(); });
    });
    return false;
  };
  r.ring.publish();
  REQUIRE(r.wait_reads(1));
  REQUIRE(later_batch.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(r.reads == 1);
  CHECK(r.ring.asked_when_closed == 0);
}

TEST_CASE("a reader that always has bytes does not keep the loop from its other descriptors") {
  auto idle = either_way();
  ring_in_loop r{idle};
  int other = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(other >= 0);
  std::atomic<bool> other_seen{false};
  std::atomic<int> reads_before_other{-1};
  std::promise<std::uint64_t> added;
  r.loop.post([&] {
    added.set_value(r.loop.add(other, EPOLLIN, [&](std::uint32_t) {
      std::uint64_t count;
      [[maybe_unused]] auto n = ::read(other, &count, sizeof count);
      reads_before_other = r.reads.load();
      other_seen = true;
    }));
  });
  auto other_token = added.get_future().get();
  // Each read publishes the next message itself: there is always one when the loop looks.
  // The other descriptor is signalled once that goes on, so only a wait can tell of it.
  // Bounded: a loop that never asks epoll again stops after many reads and fails below.
  r.on_read = [&] {
    if (r.reads == 10) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(other, &one, sizeof one);
    }
    if (!other_seen && r.reads < 100'000)
      r.ring.publish();
    return false;
  };
  r.ring.publish();
  eventually(10s, [&] { return other_seen || r.reads >= 100'000; });
  REQUIRE(other_seen);
  CHECK(reads_before_other < 1'000);  // not only once the ring ran dry
  std::promise<void> removed;
  r.loop.post([&] {
    r.loop.remove(other_token, other);
    removed.set_value();
  });
  removed.get_future().wait();
  ::close(other);
}

TEST_CASE("readers beyond one batch whose bytes came as they went to sleep are read too") {
  auto idle = either_way();
  constexpr int n = 70;  // a batch holds 64
  std::vector<std::unique_ptr<fake_ring>> rings;
  for (int i = 0; i < n; ++i)
    rings.push_back(std::make_unique<fake_ring>());
  std::vector<std::uint64_t> tokens(n);
  std::atomic<int> reads{0};
  io_loop loop{io_loop::default_takeover_period, idle};  // stops before the rings go
  loop.start();
  loop.post([&] {
    for (int i = 0; i < n; ++i) {
      auto* ring = rings[static_cast<std::size_t>(i)].get();
      auto& token = tokens[static_cast<std::size_t>(i)];
      token = loop.add(
        ring->efd(), EPOLLIN | EPOLLET,
        [&loop, &reads, &token, ring](std::uint32_t) {
          ring->take();
          ++reads;
          loop.look_again(token);
        },
        true, ring);
      ring->take();  // awake, having found nothing
      ring->publish_as_it_sleeps = true;
      loop.look_again(token);
    }
  });
  eventually(10s, [&] { return reads >= n; });
  CHECK(reads == n);
  for (const auto& ring : rings)
    CHECK(ring->wakeups == 0);
}
