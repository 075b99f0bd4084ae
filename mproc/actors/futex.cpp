#include "mproc/actors/futex.hpp"

#include "mproc/actors/guard.hpp"
#include "mproc/runtime/blocking.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

namespace mproc::detail {

static_assert(std::atomic<std::uint32_t>::is_always_lock_free
                  && sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "a futex word must be a plain 32-bit word");

deadline deadline::after(std::optional<std::chrono::milliseconds> timeout) {
  if (!timeout || *timeout >= forever_beyond)
    return deadline{std::nullopt};
  if (timeout->count() <= 0)
    return try_once();
  return deadline{sync_clock::now() + *timeout};
}

bool deadline::passed() const {
  return at_ && (is_try() || sync_clock::now() >= *at_);
}

std::chrono::nanoseconds deadline::next_sleep(std::chrono::nanoseconds slice) const {
  if (!at_)
    return slice;
  if (is_try())
    return std::chrono::nanoseconds{0};
  auto left = *at_ - sync_clock::now();
  if (left <= left.zero())
    return std::chrono::nanoseconds{0};
  return std::min<std::chrono::nanoseconds>(left, slice);
}

void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::nanoseconds for_at_most) {
  if (for_at_most <= for_at_most.zero())
    return;
  will_block();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(for_at_most.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(for_at_most.count() % 1'000'000'000);
  // Not FUTEX_PRIVATE_FLAG: the word is shared with other processes.
  ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), FUTEX_WAIT, expected, &ts,
            nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr,
            nullptr, 0);
}

} // namespace mproc::detail
