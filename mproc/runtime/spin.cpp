#include "mproc/runtime/spin.hpp"

#include <sched.h>

namespace mproc {

bool more_than_one_cpu() noexcept {
  static const bool answer = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
  }();
  return answer;
}

bool spin_gauge::worth_spinning() const noexcept {
  return more_than_one_cpu()
         && std::chrono::nanoseconds{typical_ns_.load(std::memory_order_relaxed)} <= limit;
}

void spin_gauge::observe(std::chrono::nanoseconds waited) noexcept {
  // Racing updates from two threads lose one observation: an estimate, not an account.
  auto old = typical_ns_.load(std::memory_order_relaxed);
  typical_ns_.store(old + (waited.count() - old) / 8, std::memory_order_relaxed);
}

} // namespace mproc
