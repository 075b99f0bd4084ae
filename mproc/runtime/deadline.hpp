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

// A timeout as a blocking call takes it: none (wait for ever), or any duration, kept in
// milliseconds through capped(). A parameter of std::optional<milliseconds> took
// seconds::max() (or hours::max()) by an implicit conversion that overflowed into a
// negative wait: a try, at once.
class wait_timeout {
public:
  constexpr wait_timeout() = default;
  constexpr wait_timeout(std::nullopt_t) {}
  template <class Rep, class Period>
  constexpr wait_timeout(std::chrono::duration<Rep, Period> d) : ms_{capped(d)} {}
  constexpr wait_timeout(std::optional<std::chrono::milliseconds> d) {
    if (d)
      ms_ = capped(*d);
  }
  constexpr operator std::optional<std::chrono::milliseconds>() const { return ms_; }
  constexpr std::optional<std::chrono::milliseconds> get() const { return ms_; }

private:
  std::optional<std::chrono::milliseconds> ms_;
};

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

// The wait poll(2) takes until `deadline`, in its int of milliseconds: -1 for
// time_point::max() (for ever), rounded up (a wait cut short would spin until the deadline),
// 0 once it has passed, and at most 2^30 ms (12 days: a longer wait polls again).
inline int poll_ms(std::chrono::steady_clock::time_point deadline) {
  if (deadline == std::chrono::steady_clock::time_point::max())
    return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline
                                                           - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count(), 0, 1 << 30));
}

} // namespace mproc
