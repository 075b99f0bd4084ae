// Sleeping on a word of shared memory until another process changes it (futex(2), shared
// between processes), and the deadlines of the blocking calls built on it. Internal to
// actors/.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace mproc::detail {

using sync_clock = std::chrono::steady_clock;

// How often a process blocked on a primitive checks that the processes it waits for still
// run (a holder that died releases nothing by itself): the longest a death goes unnoticed.
// A waiter costs one wake-up and a read of /proc per period, nothing while the holder lives.
inline constexpr std::chrono::milliseconds death_check_period{50};

// When a blocking call gives up: never, at once (a try), or at a point in time.
class deadline {
public:
  // timeout: nullopt waits for ever; zero or less tries once.
  static deadline after(std::optional<std::chrono::milliseconds> timeout);
  static deadline try_once() { return deadline{sync_clock::time_point::min()}; }
  // block = false is a try, as Python's acquire(block=False) (its timeout ignored then).
  static deadline from(bool block, std::optional<std::chrono::milliseconds> timeout) {
    return block ? after(timeout) : try_once();
  }

  bool passed() const;
  bool is_try() const { return at_ && *at_ == sync_clock::time_point::min(); }
  // How long the next sleep may last: until the deadline, and at most `slice`.
  std::chrono::nanoseconds next_sleep(std::chrono::nanoseconds slice) const;

private:
  explicit deadline(std::optional<sync_clock::time_point> at) : at_{at} {}
  std::optional<sync_clock::time_point> at_;
};

// Sleeps while `word` holds `expected`, for at most `for_at_most`; returns early when woken,
// when the word changed, or on a signal. Callers re-check their condition in a loop.
void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::nanoseconds for_at_most);
// Wakes up to `count` processes sleeping on `word` (all: all_waiters).
void futex_wake(std::atomic<std::uint32_t>& word, int count);
inline constexpr int all_waiters = 1 << 30;

// Something to check once every death_check_period while waiting.
class periodic {
public:
  bool due() {
    auto now = sync_clock::now();
    if (now - last_ < death_check_period)
      return false;
    last_ = now;
    return true;
  }

private:
  sync_clock::time_point last_ = sync_clock::now();
};

} // namespace mproc::detail
