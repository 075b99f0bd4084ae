// Turning a caller's timeout into a point on the steady clock, the same way everywhere.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

namespace mproc {

// A timeout this long is a wait for ever (and `now + milliseconds::max()` would overflow).
inline constexpr std::chrono::milliseconds forever_beyond = std::chrono::hours{24 * 365 * 100};

// A caller's timeout in any unit, as `To`, kept between zero and forever_beyond: the
// standard library's waits add it to now() in nanoseconds, where milliseconds::max() (or a
// century of hours) overflows into the past, and the wait would end at once.
template <class To = std::chrono::milliseconds, class Rep, class Period>
constexpr To capped(std::chrono::duration<Rep, Period> d) {
  using seconds = std::chrono::duration<double>;
  if (seconds{d} >= seconds{forever_beyond})
    return std::chrono::duration_cast<To>(forever_beyond);
  if (seconds{d} <= seconds{0})
    return To{0};
  return std::chrono::duration_cast<To>(d);
}

// No timeout, or one of a century or more, is time_point::max().
inline std::chrono::steady_clock::time_point deadline_after(
    std::optional<std::chrono::milliseconds> timeout) {
  if (!timeout || *timeout >= forever_beyond)
    return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() + *timeout;
}

// What is left of a deadline_after() for the next step of a call (never negative; for
// ever stays forever_beyond): one timeout covers a call made of several waits.
inline std::chrono::nanoseconds time_left(std::chrono::steady_clock::time_point deadline) {
  if (deadline == std::chrono::steady_clock::time_point::max())
    return forever_beyond;
  return std::max(std::chrono::nanoseconds{0}, deadline - std::chrono::steady_clock::now());
}

} // namespace mproc
