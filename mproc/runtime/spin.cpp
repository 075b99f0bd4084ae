#include "mproc/runtime/spin.hpp"

#include <sched.h>

namespace mproc::detail {

bool more_than_one_cpu() noexcept {
  static const bool answer = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
  }();
  return answer;
}

void yield_cpu() noexcept {
  ::sched_yield();
}

bool spin_gauge::worth_spinning() const noexcept {
  return more_than_one_cpu() && fast_lately();
}

bool spin_gauge::fast_lately() const noexcept {
  return fast_.load(std::memory_order_relaxed) >= streak;
}

void spin_gauge::observe(std::chrono::nanoseconds waited) noexcept {
  // Callers on several threads (the requester's): a slow wait is a plain store that no racing
  // fast one can undo; a fast one only counts up, and stops counting once past the streak.
  if (waited > limit)
    fast_.store(0, std::memory_order_relaxed);
  else if (fast_.load(std::memory_order_relaxed) < streak)
    fast_.fetch_add(1, std::memory_order_relaxed);
}

void spin_gauge::timed_out(std::chrono::nanoseconds waited) noexcept {
  if (waited > limit)
    observe(waited);
}

} // namespace mproc::detail
